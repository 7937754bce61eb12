"""The scan: every family's patterns in one RE2 pass each, checks only on candidates.

::

    text ─▶ UTF-8 ─▶ family pass (RE2, one program per family) ─▶ candidate ─▶ check ─▶ span
              │                                                        (Luhn, mod 97, context…)
              └─ lines with backslash escapes ─▶ unescaped view ─▶ same passes ─▶ spans mapped back
    tenant patterns (RE2, each its own program) ─▶ spans
    all spans ─▶ merged (overlaps joined; the secret class wins) ─▶ character offsets

RE2 runs in time linear in the text whatever the pattern (no backtracking), so neither a
built-in pattern nor a tenant's can hang the scan. Within one family the leftmost
candidate wins and the scan goes on after it, whether the check took it or not: a
rejected card number is not searched again for a phone number inside it.
"""

from __future__ import annotations

import bisect
import functools
import re
from collections.abc import Callable, Iterable, Sequence

import attrs
import re2

from ._detectors import DETECTORS, FAMILIES, Detector, Span

#: The memory budget of one compiled program (RE2's DFA falls back to its slower NFA when
#: a program's states do not fit; the joined families fit well inside this).
PROGRAM_MAX_MEM = 32 << 20
#: Compiled families kept for sets of enabled classes (tenants mostly share the default).
FAMILY_CACHE = 64
FAMILY_RANK = {"tokens": 4, "assignments": 3, "prose": 3, "personal": 1}
TENANT_RANK = 5

_NAMED = re.compile(r"\(\?P<([a-z_]+)>")


def re2_options(max_mem: int = PROGRAM_MAX_MEM) -> re2.Options:
    options = re2.Options()
    options.log_errors = False
    options.max_mem = max_mem
    return options


# search(data, pos, endpos) -> the (start, end) of every group of the leftmost match at or
# after pos (-1, -1 for a group that took no part), or None.
Searcher = Callable[[bytes, int, int], "list[tuple[int, int]] | None"]


def public_searcher(regex: re2._Regexp) -> Searcher:
    """``Searcher`` through google-re2's public API (a match object per answer)."""

    def search(data: bytes, pos: int, endpos: int) -> list[tuple[int, int]] | None:
        found = regex.search(data, pos, endpos)
        if found is None:
            return None
        return [found.span(i) for i in range(regex.groups + 1)]

    return search


def searcher(regex: re2._Regexp) -> Searcher:
    """The fastest way to ask ``regex`` for its next match's spans.

    google-re2's public ``search`` wraps each answer in a generator and a match object;
    its compiled ``RE2`` object answers the same question in one call, with the spans as a
    list (``python -m bench.redact`` shows what it saves per candidate). The public path
    stays for a binding without that object; the tests check that both agree and that the
    fast one is in use.
    """
    try:
        match = regex._regexp.Match
        unanchored = re2._Anchor.UNANCHORED
    except AttributeError:  # pragma: no cover - another google-re2 layout
        return public_searcher(regex)

    def search(data: bytes, pos: int, endpos: int) -> list[tuple[int, int]] | None:
        spans: list[tuple[int, int]] = match(unanchored, data, pos, endpos)
        return None if spans[0][0] == -1 else spans

    search.fast = True  # type: ignore[attr-defined]
    return search


@attrs.frozen(kw_only=True)
class Found:
    """One thing to remove: ``text[start:end]`` is of class ``kind``."""

    start: int
    end: int
    kind: str


@attrs.frozen
class _Member:
    detector: Detector
    group: int
    inner: tuple[tuple[str, int], ...]


@attrs.frozen
class _Family:
    regex: re2._Regexp
    search: Searcher
    members: tuple[_Member, ...]
    #: Which class names an overlap of finds: a specific token beats an assignment, which
    #: beats personal data (a card number in ``password=…`` is reported as a password).
    rank: int


