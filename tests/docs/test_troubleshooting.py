"""docs/troubleshooting.md has an entry for every error code and every relay close code."""

from __future__ import annotations

import re
from pathlib import Path

from actors.relay import _wire
from contracts import error_catalog

ROOT = Path(__file__).resolve().parents[2]
GUIDE = ROOT / "docs" / "troubleshooting.md"


def headings() -> list[str]:
    return re.findall(r"^### (.+)$", GUIDE.read_text(), re.M)


def close_codes() -> dict[str, int]:
    return {
        name: value
        for name, value in vars(_wire).items()
        if name.startswith("CLOSE_") and isinstance(value, int) and name != "CLOSE_TIMEOUT_S"
    }


class TestTroubleshootingGuide:
    """A code a process can send has an entry that says what to check."""

    def test_every_error_code_has_an_entry(self) -> None:
        documented = {h.strip("`") for h in headings() if h.startswith("`")}
        missing = sorted(set(error_catalog()) - documented)
        assert missing == [], f"add a '### `CODE`' entry to docs/troubleshooting.md: {missing}"

    def test_every_relay_close_code_has_an_entry(self) -> None:
        documented = {int(h.split()[0]) for h in headings() if h[:4].isdigit()}
        codes = close_codes()
        assert len(codes) >= 10
        missing = sorted(set(codes.values()) - documented)
        assert missing == [], f"add a '### CODE ...' entry to docs/troubleshooting.md: {missing}"

    def test_entries_say_something(self) -> None:
        sections = re.split(r"^### ", GUIDE.read_text(), flags=re.M)[1:]
        for section in sections:
            title, _, body = section.partition("\n")
            assert len(body.split()) >= 8, f"the entry {title!r} is too short to help"

    def test_retryable_matches_the_catalog(self) -> None:
        text = GUIDE.read_text()
        for code, spec in error_catalog().items():
            entry = text.split(f"### `{code}`\n", 1)[1]
            first = entry.split(".", 1)[0]
            assert first == ("Retryable" if spec.retryable else "Not retryable"), code
