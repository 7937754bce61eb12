"""Build the labelled redaction corpus (deterministic: one seed, same file every time).

    python -m tests.redaction.corpus.generate            # rewrite corpus.jsonl
    python -m tests.redaction.corpus.generate --check    # fail if corpus.jsonl is stale

Each line of ``corpus.jsonl`` is one sample::

    {"id": "log-0042", "kind": "log", "hard_negative": false, "text": "...",
     "labels": [{"start": 31, "end": 52, "class": "email"}]}

``start``/``end`` are offsets in characters of ``text``; a label covers exactly what must
be removed (the value of ``password=…``, not its name). A hard negative has no label and
is full of look-alikes that must survive (see ``_values.py``).
"""

from __future__ import annotations

import argparse
import json
import random
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from . import _values as v
from ._handwritten import SAMPLES as HANDWRITTEN
from ._heldout import SAMPLES as HELDOUT
from ._templates import NEGATIVE, POSITIVE

SEED = 20261204
CORPUS = Path(__file__).with_name("corpus.jsonl")
# Samples made from each template: more negatives, so that they are over 40 % of the whole.
POSITIVE_REPEAT = 8
NEGATIVE_REPEAT = 10

Gen = Callable[[random.Random], str]

# slot name -> (label class, generator)
POSITIVE_SLOTS: dict[str, tuple[str, Gen]] = {
    "email": ("email", v.email),
    "phone": ("phone", v.phone),
    "card": ("card", v.card),
    "iban": ("iban", v.iban),
    "ssn": ("ssn", v.ssn),
    "ipv4": ("ipv4", v.ipv4),
    "ipv6": ("ipv6", v.ipv6),
    "private_key": ("private_key", v.private_key),
    "aws_key_id": ("aws_key_id", v.aws_key_id),
    "aws_secret": ("aws_secret", v.aws_secret),
    "github_token": ("github_token", v.github_token),
    "slack_token": ("slack_token", v.slack_token),
    "slack_webhook": ("slack_token", v.slack_webhook_path),
    "stripe_key": ("stripe_key", v.stripe_key),
    "google_key": ("google_key", v.google_key),
    "openai_key": ("openai_key", v.openai_key),
    "jwt": ("jwt", v.jwt),
    "bearer": ("bearer", v.opaque_token),
    "basic": ("bearer", v.basic_credentials),
    "url_password": ("url_credentials", v.url_password),
    "password": ("password", v.password),
    "secret": ("secret", v.secret_value),
    "high_entropy": ("high_entropy", v.b64_secret),
}

NEGATIVE_SLOTS: dict[str, Gen] = {
    "sha": v.git_sha,
    "short_sha": v.short_sha,
    "uuid": v.a_uuid,
    "sha256": v.sha256_hex,
    "sha256_digest": v.sha256_digest,
    "md5": v.md5_hex,
    "version": v.version,
    "ts": v.timestamp,
    "epoch": lambda rng: str(rng.randint(1_600_000_000, 1_790_000_000)),
    "clf": lambda rng: _clf(rng),
    "order": v.order_number,
    "long_id": v.long_id,
    "luhn_bad": v.luhn_failing,
    "bad_iban": v.bad_iban,
    "ip_doc": v.doc_ipv4,
    "ip6_doc": v.doc_ipv6,
    "cidr": v.cidr,
    "netmask": v.netmask,
    "mac": v.mac,
    "oid": v.oid,
    "isbn": v.isbn,
    "price": v.price,
    "duration": v.duration,
    "port": v.port,
    "arn": v.arn,
    "image_digest": v.image_digest,
    "b64_blob": v.b64_blob,
    "b64_blob_short": lambda rng: v.b64_blob(rng)[:40],
    "cursor": v.cursor,
    "placeholder": v.placeholder_secret,
    "hex": v.hex_color,
    "int": lambda rng: str(rng.randint(1, 1_000_000)),
    "small": lambda rng: str(rng.randint(1, 99)),
    "last4": lambda rng: f"{rng.randint(0, 9999):04d}",
    "pin": lambda rng: f"{rng.randint(0, 999999):06d}",
}

FILLERS: dict[str, Gen] = {
    "name": v.name,
    "first": lambda rng: rng.choice(v.FIRST),
    "word": v.word,
}

