"""npm-style semver ranges, by ``node-semver`` (a port of npm's own ``semver`` package).

A range is parsed once, when its bundle is verified; testing a version against it is then
a few comparisons. Two guards sit in front of the library: the range is at most
``MAX_RANGE_CHARS`` long and its whitespace runs are collapsed to one space before it is
parsed, because the library's trimming regexes take time cubic in the length of a run of
spaces (400 spaces: 46 s; collapsed, the worst 128-character range found parses in ~5 ms).
"""

from __future__ import annotations

import functools
import re
from typing import Final

import nodesemver

#: The bundle schema's limit on a rule's ``versions``.
MAX_RANGE_CHARS: Final = 128
_SPACES = re.compile(r"\s+")
#: A semantic version as the relay schema and the tool manifests write it.
_VERSION = re.compile(
    r"^(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)(-[0-9A-Za-z.-]+)?(\+[0-9A-Za-z.-]+)?\Z"
)


class VersionRange:
    """A parsed range; ``matches(version)`` says whether a version satisfies it."""

    __slots__ = ("_range", "text")

    def __init__(self, text: str) -> None:
        """Parse ``text``.

        Raises:
            ValueError: too long, empty, or not a range npm would accept.
        """
        if not isinstance(text, str) or not text.strip():
            raise ValueError("a version range must be a non-empty text")
        if len(text) > MAX_RANGE_CHARS:
            raise ValueError(f"a version range is at most {MAX_RANGE_CHARS} characters")
        collapsed = _SPACES.sub(" ", text.strip())
        try:
            parsed = nodesemver.make_range(collapsed, False)
        except Exception as exc:  # the library raises ValueError, and others on odd input
            raise ValueError(f"{text!r} is not a semver range: {exc}") from None
        self.text = text
        self._range = parsed

    def matches(self, version: str) -> bool:
        """Whether ``version`` satisfies the range (npm rules: prereleases only if named)."""
        if not is_version(version):
            return False
        try:
            return bool(self._range.test(version))
        except Exception:  # an unreadable version satisfies nothing
            return False

    def __repr__(self) -> str:
        return f"VersionRange({self.text!r})"


@functools.lru_cache(maxsize=1024)
def is_version(text: str) -> bool:
    """Whether ``text`` is a semantic version (``1.2.3``, ``1.2.3-beta.1``)."""
    return len(text) <= 64 and _VERSION.match(text) is not None
