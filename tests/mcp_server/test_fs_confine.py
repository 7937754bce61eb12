"""fs.read confinement and reads without a process: refusals, truncation, the swap race."""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from actors.mcp.fs_server import (
    FsReadError,
    InvalidArgs,
    NotAFile,
    NotFound,
    NotText,
    OutsideRoots,
    PathRefused,
    Root,
    RootSet,
    parse_args,
    read_file,
    split_request_path,
)

# Same texts as conftest.py's tree fixture.
SECRET = "TOP-SECRET outside the root\n"
INSIDE = "inside the root\n"


@pytest.fixture
def roots(tree: Path) -> Iterator[RootSet]:
    root_set = RootSet([str(tree)])
    try:
        yield root_set
    finally:
        root_set.close()


def read(roots: RootSet, **arguments: object) -> dict[str, object]:
    return read_file(roots, parse_args(arguments))


def refused(roots: RootSet, path: str) -> FsReadError:
    with pytest.raises(FsReadError) as info:
        read(roots, path=path)
    return info.value


class TestSplitRequestPath:
    """The lexical step is pure and refuses NUL, '..', empty and outside absolute paths."""

    def test_relative_goes_to_first_root(self) -> None:
        roots = [Root.from_path("/srv/a"), Root.from_path("/srv/b")]
        assert split_request_path("x/./y.txt", roots) == (0, ("x", "y.txt"))

    def test_absolute_picks_its_root(self) -> None:
        roots = [Root.from_path("/srv/a"), Root.from_path("/srv/b")]
        assert split_request_path("/srv/b//c.txt", roots) == (1, ("c.txt",))

    def test_absolute_picks_the_deepest_root(self) -> None:
        roots = [Root.from_path("/srv"), Root.from_path("/srv/deep")]
        assert split_request_path("/srv/deep/c.txt", roots) == (1, ("c.txt",))

    @pytest.mark.parametrize("path", ["../x", "a/../b", "a/..", ".."])
    def test_dotdot_refused(self, path: str) -> None:
        with pytest.raises(PathRefused, match=r"'\.\.' is not allowed"):
            split_request_path(path, [Root.from_path("/srv/a")])

    def test_nul_refused(self) -> None:
        with pytest.raises(PathRefused, match="NUL byte"):
            split_request_path("a\x00.txt", [Root.from_path("/srv/a")])

    def test_empty_refused(self) -> None:
        with pytest.raises(PathRefused, match="empty"):
            split_request_path("", [Root.from_path("/srv/a")])

    @pytest.mark.parametrize("path", ["/etc/passwd", "/srv/ab/x", "/srv"])
    def test_absolute_outside_refused(self, path: str) -> None:
        with pytest.raises(OutsideRoots, match="outside the allowed roots"):
            split_request_path(path, [Root.from_path("/srv/a")])


class TestReads:
    """Regular files are read, cut at maxBytes and hashed over exactly what is returned."""

    def test_whole_file(self, roots: RootSet) -> None:
        result = read(roots, path="hello.txt")
        assert result["content"] == INSIDE
        assert result["truncated"] is False
        assert result["bytesReturned"] == result["fileSize"] == len(INSIDE)
        assert result["sha256"] == hashlib.sha256(INSIDE.encode()).hexdigest()

    def test_absolute_inside(self, roots: RootSet, tree: Path) -> None:
        assert read(roots, path=str(tree / "sub" / "inner.txt"))["content"] == "inner\n"

    def test_truncated_at_max_bytes(self, roots: RootSet, tree: Path) -> None:
        data = (tree / "big.bin").read_bytes()
        result = read(roots, path="big.bin", maxBytes=1000, encoding="base64")
        assert result["truncated"] is True
        assert result["bytesReturned"] == 1000
        assert result["fileSize"] == 3000
        assert result["sha256"] == hashlib.sha256(data[:1000]).hexdigest()

    def test_remainder_after_offset(self, roots: RootSet, tree: Path) -> None:
        data = (tree / "big.bin").read_bytes()
        result = read(roots, path="big.bin", offset=2500, maxBytes=1000, encoding="base64")
        assert (result["bytesReturned"], result["truncated"]) == (500, False)
        assert result["sha256"] == hashlib.sha256(data[2500:]).hexdigest()
        cut = read(roots, path="big.bin", offset=1000, maxBytes=1000, encoding="base64")
        assert (cut["bytesReturned"], cut["truncated"]) == (1000, True)

    def test_offset_past_end(self, roots: RootSet) -> None:
        result = read(roots, path="hello.txt", offset=10_000)
        assert (result["content"], result["bytesReturned"], result["truncated"]) == ("", 0, False)

    def test_utf8_cut_never_splits_a_character(self, roots: RootSet, tree: Path) -> None:
        (tree / "e.txt").write_text("ééé")  # 6 bytes
        result = read(roots, path="e.txt", maxBytes=3)
        assert (result["content"], result["bytesReturned"], result["truncated"]) == ("é", 2, True)
        assert result["sha256"] == hashlib.sha256("é".encode()).hexdigest()

    def test_binary_as_utf8_is_typed(self, roots: RootSet) -> None:
        with pytest.raises(NotText, match="base64"):
            read(roots, path="big.bin")

    def test_symlink_inside_is_followed_safely(self, roots: RootSet) -> None:
        assert read(roots, path="link_in")["content"] == INSIDE
        assert read(roots, path="sub/link_up")["content"] == INSIDE

    def test_bad_args_are_typed(self, roots: RootSet) -> None:
        with pytest.raises(InvalidArgs, match="maxBytes"):
            parse_args({"path": "a", "maxBytes": 0})
        with pytest.raises(InvalidArgs, match="Additional properties"):
            parse_args({"path": "a", "mode": "w"})