SLOT = re.compile(r"\{\{|\}\}|\{([~@]?)([a-z0-9_]+)(?:\|([a-z]+))?\}")
MARK = re.compile(r"⟦([a-z0-9_]+):(.*?)⟧", re.DOTALL)


def _clf(rng: random.Random) -> str:
    months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
    return (
        f"{rng.randint(1, 28):02d}/{rng.choice(months)}/{rng.randint(2019, 2026)}:"
        f"{rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}:{rng.randint(0, 59):02d} +0000"
    )


def _escape(value: str, how: str | None) -> str:
    if how is None:
        return value
    escaped = json.dumps(value)[1:-1]
    if how == "json":
        return escaped
    if how == "jsonslash":
        return escaped.replace("/", "\\/")
    raise ValueError(f"unknown escape {how!r}")


def fill(template: str, rng: random.Random) -> tuple[str, list[dict[str, Any]]]:
    """The text of one sample and its labels."""
    out: list[str] = []
    labels: list[dict[str, Any]] = []
    length = 0
    at = 0
    for match in SLOT.finditer(template):
        literal = template[at : match.start()]
        out.append(literal)
        length += len(literal)
        at = match.end()
        token = match.group(0)
        if token in ("{{", "}}"):
            piece = token[0]
        else:
            sigil, name, how = match.groups()
            if sigil == "~":
                piece = _escape(NEGATIVE_SLOTS[name](rng), how)
            elif sigil == "@":
                piece = FILLERS[name](rng)
            else:
                label, generate = POSITIVE_SLOTS[name]
                piece = _escape(generate(rng), how)
                labels.append({"start": length, "end": length + len(piece), "class": label})
        out.append(piece)
        length += len(piece)
    out.append(template[at:])
    return "".join(out), labels


def unmark(marked: str) -> tuple[str, list[dict[str, Any]]]:
    """A hand-written sample's text and labels, from its ``⟦class:value⟧`` marks."""
    out: list[str] = []
    labels: list[dict[str, Any]] = []
    length = at = 0
    for match in MARK.finditer(marked):
        literal = marked[at : match.start()]
        out.append(literal)
        length += len(literal)
        label, value = match.groups()
        if label not in {cls for cls, _ in POSITIVE_SLOTS.values()}:
            raise ValueError(f"unknown class {label!r} in a hand-written sample")
        labels.append({"start": length, "end": length + len(value), "class": label})
        out.append(value)
        length += len(value)
        at = match.end()
    out.append(marked[at:])
    return "".join(out), labels


def build() -> list[dict[str, Any]]:
    """Every sample, in a fixed order."""
    rng = random.Random(SEED)
    samples: list[dict[str, Any]] = []
    counts: dict[str, int] = {}
    plan = [(kind, t, False, POSITIVE_REPEAT) for kind, t in POSITIVE]
    plan += [(kind, t, True, NEGATIVE_REPEAT) for kind, t in NEGATIVE]
    for kind, template, negative, repeat in plan:
        for _ in range(repeat):
            text, labels = fill(template, rng)
            counts[kind] = counts.get(kind, 0) + 1
            samples.append(
                {
                    "id": f"{kind}-{counts[kind]:04d}",
                    "kind": kind,
                    "hard_negative": negative,
                    "text": text,
                    "labels": labels,
                }
            )
    for prefix, batch in (("hand", HANDWRITTEN), ("held", HELDOUT)):
        for n, (kind, marked) in enumerate(batch, start=1):
            text, labels = unmark(marked)
            samples.append(
                {
                    "id": f"{prefix}-{n:04d}",
                    "kind": kind,
                    "hard_negative": not labels,
                    "text": text,
                    "labels": labels,
                }
            )
    return samples


def render(samples: list[dict[str, Any]]) -> str:
    return "".join(json.dumps(s, ensure_ascii=False, sort_keys=True) + "\n" for s in samples)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--check", action="store_true", help="fail if corpus.jsonl is stale")
    args = parser.parse_args(argv)
    text = render(build())
    if args.check:
        if not CORPUS.exists() or CORPUS.read_text(encoding="utf-8") != text:
            print(f"{CORPUS} is stale: run python -m tests.redaction.corpus.generate")
            return 1
        return 0
    CORPUS.write_text(text, encoding="utf-8")
    samples = text.count("\n")
    negatives = text.count('"hard_negative": true')
    print(f"wrote {CORPUS}: {samples} samples, {negatives} hard negatives")
    return 0


if __name__ == "__main__":
    sys.exit(main())
