"""Paths: normalising what a call asks for, and where it really leads on a device's disk."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from actors.bridge import resolve_on_device
from actors.bridge._paths import _stored_name
from actors.policy import PathGlob, PathRefused, normalize_path


class TestNormalize:
    """Relative, NFC, no dot segments; tricks refused."""

    @pytest.mark.parametrize(
        ("given", "expected"),
        [("a/b", "a/b"), ("./a//b/", "a/b"), ("cafe\u0301", "caf\u00e9")],
    )
    def test_normal_forms(self, given: str, expected: str) -> None:
        assert normalize_path(given) == expected

    @pytest.mark.parametrize(
        "given", ["", ".", "/etc", "..", "a/../b", "C:/x", "~/x", "a\\b", "a\x00", 5, "x" * 5000]
    )
    def test_refused(self, given: object) -> None:
        with pytest.raises(PathRefused):
            normalize_path(given)


class TestGlobs:
    """Segment-wise globs."""

    def test_matches_everything_is_reported(self) -> None:
        assert PathGlob("**").matches_everything
        assert PathGlob("*/**").matches_everything
        assert not PathGlob("notes/**").matches_everything

    def test_dotfiles_are_matched(self) -> None:
        assert PathGlob("secrets/*").matches("secrets/.hidden", ignore_case=True)

    def test_special_characters_are_literal(self) -> None:
        glob = PathGlob("a.b+(c)|d^$ e/x-*.txt")
        assert glob.matches("a.b+(c)|d^$ e/x-1.txt")
        assert not glob.matches("aXb+(c)|d^$ e/x-1.txt")


@pytest.fixture
def root(tmp_path: Path) -> Path:
    base = tmp_path / "root"
    (base / "notes").mkdir(parents=True)
    (base / "secrets").mkdir()
    (base / "notes" / "a.txt").write_text("a")
    (base / "secrets" / "key").write_text("k")
    (base / "notes" / "key-link").symlink_to("../secrets/key")
    (base / "notes" / "abs-link").symlink_to(base / "secrets")
    (base / "notes" / "out-link").symlink_to("/etc")
    (base / "notes" / "loop").symlink_to("loop")
    return base


class TestOnDevice:
    """Symlinks are followed inside the root; the root is never left."""

    def test_plain(self, root: Path) -> None:
        assert resolve_on_device("notes/a.txt", [str(root)]) == "notes/a.txt"
        assert resolve_on_device(f"{root}/notes/a.txt", [str(root)]) == "notes/a.txt"

    def test_a_symlink_inside_an_allowed_folder_leads_to_what_it_names(self, root: Path) -> None:
        assert resolve_on_device("notes/key-link", [str(root)]) == "secrets/key"
        assert resolve_on_device("notes/abs-link/key", [str(root)]) == "secrets/key"

    def test_not_there_yet_is_kept_as_written(self, root: Path) -> None:
        assert resolve_on_device("notes/new.txt", [str(root)]) == "notes/new.txt"
        assert resolve_on_device("notes/key-link-dir/x", [str(root)]) == "notes/key-link-dir/x"

    @pytest.mark.parametrize("path", ["notes/out-link/passwd", "/etc/passwd", "../x", "notes/loop"])
    def test_refused(self, root: Path, path: str) -> None:
        with pytest.raises(PathRefused):
            resolve_on_device(path, [str(root)])

    def test_case_as_the_filesystem_stores_it(self, root: Path) -> None:
        # On a filesystem that ignores case, a name is looked up in its folder's listing.
        assert _stored_name(str(root), "NOTES", fold=True) == "notes"
        assert _stored_name(str(root), "NOTES", fold=False) == "NOTES"
        assert _stored_name(str(root), "absent", fold=True) == "absent"

    def test_names_are_nfc(self, root: Path) -> None:
        (root / "cafe\u0301").mkdir()
        assert resolve_on_device("cafe\u0301/x", [str(root)]) == "caf\u00e9/x"
        assert os.path.isdir(root / "cafe\u0301")