@functools.lru_cache(maxsize=FAMILY_CACHE)
def compiled_family(family: str, enabled: frozenset[str]) -> _Family | None:
    """The joined program of ``family``'s detectors whose classes are ``enabled``."""
    detectors = [
        d for d in DETECTORS if d.family == family and any(c in enabled for c in d.classes)
    ]
    if not detectors:
        return None
    parts = []
    for j, detector in enumerate(detectors):
        inner = _NAMED.sub(rf"(?P<g{j}_\1>", detector.pattern)
        parts.append(f"(?P<d{j}>{inner})")
    regex = re2.compile("|".join(parts), re2_options())
    index = regex.groupindex
    members = []
    for j, detector in enumerate(detectors):
        prefix = f"g{j}_"
        inner_groups = tuple(
            (name[len(prefix) :], at)
            for name, at in sorted(index.items())
            if name.startswith(prefix)
        )
        members.append(_Member(detector=detector, group=index[f"d{j}"], inner=inner_groups))
    return _Family(
        regex=regex, search=searcher(regex), members=tuple(members), rank=FAMILY_RANK[family]
    )


@attrs.frozen(kw_only=True)
class TenantPattern:
    """A tenant's named pattern, compiled (RE2). A group named ``value`` is what is removed."""

    name: str
    regex: re2._Regexp
    value_group: int | None


# (start, end, kind, rank) in bytes of the scanned data; rank orders overlapping finds.
_Hit = tuple[int, int, str, int]


def _scan_family(family: _Family, data: bytes, enabled: frozenset[str], out: list[_Hit]) -> None:
    search = family.search
    members = family.members
    pos, size = 0, len(data)
    while pos < size:
        spans = search(data, pos, size)
        if spans is None:
            return
        for member in members:
            start, end = spans[member.group]
            if start != -1:
                break
        whole_start, whole_end = spans[0]
        pos = whole_end if whole_end > whole_start else whole_start + 1
        detector = member.detector
        groups: dict[str, Span] = {}
        for name, at in member.inner:
            group_span = spans[at]
            if group_span[0] != -1:
                groups[name] = group_span
        kind = detector.name if detector.classify is None else detector.classify(data, groups)
        if kind is None or kind not in enabled:
            continue
        if detector.check is None:
            span: Span | None = groups.get("value", (start, end))
        else:
            span = detector.check(data, start, end, groups)
        if span is None or span[1] <= span[0]:
            continue
        out.append((span[0], span[1], kind, family.rank))
        pos = max(pos, span[1])


def _scan_builtins(data: bytes, enabled: frozenset[str], out: list[_Hit]) -> None:
    for name in FAMILIES:
        family = compiled_family(name, enabled)
        if family is not None:
            _scan_family(family, data, enabled, out)


def _scan_tenant(patterns: Sequence[TenantPattern], data: bytes, out: list[_Hit]) -> None:
    for pattern in patterns:
        for match in pattern.regex.finditer(data):
            start, end = match.span(pattern.value_group or 0)
            if end > start:
                out.append((start, end, pattern.name, TENANT_RANK))


# ---------------------------------------------------------------- escaped text

_ESCAPE = re.compile(rb'\\(?:u([0-9a-fA-F]{4})|([nrt"\\/bf]))')
_SIMPLE = {b"n": b"\n", b"r": b"\r", b"t": b"\t", b'"': b'"', b"\\": b"\\", b"/": b"/",
           b"b": b"\b", b"f": b"\f"}  # fmt: skip


class _View:
    """Text with its JSON/string escapes decoded, and the way back to the original offsets."""

    def __init__(self, data: bytes, base: int) -> None:
        pieces: list[bytes] = []
        # Segments of the view: (view start, original start, original length, is an escape).
        self.starts: list[int] = []
        self.segments: list[tuple[int, int, bool]] = []
        at = view = 0
        for match in _ESCAPE.finditer(data):
            if match.start() > at:
                self._add(pieces, data[at : match.start()], view, base + at, False)
                view += match.start() - at
            code, simple = match.groups()
            if simple is not None:
                decoded = _SIMPLE[simple]
            else:
                point = int(code, 16)
                decoded = chr(point).encode() if not 0xD800 <= point <= 0xDFFF else b"?"
            self._add(
                pieces, decoded, view, base + match.start(), True, match.end() - match.start()
            )
            view += len(decoded)
            at = match.end()
        if at < len(data):
            self._add(pieces, data[at:], view, base + at, False)
        self.data = b"".join(pieces)

    def _add(
        self,
        pieces: list[bytes],
        piece: bytes,
        view: int,
        original: int,
        escape: bool,
        length: int | None = None,
    ) -> None:
        pieces.append(piece)
        self.starts.append(view)
        self.segments.append((original, length if length is not None else len(piece), escape))

    def original(self, offset: int, *, end: bool) -> int:
        """The original offset of a view offset (an escape maps to its whole sequence)."""
        probe = offset - 1 if end else offset
        index = max(0, bisect.bisect_right(self.starts, probe) - 1)
        original, length, escape = self.segments[index]
        if escape:
            return original + length if end else original
        return original + (offset - self.starts[index])


