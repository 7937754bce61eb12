"""W3C trace context (``traceparent``): parse, format, and carry it into and out of a context.

The header travels BFF → host → relay → bridge → MCP ``_meta``; every hop parses it where it
enters and formats it where it leaves. Parsing follows W3C Trace Context level 1: version
``00`` is exactly 55 characters; a higher version is read by its first four fields; version
``ff``, upper-case hex and all-zero ids are invalid. An invalid header is ignored (a new
trace starts), never an error.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Callable

import attrs
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags

_V00 = re.compile(r"^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$")
# A later version: the same four fields, then optionally more after a dash.
_FUTURE = re.compile(r"^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?$")
SAMPLED = 0x01


def _hex_len(length: int) -> Callable[[object, attrs.Attribute[str], str], None]:
    pattern = re.compile(rf"^[0-9a-f]{{{length}}}$")

    def check(_: object, attribute: attrs.Attribute[str], value: str) -> None:
        if not pattern.match(value) or value == "0" * length:
            raise ValueError(f"{attribute.name} must be {length} lower-case hex, not all zero")

    return check


@attrs.frozen(kw_only=True)
class TraceParent:
    """One ``traceparent``: trace id (32 hex), parent span id (16 hex), flags."""

    trace_id: str = attrs.field(validator=_hex_len(32))
    span_id: str = attrs.field(validator=_hex_len(16))
    flags: int = attrs.field(
        default=SAMPLED, validator=[attrs.validators.ge(0), attrs.validators.le(0xFF)]
    )

    @property
    def sampled(self) -> bool:
        return bool(self.flags & SAMPLED)

    def __str__(self) -> str:
        return format_traceparent(self)


def parse_traceparent(header: str | None) -> TraceParent | None:
    """Read a ``traceparent`` header; None when it is absent or invalid.

    Args:
        header: the header's value (surrounding spaces are allowed).

    Returns:
        The parsed value, or None (the caller then starts a new trace).
    """
    if header is None:
        return None
    text = header.strip()
    match = _V00.match(text)
    if match is not None:
        trace_id, span_id, flags = match.groups()
    else:
        future = _FUTURE.match(text)
        if future is None or future.group(1) in ("00", "ff"):
            return None
        _, trace_id, span_id, flags, _rest = future.groups()
    try:
        return TraceParent(trace_id=trace_id, span_id=span_id, flags=int(flags, 16))
    except ValueError:
        return None


def format_traceparent(value: TraceParent) -> str:
    """The version ``00`` header for ``value``."""
    return f"00-{value.trace_id}-{value.span_id}-{value.flags:02x}"


def new_traceparent(*, sampled: bool = True) -> TraceParent:
    """A fresh random trace id and span id (for a test client or a hop that starts a trace)."""
    while True:
        trace_id, span_id = secrets.token_hex(16), secrets.token_hex(8)
        if int(trace_id, 16) and int(span_id, 16):
            return TraceParent(trace_id=trace_id, span_id=span_id, flags=SAMPLED if sampled else 0)


def context_with_traceparent(header: str | None, context: Context | None = None) -> Context:
    """A context whose current span is the remote parent named by ``header``.

    Spans started in it become children of the caller's span. An absent or invalid
    header gives ``context`` (or the current one) unchanged.
    """
    parent = parse_traceparent(header)
    if parent is None:
        return context if context is not None else Context()
    span_context = SpanContext(
        trace_id=int(parent.trace_id, 16),
        span_id=int(parent.span_id, 16),
        is_remote=True,
        trace_flags=TraceFlags(parent.flags),
    )
    return trace.set_span_in_context(NonRecordingSpan(span_context), context)


def traceparent_of(span: trace.Span | None = None) -> str | None:
    """The ``traceparent`` that names ``span`` (default: the current span) as the parent.

    Returns:
        The header, or None when there is no valid span (nothing to propagate).
    """
    span_context = (span if span is not None else trace.get_current_span()).get_span_context()
    if not span_context.is_valid:
        return None
    # What format_traceparent writes, without the checks: a valid context's ids are in range.
    return (
        f"00-{span_context.trace_id:032x}-{span_context.span_id:016x}"
        f"-{int(span_context.trace_flags) & 0xFF:02x}"
    )
