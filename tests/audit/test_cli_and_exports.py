"""``zl audit verify`` / ``tail`` and the package's public surface."""

from __future__ import annotations

import ast
import inspect
import json
from pathlib import Path

import pytest

import actors.audit
from actors.audit import RECEIPT_KIND, AuditFile, FsyncPolicy, audit_main

from ._support import receipt, turn


def _write(path: Path, receipts: int = 3) -> None:
    audit = AuditFile.open(path, fsync=FsyncPolicy(), writer="cli")
    for n in range(receipts):
        audit.append([(RECEIPT_KIND, receipt(n).to_payload(), "2026-01-01T00:00:00Z")])
    audit.append([("turn.summary", turn(1).to_payload(), "2026-01-01T00:00:00Z")])
    audit.close()


class TestVerifyCommand:
    """Exit 0 with a count for a good file; exit 1 naming the first bad line otherwise."""

    def test_ok(self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        path = tmp_path / "a.jsonl"
        _write(path)
        assert audit_main(["verify", str(path)]) == 0
        out = capsys.readouterr().out
        assert out.startswith(f"OK {path}: 6 records")
        assert "tool.receipt 3" in out
        head = out.split("head ")[1].strip()
        assert audit_main(["verify", str(path), "--anchor", head]) == 0

    def test_modified_line(self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        path = tmp_path / "a.jsonl"
        _write(path)
        lines = path.read_bytes().splitlines(keepends=True)
        lines[2] = lines[2].replace(b"call-1", b"call-9")
        path.write_bytes(b"".join(lines))
        assert audit_main(["verify", str(path)]) == 1
        out = capsys.readouterr().out
        assert out.startswith(f"FAIL {path}: line 3 (seq 2): ")
        assert "2 records verified before it" in out

    def test_cut_tail_with_anchor(self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        path = tmp_path / "a.jsonl"
        _write(path)
        assert audit_main(["verify", str(path)]) == 0
        head = capsys.readouterr().out.split("head ")[1].strip()
        path.write_bytes(b"".join(path.read_bytes().splitlines(keepends=True)[:-1]))
        assert audit_main(["verify", str(path), "--anchor", head]) == 1
        assert "ends before the anchor" in capsys.readouterr().out

    def test_missing_file(self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        assert audit_main(["verify", str(tmp_path / "nope")]) == 1
        assert "cannot read" in capsys.readouterr().err

    def test_bad_anchor_is_a_usage_error(self, tmp_path: Path) -> None:
        with pytest.raises(SystemExit) as exit_:
            audit_main(["verify", str(tmp_path / "a"), "--anchor", "x"])
        assert exit_.value.code == 2


class TestTailCommand:
    """The last N records, one readable line each."""

    def test_tail(self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        path = tmp_path / "a.jsonl"
        _write(path, receipts=5)
        assert audit_main(["tail", str(path), "-n", "3"]) == 0
        lines = capsys.readouterr().out.splitlines()
        assert len(lines) == 3
        assert "fs.read@1.0.0 call call-4 session sess-1 turn turn-1 device dev-7: ok" in lines[0]
        assert "turn.summary" in lines[1]
        assert "121 in / 40 out" in lines[1]
        assert "audit.checkpoint" in lines[2]
        assert json.loads(lines[2].split("audit.checkpoint")[1])["records"] == 7


class TestExports:
    """``__init__`` only re-exports names defined in the package's modules."""

    def test_all_names_resolve(self) -> None:
        for name in actors.audit.__all__:
            value = getattr(actors.audit, name)
            if inspect.isclass(value) or inspect.isfunction(value):  # not constants or aliases
                assert value.__module__.startswith("actors.audit."), name

    def test_init_is_only_reexports(self) -> None:
        tree = ast.parse(Path(actors.audit.__file__).read_text())
        for node in tree.body:
            if isinstance(node, ast.ImportFrom):
                assert all(alias.asname == alias.name for alias in node.names)
            else:
                assert isinstance(node, ast.Expr | ast.Assign), ast.dump(node)
