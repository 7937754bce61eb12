"""``zl redact`` as a user runs it: a subprocess reading stdin."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

FIXTURES = Path(__file__).with_name("fixtures")
TEXT = (
    "mail ana@firma.de, key AKIAQ3EGRIOSFODN7XYZ, build 9fceb02d0ae598e95dc970b74767f19372d61af8\n"
)


def zl_redact(*args: str, stdin: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "supervisors", "redact", *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
    )


class TestZlRedact:
    """Text, --json, --jsonl, settings and bad input."""

    def test_text(self) -> None:
        done = zl_redact(stdin=TEXT)
        assert done.returncode == 0, done.stderr
        assert done.stdout == (
            "mail [REDACTED:email], key [REDACTED:aws_key_id], "
            "build 9fceb02d0ae598e95dc970b74767f19372d61af8\n"
        )

    def test_json_spans(self) -> None:
        done = zl_redact("--json", stdin=TEXT)
        spans = json.loads(done.stdout)["spans"]
        assert [(s["kind"], TEXT[s["start"] : s["end"]]) for s in spans] == [
            ("email", "ana@firma.de"),
            ("aws_key_id", "AKIAQ3EGRIOSFODN7XYZ"),
        ]

    def test_jsonl(self) -> None:
        lines = [{"id": "a", "text": "ssn 219-09-9999"}, {"id": 7, "text": "nothing here"}]
        done = zl_redact("--jsonl", stdin="".join(json.dumps(x) + "\n" for x in lines))
        assert done.returncode == 0, done.stderr
        out = [json.loads(line) for line in done.stdout.splitlines()]
        assert out == [
            {"id": "a", "spans": [{"start": 4, "end": 15, "kind": "ssn"}]},
            {"id": 7, "spans": []},
        ]

    def test_settings_and_pseudonyms(self) -> None:
        done = zl_redact(
            "--settings", str(FIXTURES / "full.json"), stdin="EMP-000042 at 10.1.2.3 a@b.io a@b.io"
        )
        assert done.stdout == "[employee_id_1] at 10.1.2.3 [email_1] [email_1]"

    def test_bad_input_is_one_line(self) -> None:
        for args, stdin, expected in [
            (["--settings", str(FIXTURES / "backreference.json")], "x", "RE2 cannot compile"),
            (["--jsonl"], '{"id": 1}\n', 'line 1: expected {"id": …, "text": "…"}'),
            (["--jsonl"], "{not json\n", "line 1: not JSON"),
            (["--max-bytes", "3"], "more than three", "more than --max-bytes 3"),
        ]:
            done = zl_redact(*args, stdin=stdin)
            assert done.returncode == 2, (args, done.stderr)
            assert expected in done.stderr
            assert done.stderr.count("\n") == 1, done.stderr
            assert "Traceback" not in done.stderr
