"""OTLP/HTTP protobuf span export, encoded by hand: the exporter thread shares the
process's core with the turns, so encoding must be cheap.

The SDK's encoder builds a protobuf object per span, attribute and value in Python (about
90 µs a span here); writing the wire format directly costs a fraction of that. The
messages written are the ``opentelemetry.proto`` ones (``ExportTraceServiceRequest`` →
``ResourceSpans`` → ``ScopeSpans`` → ``Span``), field numbers as in the ``.proto`` files;
the tests decode the output with the official generated classes.

::

    OtlpSpanExporter.export(spans) ── encode_spans ── POST {endpoint}/v1/traces
        retries 429/502/503/504 and connection failures with backoff, within ``timeout_s``
"""

from __future__ import annotations

import logging
import struct
import time
from collections.abc import Mapping, Sequence
from typing import Any

import httpx
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from opentelemetry.trace import SpanKind, StatusCode

log = logging.getLogger("zl.telemetry")

CONTENT_TYPE = "application/x-protobuf"
_RETRYABLE = frozenset({429, 502, 503, 504})
#: First pause between attempts of one export; doubled each time, within the timeout.
RETRY_INITIAL_S = 0.25
_KINDS = {
    SpanKind.INTERNAL: 1,
    SpanKind.SERVER: 2,
    SpanKind.CLIENT: 3,
    SpanKind.PRODUCER: 4,
    SpanKind.CONSUMER: 5,
}
_STATUS = {StatusCode.UNSET: 0, StatusCode.OK: 1, StatusCode.ERROR: 2}
# The same, by the members' ids: an enum member's own hash is computed in Python.
_KIND_BY_ID = {id(kind): value for kind, value in _KINDS.items()}
_STATUS_BY_ID = {id(code): value for code, value in _STATUS.items()}


#: Encoded attributes kept for reuse (most repeat: names, tools, models, tenants); the
#: cache is emptied when full, and long values are not kept, so it stays bounded whatever
#: the attribute values are.
ATTRIBUTE_CACHE_SIZE = 4096
ATTRIBUTE_CACHE_MAX_CHARS = 256
_attribute_cache: dict[tuple[type, int, str, Any], bytes] = {}
_names: dict[str, bytes] = {}

# Field tags of the messages written, precomputed (field << 3 | wire type, as a varint).
_TRACE_ID = b"\x0a\x10"  # Span.trace_id (1), 16 bytes
_SPAN_ID = b"\x12\x08"  # Span.span_id (2), 8 bytes
_PARENT_ID = b"\x22\x08"  # Span.parent_span_id (4), 8 bytes
# Span.kind (6, varint), start_time_unix_nano (7, fixed64), end_time_unix_nano (8, fixed64).
_KIND_AND_TIMES = struct.Struct("<BBBQBQ")
_KIND_TAG, _START_TAG, _END_TAG = 6 << 3, 7 << 3 | 1, 8 << 3 | 1
_FLAGS_FIELD = struct.Struct("<BBI")  # Span.flags (16, fixed32): tag 0x85 0x01
_DOUBLE = struct.Struct("<d").pack
_SPAN_FIELD = 2  # ScopeSpans.spans


def _varint(value: int) -> bytes:
    if value < 0x80:
        return _SMALL[value]
    out = bytearray()
    while True:
        low = value & 0x7F
        value >>= 7
        if value:
            out.append(low | 0x80)
        else:
            out.append(low)
            return bytes(out)


_SMALL = [bytes((n,)) for n in range(0x80)]


def _key(field: int, wire: int) -> bytes:
    return _varint(field << 3 | wire)


def _bytes(field: int, data: bytes) -> bytes:
    size = len(data)
    if field < 16 and size < 0x80:
        return bytes((field << 3 | 2, size)) + data
    return _key(field, 2) + _varint(size) + data


def _text(field: int, value: str) -> bytes:
    return _bytes(field, value.encode("utf-8"))


def _fixed64(field: int, value: int) -> bytes:
    return _key(field, 1) + struct.pack("<Q", value)


def _any_value(value: Any) -> bytes:
    # AnyValue: string 1, bool 2, int 3, double 4, array 5.
    if isinstance(value, str):
        return _text(1, value)
    if isinstance(value, bool):
        return b"\x10\x01" if value else b"\x10\x00"
    if isinstance(value, int):
        return b"\x18" + _varint(value & 0xFFFFFFFFFFFFFFFF)
    if isinstance(value, float):
        return b"\x21" + _DOUBLE(value)
    if isinstance(value, Sequence):
        return _bytes(5, b"".join(_bytes(1, _any_value(item)) for item in value))
    return _text(1, str(value))


def _attribute(field: int, key: str, value: Any) -> bytes:
    """One attribute as field ``field`` (a ``KeyValue``: key 1, value 2). Strings, integers
    and tuples of strings are kept for reuse, by type (``True == 1``, but not as values)."""
    kind = type(value)
    if kind is str:
        reusable = len(value) <= ATTRIBUTE_CACHE_MAX_CHARS
    elif kind is tuple:
        reusable = all(type(item) is str for item in value) and (
            sum(map(len, value)) <= ATTRIBUTE_CACHE_MAX_CHARS
        )
    else:
        reusable = kind is int
    if not reusable:
        return _bytes(field, _text(1, key) + _bytes(2, _any_value(value)))
    entry = (kind, field, key, value)
    found = _attribute_cache.get(entry)
    if found is None:
        found = _bytes(field, _text(1, key) + _bytes(2, _any_value(value)))
        if len(_attribute_cache) >= ATTRIBUTE_CACHE_SIZE:
            _attribute_cache.clear()
        _attribute_cache[entry] = found
    return found


