"""Paths in policy: normalising what a call asks for, and globs that match no more than meant.

A path argument is normalised before it is matched: NUL bytes, backslashes, absolute paths
(``/x``, ``C:x``, ``~x``) and ``..`` components are refused; ``.`` and empty components
are dropped; the text is put in Unicode NFC (so ``café`` written with a combining accent is
the same path as with a precomposed one). The host matches what it can see this way; the
device matches again after resolving symlinks and taking each component's case from the
filesystem (``actors.bridge``).

Globs are relative to the device's roots and segment-wise: ``*`` and ``?`` never cross a
``/`` (``notes/*.txt`` does not match ``notes/sub/a.txt``, ``notes*`` does not match
``notes-old/a``), ``**`` as a whole segment matches one or more segments at the end and
zero or more elsewhere. Character classes and braces are refused rather than guessed at.
An allow glob matches with the case it is written in; a deny glob ignores case, so that
``Secrets/key`` cannot slip past ``secrets/**`` on a filesystem that ignores case.

A glob is matched in time linear in the path (times the glob's length), whatever the glob:
the call's path is the model's to choose. Compiled naively (``[^/]*`` for each ``*``), a
backtracking engine tries every way of sharing a segment among its stars, and every way of
sharing the path among its ``**``: ``*a*a*a*a*a*a*a*a*a*ab`` took 12 s against a
40-character path. So the text between two stars is placed at its leftmost fit, once, in an
atomic group (``(?>[^/]*?ab)``), and so is the run of segments between two ``**``: if the
glob matches at all, it matches with each placed leftmost, as nothing after it can need it
further left; only the last piece of each is left to find its place at the end.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping
from typing import Any, Final

#: The argument names that hold paths, in any tool (fs.read's ``path``; the filesystem
#: MCP server's ``path``, ``paths``, ``source`` and ``destination``).
PATH_ARGUMENTS: Final = ("path", "source", "destination")
PATH_LIST_ARGUMENTS: Final = ("paths",)
MAX_PATH_CHARS: Final = 4096
_DRIVE = re.compile(r"^[A-Za-z]:")
_UNSUPPORTED_GLOB = frozenset("[]{}\\")


class PathRefused(ValueError):
    """A path cannot be matched against policy (the message says why)."""


def normalize_path(path: object) -> str:
    """``path`` as policy matches it: relative, NFC, no ``.``, ``..`` or empty components.

    Raises:
        PathRefused: not a text, empty, too long, a NUL byte, a backslash, absolute, or a
            ``..`` component.
    """
    if not isinstance(path, str):
        raise PathRefused("a path argument is not a text")
    if len(path) > MAX_PATH_CHARS:
        raise PathRefused(f"a path is longer than {MAX_PATH_CHARS} characters")
    if "\x00" in path:
        raise PathRefused("a path holds a NUL byte")
    if "\\" in path:
        raise PathRefused(f"{path[:80]!r}: backslashes are not allowed in a path")
    if path.startswith(("/", "~")) or _DRIVE.match(path):
        raise PathRefused(f"{path[:80]!r}: absolute paths are not allowed (relative to the roots)")
    parts = [
        part for part in unicodedata.normalize("NFC", path).split("/") if part not in ("", ".")
    ]
    if ".." in parts:
        raise PathRefused(f"{path[:80]!r}: '..' is not allowed in a path")
    if not parts:
        raise PathRefused(f"{path[:80]!r} names no file")
    return "/".join(parts)


def path_arguments(args: Mapping[str, Any]) -> tuple[object, ...]:
    """Every value of the arguments that hold paths (not yet checked)."""
    found: list[object] = [args[name] for name in PATH_ARGUMENTS if name in args]
    for name in PATH_LIST_ARGUMENTS:
        if name in args:
            value = args[name]
            found.extend(value if isinstance(value, list) else [value])
    return tuple(found)


def _piece(text: str) -> str:
    """Text between stars: literal characters, ``?`` for any one but ``/``."""
    return "".join("[^/]" if char == "?" else re.escape(char) for char in text)


def _segment_regex(segment: str) -> str:
    """One segment and the ``/`` after it; the text between two stars placed leftmost."""
    if "*" not in segment:
        return _piece(segment) + "/"
    first, *middle, last = segment.split("*")
    placed = "".join(f"(?>[^/]*?{_piece(text)})" for text in middle if text)
    return f"{_piece(first)}{placed}[^/]*{_piece(last)}/"


def _glob_regex(segments: list[str]) -> str:
    """The regex of a glob's segments, matched against the path with a ``/`` appended.

    The segments between two ``**`` are placed at their leftmost fit, once; those after
    the last ``**`` are found from the end; a ``**`` at the end is one segment or more.
    """
    runs: list[list[str]] = [[]]
    for segment in segments:
        if segment == "**":
            runs.append([])
        else:
            runs[-1].append(segment)

    def run_regex(run: list[str]) -> str:
        return "".join(_segment_regex(segment) for segment in run)

    if len(runs) == 1:
        return run_regex(runs[0]) + r"\Z"
    head, *between, tail = runs
    out = [run_regex(head)]
    out.extend(f"(?>(?:[^/]+/)*?{run_regex(run)})" for run in between)
    out.append(f"(?:[^/]+/)*{run_regex(tail)}" if tail else "(?:[^/]+/)+")
    return "".join(out) + r"\Z"


class PathGlob:
    """One compiled glob (see the module docstring)."""

    __slots__ = ("_exact", "_folded", "text")

    def __init__(self, text: str) -> None:
        """Compile ``text``.

        Raises:
            ValueError: empty, absolute, ``..``, a character class or brace, or ``**``
                inside a segment.
        """
        if not isinstance(text, str) or not text:
            raise ValueError("a path glob must be a non-empty text")
        if _UNSUPPORTED_GLOB & set(text):
            raise ValueError(f"{text!r}: [ ] {{ }} and \\ are not supported in path globs")
        if text.startswith(("/", "~")) or _DRIVE.match(text):
            raise ValueError(f"{text!r}: globs are relative to the device's roots")
        segments = [s for s in unicodedata.normalize("NFC", text).split("/") if s not in ("", ".")]
        if not segments:
            raise ValueError(f"{text!r} matches nothing")
        if ".." in segments:
            raise ValueError(f"{text!r}: '..' is not allowed in a glob")
        if any("**" in segment and segment != "**" for segment in segments):
            raise ValueError(f"{text!r}: ** must be a whole path segment")
        regex = _glob_regex(segments)
        self.text = text
        self._exact = re.compile(regex)
        self._folded = re.compile(regex, re.IGNORECASE)

    def matches(self, normalized: str, *, ignore_case: bool = False) -> bool:
        """Whether a path from :func:`normalize_path` matches."""
        regex = self._folded if ignore_case else self._exact
        return regex.match(normalized + "/") is not None

    @property
    def matches_everything(self) -> bool:
        """``**`` or ``*``-only segments all the way: lint warns about such a glob."""
        return all(set(s) <= {"*"} for s in self.text.split("/") if s not in ("", "."))

    def __repr__(self) -> str:
        return f"PathGlob({self.text!r})"