def _escaped_regions(data: bytes) -> Iterable[tuple[int, int]]:
    """Runs of whole lines that hold a backslash escape."""
    pos = data.find(b"\\")
    while pos != -1:
        start = data.rfind(b"\n", 0, pos) + 1
        stop = data.find(b"\n", pos)
        stop = len(data) if stop == -1 else stop
        while True:  # take the following lines too while they hold escapes
            nxt = data.find(b"\\", stop)
            if nxt == -1 or data.count(b"\n", stop, nxt) > 1:
                break
            stop = data.find(b"\n", nxt)
            stop = len(data) if stop == -1 else stop
        yield start, stop
        pos = data.find(b"\\", stop)


def _scan_escaped(data: bytes, enabled: frozenset[str], out: list[_Hit]) -> None:
    for start, stop in _escaped_regions(data):
        region = data[start:stop]
        if _ESCAPE.search(region) is None:
            continue
        view = _View(region, start)
        found: list[_Hit] = []
        _scan_builtins(view.data, enabled, found)
        for s, e, kind, rank in found:
            out.append((view.original(s, end=False), view.original(e, end=True), kind, rank))


# ---------------------------------------------------------------- the whole scan


def _merge(hits: list[_Hit]) -> list[_Hit]:
    """Overlapping hits joined into one; its kind is the highest-ranked, then the longest."""
    hits.sort()
    merged: list[_Hit] = []
    best: list[tuple[int, int, str]] = []
    for start, end, kind, rank in hits:
        if merged and start < merged[-1][1]:
            last = merged[-1]
            best.append((rank, end - start, kind))
            merged[-1] = (last[0], max(last[1], end), max(best)[2], 0)
        else:
            best = [(rank, end - start, kind)]
            merged.append((start, end, kind, 0))
    return merged


def _char_offsets(data: bytes, offsets: Iterable[int]) -> dict[int, int]:
    """Byte offsets in ``data`` as character offsets of the text it encodes."""
    result: dict[int, int] = {}
    byte_at = char_at = 0
    for wanted in sorted(set(offsets)):
        offset = wanted
        while 0 < offset < len(data) and data[offset] & 0xC0 == 0x80:
            offset -= 1  # never inside a character
        char_at += len(data[byte_at:offset].decode("utf-8", "surrogatepass"))
        byte_at = offset
        result[wanted] = char_at
    return result


_SURROGATE = re.compile("[\ud800-\udfff]")


def scan(text: str, enabled: frozenset[str], tenant: Sequence[TenantPattern] = ()) -> list[Found]:
    """Everything to remove from ``text``, in order, overlaps merged (character offsets)."""
    try:
        data = text.encode("utf-8")
    except UnicodeEncodeError:
        # Lone surrogates: scan a copy where each is one replacement character (the same
        # number of characters, so the offsets hold for the original).
        data = _SURROGATE.sub("\ufffd", text).encode("utf-8")
    hits: list[_Hit] = []
    _scan_builtins(data, enabled, hits)
    if b"\\" in data:
        _scan_escaped(data, enabled, hits)
    if tenant:
        _scan_tenant(tenant, data, hits)
    if not hits:
        return []
    merged = _merge(hits)
    if len(data) == len(text):
        return [Found(start=s, end=e, kind=k) for s, e, k, _ in merged]
    chars = _char_offsets(data, [x for s, e, _, _ in merged for x in (s, e)])
    return [Found(start=chars[s], end=chars[e], kind=k) for s, e, k, _ in merged]
