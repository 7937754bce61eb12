"""Where a path argument really leads on this device, for the policy's path lists.

The host matches a path as written; the device can do better, and must: a symlink inside
an allowed folder may lead into a denied one, and a filesystem that ignores case makes
``Secrets`` and ``secrets`` one folder. :func:`resolve_on_device` walks the path from its
root component by component, without opening anything: a symlink is read and its target
followed (a target outside the root is refused), each existing component takes the name
the filesystem stores (found by listing the folder when the filesystem ignores case), in
Unicode NFC; components that do not exist yet (a file about to be written) are kept as
written. The result is the path relative to its root, as policy globs are written.
"""

from __future__ import annotations

import functools
import os
import stat
import unicodedata
from collections.abc import Sequence
from typing import Final

from actors.policy import PathRefused

MAX_SYMLINK_HOPS: Final = 40


@functools.lru_cache(maxsize=64)
def ignores_case(root: str) -> bool:
    """Whether the filesystem of ``root`` treats names that differ only in case as one."""
    head, name = os.path.split(root.rstrip("/"))
    swapped = name.swapcase()
    if not head or swapped == name:
        return False
    try:
        return os.path.samestat(os.lstat(root), os.lstat(os.path.join(head, swapped)))
    except OSError:
        return False


def _stored_name(folder: str, name: str, fold: bool) -> str:
    """The name ``folder`` stores for ``name`` (as given when it is stored that way)."""
    if not fold:
        return name
    try:
        entries = os.listdir(folder)
    except OSError:
        return name
    if name in entries:
        return name
    folded = name.casefold()
    return next((entry for entry in entries if entry.casefold() == folded), name)


def _split(path: str) -> list[str]:
    return [part for part in path.split("/") if part not in ("", ".")]


def resolve_on_device(value: object, roots: Sequence[str]) -> str:
    """The path ``value`` leads to, relative to its root (see the module docstring).

    Args:
        value: the path argument: relative to the first root, or absolute inside one.
        roots: the real paths of the roots the device's tools serve, first one first.

    Raises:
        PathRefused: not a text, a NUL byte or backslash, a ``..`` component, absolute
            outside every root, a symlink that leads out of its root, or too many links.
    """
    if not isinstance(value, str) or not value:
        raise PathRefused("a path argument is not a non-empty text")
    if "\x00" in value or "\\" in value:
        raise PathRefused(f"{value[:80]!r}: NUL bytes and backslashes are not allowed")
    if ".." in value.split("/"):
        raise PathRefused(f"{value[:80]!r}: '..' is not allowed in a path")
    root, pending = roots[0], _split(value)
    if value.startswith("/"):
        best = ""
        for candidate in roots:
            prefix = candidate.rstrip("/") + "/"
            if (value + "/").startswith(prefix) and len(candidate) > len(best):
                best = candidate
        if not best:
            raise PathRefused(f"{value[:80]!r} is outside the device's roots")
        root, pending = best, _split(value[len(best.rstrip("/")) :])
    fold = ignores_case(root)
    walked: list[str] = []
    hops = 0
    while pending:
        name = pending.pop(0)
        if name == "..":  # only a symlink target brings one here
            if not walked:
                raise PathRefused(f"{value[:80]!r}: a symlink on the path leads outside its root")
            walked.pop()
            continue
        folder = os.path.join(root, *walked)
        name = _stored_name(folder, name, fold)
        here = os.path.join(folder, name)
        try:
            info = os.lstat(here)
        except OSError:
            walked.append(name)  # not there (yet): kept as written
            continue
        if stat.S_ISLNK(info.st_mode):
            hops += 1
            if hops > MAX_SYMLINK_HOPS:
                raise PathRefused(f"{value[:80]!r}: too many symlinks")
            target = os.readlink(here)
            if target.startswith("/"):
                prefix = root.rstrip("/") + "/"
                if not (target + "/").startswith(prefix):
                    raise PathRefused(
                        f"{value[:80]!r}: a symlink on the path leads outside its root"
                    )
                walked, pending = [], _split(target[len(prefix) - 1 :]) + pending
            else:
                pending = _split(target) + pending
            continue
        walked.append(name)
    if not walked:
        raise PathRefused(f"{value[:80]!r} names the root itself")
    return unicodedata.normalize("NFC", "/".join(walked))
