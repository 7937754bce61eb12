"""What the detectors' checks share: the types of a candidate, and looking around it."""

from __future__ import annotations

from collections.abc import Callable, Mapping

Span = tuple[int, int]
Groups = Mapping[str, Span]
# check(data, start, end, groups) -> the span to remove, or None
Check = Callable[[bytes, int, int, Groups], "Span | list[Span] | None"]
# classify(data, groups) -> the class of this candidate, or None
Classify = Callable[[bytes, Groups], "str | None"]
# expand(data, anchor_start) -> where the detector's pattern would start, or None
Expand = Callable[[bytes, int], "int | None"]


def value_span(groups: Groups, start: int, end: int) -> Span:
    return groups.get("value", (start, end))


def window(data: bytes, start: int, size: int) -> bytes:
    return data[max(0, start - size) : start].lower()


def line_before(data: bytes, start: int, size: int = 120) -> bytes:
    before = window(data, start, size)
    return before[before.rfind(b"\n") + 1 :]


def glued(data: bytes, start: int, end: int, chars: bytes) -> bool:
    """Whether the candidate touches one of ``chars`` on either side (part of a bigger token)."""
    before = data[start - 1 : start] if start else b""
    after = data[end : end + 1]
    return bool(before and before in chars) or bool(after and after in chars)


WORD_CHARS = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_"


def back_over(data: bytes, at: int, chars: frozenset[int], limit: int, utf8: bool) -> int:
    """Where a run of ``chars`` that ends at ``at`` starts (an escape such as ``\\n`` ends it)."""
    start = at
    while start > 0 and at - start < limit:
        b = data[start - 1]
        if not (b in chars or (utf8 and b >= 0x80)):
            break
        if start >= 2 and data[start - 2] == 0x5C:  # the letter of an escape: \n, \t…
            break
        start -= 1
    return start
