r"""The scan: every family's patterns in one RE2 pass each, checks only on candidates.

::

    text ─▶ UTF-8 ─▶ (\n \r \t seen as line breaks and tabs, offsets kept)
          ─▶ family pass (RE2, one small program per family) ─▶ candidate ─▶ check ─▶ span
                                                                   (Luhn, mod 97, context…)
          └─ lines with \/ or \uXXXX escapes ─▶ decoded view ─▶ same passes ─▶ spans mapped back
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

from ._context import Span
from ._detectors import DETECTORS, FAMILIES, Detector

#: The memory budget of one compiled program (RE2's DFA falls back to its slower NFA when
#: a program's states do not fit; the joined families fit well inside this).
PROGRAM_MAX_MEM = 32 << 20
#: Compiled families kept for sets of enabled classes (tenants mostly share the default).
FAMILY_CACHE = 64
ANCHORED = "anchored"
FAMILY_RANK = {
    "anchored": 4, "base64": 4, "assignments": 3, "prose": 3, "numbers": 1, "phone": 1, "ipv6": 1,
}  # fmt: skip
TENANT_RANK = 5
#: Matches of one tenant pattern in one text, past which the rest of the text is redacted
#: whole (a pattern such as ``.`` must not cost a million steps).
MAX_TENANT_MATCHES = 10_000

_NAMED = re.compile(r"\(\?P<([a-z_]+)>")


def re2_options(max_mem: int = PROGRAM_MAX_MEM) -> re2.Options:
    options = re2.Options()
    options.log_errors = False
    options.max_mem = max_mem
    return options


# search(data, pos, endpos) -> the (start, end) of every group of the leftmost match at or
# after pos (-1, -1 for a group that took no part), or None.
Searcher = Callable[[bytes, int, int], "list[tuple[int, int]] | None"]


def public_searcher(regex: re2._Regexp, *, anchored: bool = False) -> Searcher:
    """``Searcher`` through google-re2's public API (a match object per answer)."""
    method = regex.match if anchored else regex.search

    def search(data: bytes, pos: int, endpos: int) -> list[tuple[int, int]] | None:
        found = method(data, pos, endpos)
        if found is None:
            return None
        return [found.span(i) for i in range(regex.groups + 1)]

    return search


def searcher(regex: re2._Regexp, *, anchored: bool = False) -> Searcher:
    """The fastest way to ask ``regex`` for its next match's spans.

    google-re2's public ``search`` wraps each answer in a generator and a match object;
    its compiled ``RE2`` object answers the same question in one call, with the spans as a
    list (``python -m bench.redact`` shows what it saves per candidate). The public path
    stays for a binding without that object; the tests check that both agree and that the
    fast one is in use.
    """
    try:
        match = regex._regexp.Match
        anchor = re2._Anchor.ANCHOR_START if anchored else re2._Anchor.UNANCHORED
    except AttributeError:  # pragma: no cover - another google-re2 layout
        return public_searcher(regex, anchored=anchored)

    def search(data: bytes, pos: int, endpos: int) -> list[tuple[int, int]] | None:
        spans: list[tuple[int, int]] = match(anchor, data, pos, endpos)
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
    #: For an anchored detector: its own pattern, tried at a place (ANCHOR_START).
    match: Searcher | None = None


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
    """The joined program of ``family``'s detectors whose classes are ``enabled``.

    For the ``anchored`` family the program holds only the detectors' anchors; each
    detector's own pattern is compiled on its own, to be tried where its anchor is.
    """
    detectors = [
        d for d in DETECTORS if d.family == family and any(c in enabled for c in d.classes)
    ]
    if not detectors:
        return None
    anchored = family == ANCHORED
    parts = []
    for j, detector in enumerate(detectors):
        if anchored:
            assert detector.anchor is not None
            parts.append(f"(?P<d{j}>{detector.anchor})")
        else:
            inner = _NAMED.sub(rf"(?P<g{j}_\1>", detector.pattern)
            parts.append(f"(?P<d{j}>{inner})")
    regex = re2.compile("|".join(parts), re2_options())
    index = regex.groupindex
    members = []
    for j, detector in enumerate(detectors):
        if anchored:
            own = re2.compile(detector.pattern, re2_options())
            inner_groups = tuple(sorted((n, at) for n, at in own.groupindex.items()))
            members.append(
                _Member(
                    detector=detector,
                    group=index[f"d{j}"],
                    inner=inner_groups,
                    match=searcher(own, anchored=True),
                )
            )
            continue
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
    search: Searcher = attrs.field(init=False)

    @search.default
    def _search(self) -> Searcher:
        return searcher(self.regex)


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
        if member.match is not None:  # an anchor: try the detector's own pattern here
            begin = start if detector.expand is None else detector.expand(data, start)
            if begin is None:
                continue
            own = member.match(data, begin, size)
            if own is None:
                continue
            spans = own
            start, end = own[0]
        groups: dict[str, Span] = {}
        for name, at in member.inner:
            group_span = spans[at]
            if group_span[0] != -1:
                groups[name] = group_span
        kind = detector.name if detector.classify is None else detector.classify(data, groups)
        if kind is None or kind not in enabled:
            continue
        if detector.check is None:
            checked: Span | list[Span] | None = groups.get("value", (start, end))
        else:
            checked = detector.check(data, start, end, groups)
        if checked is None:
            continue
        for span in checked if isinstance(checked, list) else (checked,):
            if span[1] <= span[0]:
                continue
            out.append((span[0], span[1], kind, family.rank))
            if member.match is None:
                # Go on after what was found; anchored finds may overlap (a URL's user can
                # be an address), and the overlaps are merged.
                pos = max(pos, span[1])