class TestRefusals:
    """Every kind of path fs.read must refuse is refused with a typed, clear message."""

    def test_dotdot(self, roots: RootSet) -> None:
        error = refused(roots, "sub/../../outside/secret.txt")
        assert error.code == "fs.invalid_path"

    def test_absolute_outside(self, roots: RootSet, tree: Path) -> None:
        error = refused(roots, str(tree.parent / "outside" / "secret.txt"))
        assert error.code == "fs.outside_roots"

    @pytest.mark.parametrize("path", ["link_out", "abs_out", "dir_out/secret.txt"])
    def test_symlink_leading_out(self, roots: RootSet, path: str) -> None:
        error = refused(roots, path)
        assert error.code == "fs.outside_roots"
        assert "symlink" in error.message

    def test_symlink_loop(self, roots: RootSet, tree: Path) -> None:
        (tree / "loop_a").symlink_to("loop_b")
        (tree / "loop_b").symlink_to("loop_a")
        assert refused(roots, "loop_a").code == "fs.invalid_path"

    def test_nul_byte(self, roots: RootSet) -> None:
        error = refused(roots, "hello.txt\x00.png")
        assert (error.code, error.message) == ("fs.invalid_path", "path contains a NUL byte")

    def test_directory(self, roots: RootSet) -> None:
        error = refused(roots, "sub")
        assert isinstance(error, NotAFile)
        assert "is a directory" in error.message
        assert refused(roots, ".").code == "fs.not_a_file"

    def test_fifo_is_refused_without_blocking(self, roots: RootSet) -> None:
        # Opening a FIFO for reading with no writer would block forever; this must return.
        error = refused(roots, "fifo")
        assert isinstance(error, NotAFile)
        assert "FIFO" in error.message

    def test_socket(self, roots: RootSet) -> None:
        error = refused(roots, "sock")
        assert error.code == "fs.not_a_file"
        assert "socket" in error.message

    def test_device(self) -> None:
        devices = RootSet(["/dev"])
        try:
            error = refused(devices, "null")
        finally:
            devices.close()
        assert error.code == "fs.not_a_file"
        assert "character device" in error.message

    def test_missing(self, roots: RootSet) -> None:
        assert isinstance(refused(roots, "nope.txt"), NotFound)
        assert refused(roots, "hello.txt/x").code == "fs.not_found"


class TestSymlinkSwapRace:
    """A directory or file swapped for a symlink in a loop never lets a read leave the root."""

    ITERATIONS = 3000

    @pytest.mark.parametrize("target", ["dir", "file"])
    def test_swap_during_reads(self, tree: Path, target: str) -> None:
        outside = tree.parent / "outside"
        (outside / "d").mkdir()
        (outside / "d" / "f.txt").write_text(SECRET)
        (tree / "d").mkdir()
        (tree / "d" / "f.txt").write_text(INSIDE)
        base = tree / "d" if target == "file" else tree
        name = "f.txt" if target == "file" else "d"
        real, parked, link = base / name, base / f"{name}.real", base / f"{name}.link"
        link.symlink_to(outside / "d" / "f.txt" if target == "file" else outside / "d")
        stop = threading.Event()

        def swapper() -> None:
            # Each rename is atomic: the path is either the real thing or a symlink leading out.
            while not stop.is_set():
                os.rename(real, parked)
                os.rename(link, real)
                stop.wait(0.0001)  # let reads meet the symlink state...
                os.rename(real, link)
                os.rename(parked, real)
                stop.wait(0.0001)  # ...and the real one

        roots = RootSet([str(tree)])
        thread = threading.Thread(target=swapper, daemon=True)
        thread.start()
        outcomes: dict[str, int] = {}
        try:
            for _ in range(self.ITERATIONS):
                try:
                    content = read(roots, path="d/f.txt")["content"]
                except FsReadError as exc:
                    outcomes[exc.code] = outcomes.get(exc.code, 0) + 1
                else:
                    assert content == INSIDE, "a read returned bytes from outside the root"
                    outcomes["ok"] = outcomes.get("ok", 0) + 1
        finally:
            stop.set()
            thread.join()
            roots.close()
        # The race really happened: both the real file and the refusal were seen.
        assert outcomes.get("ok", 0) > 0
        assert sum(n for code, n in outcomes.items() if code != "ok") > 0
        assert set(outcomes) <= {"ok", "fs.outside_roots", "fs.not_found"}
