"""Path confinement for ``fs.read``: lexical checks, then an ``openat`` walk never following links.

Two steps, each safe on its own:

1. :func:`split_request_path` (pure) refuses NUL bytes, empty paths and every ``..``
   component, picks the root an absolute path lies in (refusing one outside all roots)
   and returns the path as components relative to that root.
2. :func:`open_confined` walks those components from the root's directory fd, one
   ``openat`` per component with ``O_NOFOLLOW`` (``O_DIRECTORY`` for directories), so the
   kernel never follows a symlink for us. A symlink met on the way is read with
   ``readlinkat`` and its target resolved *lexically* against the directories already
   walked; a target leaving the root is refused. The leaf is checked with ``lstat``
   before it is opened (devices, FIFOs and sockets are never opened), opened with
   ``O_NONBLOCK`` (so even a FIFO swapped in at the last moment cannot block), and
   verified with ``fstat``. On Linux the opened fd's path in ``/proc/self/fd`` is checked
   to lie inside the root as a last guard (it also catches a directory renamed out of
   the root during the walk).

Errors are the :mod:`._errors` tree; this module adds none.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Sequence

import attrs

from ._errors import (
    FsReadError,
    NotAFile,
    NotFound,
    OutsideRoots,
    PathRefused,
    from_os_error,
)

MAX_SYMLINK_HOPS = 40
"""Symlinks resolved for one path before it is refused (Linux's own limit is 40)."""

_PROC_FD = "/proc/self/fd"
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_FILE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOCTTY


@attrs.frozen(kw_only=True)
class Root:
    """One allow-listed directory: its real path and the spellings that name it."""

    real: str
    aliases: tuple[tuple[str, ...], ...]

    @classmethod
    def from_path(cls, path: str) -> Root:
        """Describe the directory ``path`` (no I/O beyond resolving symlinks in it)."""
        given = os.path.abspath(path)
        real = os.path.realpath(path)
        aliases = {_components(real), _components(given)}
        return cls(real=real, aliases=tuple(sorted(aliases, key=len, reverse=True)))


def _components(path: str) -> tuple[str, ...]:
    return tuple(part for part in path.split("/") if part not in ("", "."))


def describe_mode(mode: int) -> str:
    """A person's word for the kind of file ``mode`` names."""
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode):
        return "a character device"
    if stat.S_ISBLK(mode):
        return "a block device"
    if stat.S_ISLNK(mode):
        return "a symlink"
    return "not a regular file"


def split_request_path(path: str, roots: Sequence[Root]) -> tuple[int, tuple[str, ...]]:
    """Check ``path`` lexically and place it under one of ``roots``.

    Args:
        path: as the caller gave it: relative (to the first root) or absolute.
        roots: the allow-list, first one the base for relative paths.

    Returns:
        The index of the root and the components below it (empty for the root itself).

    Raises:
        PathRefused: empty, a NUL byte, or any ``..`` component (even one that would
            stay inside: a path that needs ``..`` is never needed).
        OutsideRoots: an absolute path under none of the roots.
    """
    if "\x00" in path:
        raise PathRefused("path contains a NUL byte")
    if not path:
        raise PathRefused("path is empty")
    if ".." in path.split("/"):
        raise PathRefused(f"'..' is not allowed in a path: {path}")
    parts = _components(path)
    if not path.startswith("/"):
        return 0, parts
    best: tuple[int, int] | None = None
    for index, root in enumerate(roots):
        for alias in root.aliases:
            if parts[: len(alias)] == alias and (best is None or len(alias) > best[1]):
                best = (index, len(alias))
    if best is None:
        raise OutsideRoots(f"{path} is outside the allowed roots")
    return best[0], parts[best[1] :]


def _target_components(target: str, root: Root, shown: str) -> tuple[bool, tuple[str, ...]]:
    """A symlink target as (absolute?, components below the root when absolute)."""
    if not target.startswith("/"):
        return False, _components(target)
    parts = _components(target)
    for alias in root.aliases:
        if parts[: len(alias)] == alias:
            return True, parts[len(alias) :]
    raise OutsideRoots(f"{shown}: a symlink on the path leads outside the allowed roots")