def _scan_builtins(data: bytes, enabled: frozenset[str], out: list[_Hit]) -> None:
    for name in FAMILIES:
        family = compiled_family(name, enabled)
        if family is not None:
            _scan_family(family, data, enabled, out)


def _scan_tenant(patterns: Sequence[TenantPattern], data: bytes, out: list[_Hit]) -> None:
    size = len(data)
    for pattern in patterns:
        search = pattern.search
        group = pattern.value_group or 0
        pos = found = 0
        while pos < size:
            spans = search(data, pos, size)
            if spans is None:
                break
            whole_start, whole_end = spans[0]
            pos = whole_end if whole_end > whole_start else whole_start + 1
            start, end = spans[group]
            if end > start:
                out.append((start, end, pattern.name, TENANT_RANK))
                found += 1
                if found >= MAX_TENANT_MATCHES:
                    # A pattern that matches everywhere would cost a Python step per match:
                    # the rest of the text goes as one redaction (closed, not open).
                    out.append((end, size, pattern.name, TENANT_RANK))
                    break


# ---------------------------------------------------------------- escaped text

_ESCAPE = re.compile(rb'\\(?:u([0-9a-fA-F]{4})|([nrt"\\/bf]))')
_SIMPLE = {b"n": b"\n", b"r": b"\r", b"t": b"\t", b'"': b'"', b"\\": b"\\", b"/": b"/",
           b"b": b"\b", b"f": b"\f"}  # fmt: skip


class _View:
    """Text with its JSON/string escapes decoded, and the way back to the original offsets."""

    def __init__(self, data: bytes, base: int) -> None:
        pieces: list[bytes] = []
        # Segment k of the view starts at starts[k]; it is the original's bytes from
        # origins[k], literally (lengths[k] == -1) or as an escape of lengths[k] bytes.
        starts: list[int] = []
        origins: list[int] = []
        lengths: list[int] = []
        at = view = 0
        simple = _SIMPLE
        for match in _ESCAPE.finditer(data):
            escape_at, escape_end = match.span()
            if escape_at > at:
                pieces.append(data[at:escape_at])
                starts.append(view)
                origins.append(base + at)
                lengths.append(-1)
                view += escape_at - at
            code, letter = match.groups()
            if letter is not None:
                decoded = simple[letter]
            else:
                point = int(code, 16)
                decoded = chr(point).encode() if not 0xD800 <= point <= 0xDFFF else b"?"
            pieces.append(decoded)
            starts.append(view)
            origins.append(base + escape_at)
            lengths.append(escape_end - escape_at)
            view += len(decoded)
            at = escape_end
        if at < len(data):
            pieces.append(data[at:])
            starts.append(view)
            origins.append(base + at)
            lengths.append(-1)
        self.data = b"".join(pieces)
        self.starts, self.origins, self.lengths = starts, origins, lengths

    def original(self, offset: int, *, end: bool) -> int:
        """The original offset of a view offset (an escape maps to its whole sequence)."""
        probe = offset - 1 if end else offset
        index = max(0, bisect.bisect_right(self.starts, probe) - 1)
        length = self.lengths[index]
        if length == -1:
            return self.origins[index] + (offset - self.starts[index])
        return self.origins[index] + length if end else self.origins[index]


