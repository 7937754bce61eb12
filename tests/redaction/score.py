"""Score the redactor on the labelled corpus: per-class recall, character precision, leaks.

    python -m tests.redaction.score            # a table, then one JSON object
    python -m tests.redaction.score --misses   # also every miss and every false positive
    python -m tests.redaction.score --source actors supervisors   # what real files lose

- **recall** of a class: the share of its labelled values whose every character is inside
  something the redactor removed (removing 90 % of a key is a miss);
- **character precision**: of all characters removed, the share inside a labelled value
  (hard negatives are what drive it down);
- **leaks**: samples in which a labelled value survives verbatim in the redacted text.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import attrs

from actors.redaction import PERSONAL_CLASSES, Redactor

CORPUS = Path(__file__).with_name("corpus") / "corpus.jsonl"


def load(path: Path = CORPUS) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


@attrs.define
class Score:
    """What the redactor did on the corpus."""

    samples: int = 0
    hard_negatives: int = 0
    labelled: Counter[str] = attrs.Factory(Counter)
    found: Counter[str] = attrs.Factory(Counter)
    removed_chars: int = 0
    wrong_chars: int = 0
    leaks: int = 0
    seconds: float = 0.0
    misses: list[str] = attrs.Factory(list)
    false_positives: list[str] = attrs.Factory(list)

    def recall(self, kind: str) -> float:
        return self.found[kind] / self.labelled[kind] if self.labelled[kind] else 1.0

    @property
    def precision(self) -> float:
        if not self.removed_chars:
            return 1.0
        return 1 - self.wrong_chars / self.removed_chars

    def to_json(self) -> dict[str, Any]:
        return {
            "samples": self.samples,
            "hard_negatives": self.hard_negatives,
            "leaks": self.leaks,
            "char_precision": round(self.precision, 5),
            "recall": {k: round(self.recall(k), 5) for k in sorted(self.labelled)},
            "labelled": dict(sorted(self.labelled.items())),
            "seconds": round(self.seconds, 3),
        }


def score(samples: Iterable[dict[str, Any]], redactor: Redactor | None = None) -> Score:
    redactor = redactor if redactor is not None else Redactor()
    result = Score()
    started = time.perf_counter()
    for sample in samples:
        text: str = sample["text"]
        result.samples += 1
        result.hard_negatives += bool(sample["hard_negative"])
        redacted = redactor.redact(text)
        removed = bytearray(len(text))
        for span in redacted.spans:
            removed[span.start : span.end] = b"\x01" * (span.end - span.start)
        labelled = bytearray(len(text))
        for label in sample["labels"]:
            start, end, kind = label["start"], label["end"], label["class"]
            labelled[start:end] = b"\x01" * (end - start)
            result.labelled[kind] += 1
            if all(removed[start:end]):
                result.found[kind] += 1
            else:
                result.misses.append(f"{sample['id']} {kind}: {text[start:end]!r}")
        if any(text[lab["start"] : lab["end"]] in redacted.text for lab in sample["labels"]):
            result.leaks += 1
        for span in redacted.spans:
            wrong = span.end - span.start - sum(labelled[span.start : span.end])
            result.removed_chars += span.end - span.start
            result.wrong_chars += wrong
            if wrong:
                result.false_positives.append(
                    f"{sample['id']} {span.kind}: {text[span.start : span.end]!r}"
                )
    result.seconds = time.perf_counter() - started
    return result


def table(result: Score) -> str:
    lines = [f"{'class':<16} {'kind':<9} {'found':>7} {'recall':>8}"]
    for kind in sorted(result.labelled):
        category = "personal" if kind in PERSONAL_CLASSES else "secret"
        lines.append(
            f"{kind:<16} {category:<9} {result.found[kind]:>3}/{result.labelled[kind]:<3} "
            f"{result.recall(kind) * 100:>7.2f}%"
        )
    lines.append(
        f"samples {result.samples} ({result.hard_negatives} hard negatives); "
        f"character precision {result.precision * 100:.2f}%; leaks {result.leaks}"
    )
    return "\n".join(lines)


SOURCE_SUFFIXES = (".py", ".md", ".json", ".toml", ".proto", ".txt", ".yaml", ".yml")


def scan_sources(roots: list[Path]) -> int:
    """Print what the redactor would remove from real files (unlabelled: a reader judges)."""
    redactor = Redactor()
    found = chars = 0
    for root in roots:
        for path in [root] if root.is_file() else sorted(root.rglob("*")):
            if path.suffix not in SOURCE_SUFFIXES or not path.is_file():
                continue
            text = path.read_text(encoding="utf-8", errors="replace")
            chars += len(text)
            for span in redactor.find(text):
                found += 1
                line = text.count("\n", 0, span.start) + 1
                print(f"{path}:{line} {span.kind}: {text[span.start : span.end][:60]!r}")
    print(json.dumps({"files_chars": chars, "found": found}))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--misses", action="store_true", help="list misses and false positives")
    parser.add_argument(
        "--source", nargs="+", type=Path, help="instead, list what these files or folders lose"
    )
    args = parser.parse_args(argv)
    if args.source:
        return scan_sources(args.source)
    result = score(load())
    print(table(result))
    if args.misses:
        for line in result.misses:
            print("miss", line)
        for line in result.false_positives:
            print("false positive", line)
    print(json.dumps(result.to_json()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
