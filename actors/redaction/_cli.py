"""``zl redact``: redact text on stdin, or report what would be redacted.

    zl redact < notes.txt > notes.redacted.txt
    zl redact --json < notes.txt                       # {"spans": [{"start", "end", "kind"}]}
    zl redact --jsonl < samples.jsonl                  # {"id", "text"} -> {"id", "spans"}
    zl redact --settings redaction.json --pseudonyms   # a bundle's redaction section

Offsets are in characters (Unicode code points) of the input text.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any

import attrs

from actors.strict_json import StrictJsonError, loads

from ._errors import RedactionSettingsError
from ._redactor import Redactor
from ._settings import RedactionSettings, load_settings_file

#: The most stdin may hold in text and --json modes (the whole text is scanned at once, so
#: that a key split over lines is still found).
DEFAULT_MAX_BYTES = 64 * 1024 * 1024
#: The longest line --jsonl takes.
MAX_LINE_BYTES = 16 * 1024 * 1024
#: How often --jsonl reports progress on a terminal.
PROGRESS_EVERY_S = 1.0


class _Refused(Exception):
    """A one-line reason to stop (exit status 2)."""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="zl redact",
        description="Remove secrets and personal data from text on stdin.",
    )
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument(
        "--json", action="store_true", help='print {"spans": [{"start", "end", "kind"}]} instead'
    )
    mode.add_argument(
        "--jsonl",
        action="store_true",
        help='read {"id", "text"} per line, write {"id", "spans"} per line',
    )
    parser.add_argument(
        "--settings",
        type=Path,
        help="a JSON file holding a policy bundle's redaction section (classes, patterns)",
    )
    parser.add_argument(
        "--pseudonyms", action="store_true", help="name values [email_1] instead of [REDACTED:…]"
    )
    parser.add_argument(
        "--max-bytes",
        type=int,
        default=DEFAULT_MAX_BYTES,
        help=f"refuse more input than this in text and --json modes (default {DEFAULT_MAX_BYTES})",
    )
    return parser


def _settings(path: Path | None, pseudonyms: bool) -> RedactionSettings:
    settings = RedactionSettings.default()
    if path is not None:
        try:
            settings = load_settings_file(path)
        except RedactionSettingsError as exc:
            raise _Refused(f"--settings {exc}") from None
    if pseudonyms:
        return attrs.evolve(settings, pseudonyms=True)
    return settings


def _read_all(stream: IO[bytes], limit: int) -> str:
    data = stream.read(limit + 1)
    if len(data) > limit:
        raise _Refused(f"stdin holds more than --max-bytes {limit}")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise _Refused(f"stdin is not UTF-8 (byte {exc.start})") from None


def _spans(redactor: Redactor, text: str) -> list[dict[str, Any]]:
    return [{"start": s.start, "end": s.end, "kind": s.kind} for s in redactor.find(text)]


def _jsonl(redactor: Redactor, stdin: IO[bytes], stdout: IO[str], stderr: IO[str]) -> None:
    show = stderr.isatty()
    lines = found = 0
    last = time.monotonic()
    for number, raw in enumerate(iter(lambda: stdin.readline(MAX_LINE_BYTES + 1), b""), 1):
        if len(raw) > MAX_LINE_BYTES:
            raise _Refused(f"line {number}: longer than {MAX_LINE_BYTES} bytes")
        if not raw.strip():
            continue
        try:
            item = loads(raw)
        except StrictJsonError as exc:
            raise _Refused(f"line {number}: not JSON: {exc}") from None
        if not isinstance(item, dict) or not isinstance(item.get("text"), str):
            raise _Refused(f'line {number}: expected {{"id": …, "text": "…"}}')
        spans = _spans(redactor, item["text"])
        stdout.write(json.dumps({"id": item.get("id"), "spans": spans}) + "\n")
        lines += 1
        found += len(spans)
        if show and time.monotonic() - last >= PROGRESS_EVERY_S:
            last = time.monotonic()
            stderr.write(f"\rzl redact: {lines} lines, {found} spans")
            stderr.flush()
    if show and lines:
        stderr.write(f"\rzl redact: {lines} lines, {found} spans\n")


def redact_main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``zl redact``; returns the exit status (2: bad input or settings)."""
    args = _parser().parse_args(argv)
    stdin = sys.stdin.buffer
    try:
        redactor = Redactor(_settings(args.settings, args.pseudonyms))
        if args.jsonl:
            _jsonl(redactor, stdin, sys.stdout, sys.stderr)
            return 0
        text = _read_all(stdin, args.max_bytes)
        if args.json:
            sys.stdout.write(json.dumps({"spans": _spans(redactor, text)}) + "\n")
        else:
            sys.stdout.write(redactor.redact(text).text)
        sys.stdout.flush()
    except _Refused as exc:
        print(f"zl redact: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        return 1
    return 0