# Escapes the same-length view cannot show as they are: only lines holding one of these
# are decoded into a view of their own.
_NEEDS_VIEW = re.compile(rb"\\(?:/|u[0-9a-fA-F]{4})")


def same_length_view(data: bytes) -> bytes:
    """``\\n``, ``\\r`` and ``\\t`` as a space and the character itself: what follows an
    escaped line break starts a line, as it does once decoded, and every offset holds."""
    return data.replace(b"\\n", b" \n").replace(b"\\r", b" \r").replace(b"\\t", b" \t")


def _escaped_regions(data: bytes) -> Iterable[tuple[int, int]]:
    """Runs of whole lines that hold an escape ``same_length_view`` leaves (``\\/``, ``\\u``)."""
    found = _NEEDS_VIEW.search(data)
    pos = found.start() if found is not None else -1
    while pos != -1:
        start = data.rfind(b"\n", 0, pos) + 1
        stop = data.find(b"\n", pos)
        stop = len(data) if stop == -1 else stop
        while True:  # take the following lines too while they hold such escapes
            following = _NEEDS_VIEW.search(data, stop)
            if following is None or data.count(b"\n", stop, following.start()) > 1:
                break
            stop = data.find(b"\n", following.start())
            stop = len(data) if stop == -1 else stop
        yield start, stop
        following = _NEEDS_VIEW.search(data, stop)
        pos = following.start() if following is not None else -1


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


_UNICODE_ESCAPE = re.compile(rb"u[0-9a-fA-F]{4}")


def _whole_escapes(data: bytes, hits: list[_Hit]) -> list[_Hit]:
    """Spans that cut an escape sequence (``\\n``, ``\\"``) in two are moved off it."""
    fixed = []
    for start, end, kind, rank in hits:
        if start > 0 and data[start - 1] == 0x5C and _odd_backslashes(data, start):
            # The span began at the letter of an escape: leave the escape whole.
            start += 5 if _UNICODE_ESCAPE.match(data, start) else 1
        if end - start > 0 and data[end - 1] == 0x5C and _odd_backslashes(data, end):
            end -= 1  # it ended on the backslash that starts an escape
        if end > start:
            fixed.append((start, end, kind, rank))
    return fixed


def _odd_backslashes(data: bytes, at: int) -> bool:
    """Whether the backslashes just before ``at`` are odd in number (the last one escapes)."""
    n = 0
    while at - n > 0 and data[at - n - 1] == 0x5C:
        n += 1
    return n % 2 == 1


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
    escaped = b"\\" in data
    _scan_builtins(same_length_view(data) if escaped else data, enabled, hits)
    if escaped:
        _scan_escaped(data, enabled, hits)
    if tenant:
        _scan_tenant(tenant, data, hits)
    if not hits:
        return []
    if escaped:
        hits = _whole_escapes(data, hits)
    merged = _merge(hits)
    if len(data) == len(text):
        return [Found(start=s, end=e, kind=k) for s, e, k, _ in merged]
    chars = _char_offsets(data, [x for s, e, _, _ in merged for x in (s, e)])
    return [Found(start=chars[s], end=chars[e], kind=k) for s, e, k, _ in merged]