def _attributes(field: int, attributes: Mapping[str, Any] | None) -> bytes:
    if not attributes:
        return b""
    return b"".join([_attribute(field, k, v) for k, v in attributes.items()])


def _name(name: str) -> bytes:
    """The span's name field (5); names repeat, so they are kept (bounded like attributes)."""
    found = _names.get(name)
    if found is None:
        found = _text(5, name)
        if len(name) <= ATTRIBUTE_CACHE_MAX_CHARS:
            if len(_names) >= ATTRIBUTE_CACHE_SIZE:
                _names.clear()
            _names[name] = found
    return found


def encode_span(span: ReadableSpan) -> bytes:
    """One ``Span`` message."""
    context = span.context
    assert context is not None  # an ended SDK span always has one
    parent = span.parent
    out = [
        _TRACE_ID,
        context.trace_id.to_bytes(16, "big"),
        _SPAN_ID,
        context.span_id.to_bytes(8, "big"),
    ]
    if parent is not None:
        out += (_PARENT_ID, parent.span_id.to_bytes(8, "big"))
    out += (
        _name(span.name),
        _KIND_AND_TIMES.pack(
            _KIND_TAG,
            _KIND_BY_ID.get(id(span.kind), 1),
            _START_TAG,
            span.start_time or 0,
            _END_TAG,
            span.end_time or 0,
        ),
        _attributes(9, span.attributes),
    )
    for event in span.events:
        # Event: time 1, name 2, attributes 3.
        body = _fixed64(1, event.timestamp) + _text(2, event.name)
        out.append(_bytes(11, body + _attributes(3, event.attributes)))
    status = span.status
    code = _STATUS_BY_ID.get(id(status.status_code), 0)
    if code:
        body = (_text(2, status.description) if status.description else b"") + (
            _key(3, 0) + _varint(code)
        )
        out.append(_bytes(15, body))
    out.append(_FLAGS_FIELD.pack(0x85, 0x01, int(context.trace_flags) & 0xFF))
    return b"".join(out)


def encode_spans(spans: Sequence[ReadableSpan]) -> bytes:
    """An ``ExportTraceServiceRequest`` holding ``spans``, grouped by resource and scope."""
    groups: dict[int, tuple[ReadableSpan, dict[tuple[str, str], list[bytes]]]] = {}
    # Spans of one resource and scope come in runs: the last group is looked at first.
    last_key: tuple[int, int] | None = None
    last: list[bytes] = []
    for span in spans:
        scope = span.instrumentation_scope
        key = (id(span.resource), id(scope))
        if key != last_key:
            _, scopes = groups.setdefault(key[0], (span, {}))
            name = (scope.name, scope.version or "") if scope is not None else ("", "")
            last, last_key = scopes.setdefault(name, []), key
        last.append(_bytes(_SPAN_FIELD, encode_span(span)))
    out = []
    for first, scopes in groups.values():
        resource = _attributes(1, first.resource.attributes)
        scope_spans = []
        for (scope_name, scope_version), encoded in scopes.items():
            head = _text(1, scope_name) + (_text(2, scope_version) if scope_version else b"")
            scope_spans.append(_bytes(2, _bytes(1, head) + b"".join(encoded)))
        # ResourceSpans: resource 1, scope_spans 2.
        out.append(_bytes(1, _bytes(1, resource) + b"".join(scope_spans)))
    return b"".join(out)


class OtlpSpanExporter(SpanExporter):
    """POSTs spans as OTLP/HTTP protobuf to ``endpoint`` (the full ``.../v1/traces`` URL).

    One ``export`` call takes at most ``timeout_s``, retries included; it runs in the span
    processor's worker thread, never in a request's task.
    """

    def __init__(self, endpoint: str, *, timeout_s: float) -> None:
        self.endpoint = endpoint
        self.timeout_s = timeout_s
        self._client = httpx.Client(headers={"content-type": CONTENT_TYPE})

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        body = encode_spans(spans)
        deadline = time.monotonic() + self.timeout_s
        pause = RETRY_INITIAL_S
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return SpanExportResult.FAILURE
            try:
                response = self._client.post(self.endpoint, content=body, timeout=left)
            except httpx.HTTPError as exc:
                log.debug("span export to %s failed: %s", self.endpoint, exc)
            else:
                if response.status_code // 100 == 2:
                    return SpanExportResult.SUCCESS
                if response.status_code not in _RETRYABLE:
                    log.warning("the collector refused spans: HTTP %d", response.status_code)
                    return SpanExportResult.FAILURE
            time.sleep(max(0.0, min(pause, deadline - time.monotonic())))
            pause *= 2

    def shutdown(self) -> None:
        self._client.close()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True