def open_confined(root_fd: int, root: Root, components: Sequence[str], shown: str) -> int:
    """Open the regular file at ``components`` below ``root`` without leaving it.

    Args:
        root_fd: an open directory fd of ``root`` (not closed here).
        root: the root's description (for absolute symlink targets and the final check).
        components: from :func:`split_request_path`.
        shown: the path as the caller wrote it, for messages.

    Returns:
        A new read-only, non-blocking fd of a regular file inside the root; the caller
        closes it.

    Raises:
        FsReadError: the typed reason (see :mod:`._errors`), never a bare ``OSError``.
    """
    owned: list[int] = []
    try:
        return _walk(root_fd, root, list(components), shown, owned)
    except FsReadError:
        raise
    except OSError as exc:
        raise from_os_error(exc, shown) from None
    finally:
        for fd in owned:
            os.close(fd)


def _walk(root_fd: int, root: Root, pending: list[str], shown: str, owned: list[int]) -> int:
    walked: list[str] = []  # real directories below the root, none of them a symlink
    current = root_fd
    hops = 0

    def restart(new_pending: list[str]) -> None:
        nonlocal current, pending
        for fd in owned:
            os.close(fd)
        owned.clear()
        walked.clear()
        current = root_fd
        pending = new_pending

    while pending:
        name = pending.pop(0)
        if name in ("", "."):
            continue
        if name == "..":
            # Only symlink targets bring '..' here; it is resolved against real directories.
            if not walked:
                raise OutsideRoots(
                    f"{shown}: a symlink on the path leads outside the allowed roots"
                )
            restart(walked[:-1] + pending)
            continue
        st = os.stat(name, dir_fd=current, follow_symlinks=False)
        if stat.S_ISLNK(st.st_mode):
            hops += 1
            if hops > MAX_SYMLINK_HOPS:
                raise PathRefused(f"{shown}: too many symlinks")
            try:
                target = os.readlink(name, dir_fd=current)
            except OSError as exc:
                if exc.errno != errno.EINVAL:
                    raise
                # No longer a symlink (swapped back since lstat): look again.
                pending.insert(0, name)
                continue
            absolute, parts = _target_components(target, root, shown)
            if absolute:
                restart([*parts, *pending])
            else:
                pending = [*parts, *pending]
            continue
        last = not pending
        try:
            if not last:
                if not stat.S_ISDIR(st.st_mode):
                    raise NotFound(f"no such file: {shown} ({name!r} is not a directory)")
                fd = os.open(name, _DIR_FLAGS, dir_fd=current)
                owned.append(fd)
                walked.append(name)
                current = fd
                continue
            if not stat.S_ISREG(st.st_mode):
                raise NotAFile(f"{shown} is {describe_mode(st.st_mode)}, not a regular file")
            fd = os.open(name, _FILE_FLAGS, dir_fd=current)
        except OSError as exc:
            if exc.errno not in (errno.ELOOP, errno.ENOTDIR):
                raise
            # Swapped for a symlink (or a file) between lstat and open: look again.
            hops += 1
            if hops > MAX_SYMLINK_HOPS:
                raise PathRefused(f"{shown}: too many symlinks") from None
            pending.insert(0, name)
            continue
        try:
            _verify_leaf(fd, root, shown)
        except BaseException:
            os.close(fd)
            raise
        return fd
    raise NotAFile(f"{shown} is a directory, not a regular file")


def _verify_leaf(fd: int, root: Root, shown: str) -> None:
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):
        raise NotAFile(f"{shown} is {describe_mode(st.st_mode)}, not a regular file")
    try:
        where = os.readlink(f"{_PROC_FD}/{fd}")
    except OSError:
        return  # no /proc (not Linux): the O_NOFOLLOW walk is the guarantee
    if not where.startswith(root.real.rstrip("/") + "/"):
        raise OutsideRoots(f"{shown}: the file opened lies outside the allowed roots")
