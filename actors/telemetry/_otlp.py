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


#: Encoded attributes kept for reuse (most repeat: names, tools, models, tenants); the
#: cache is emptied when full, so it stays bounded whatever the attribute values are.
ATTRIBUTE_CACHE_SIZE = 4096
_attribute_cache: dict[tuple[str, Any], bytes] = {}


def _varint(value: int) -> bytes:
    if value < 0x80:
        return bytes((value,))
    out = bytearray()
    while True:
        low = value & 0x7F
        value >>= 7
        if value:
            out.append(low | 0x80)
        else:
            out.append(low)
            return bytes(out)


def _key(field: int, wire: int) -> bytes:
    return _varint(field << 3 | wire)


def _bytes(field: int, data: bytes) -> bytes:
    size = len(data)
    prefix = bytes((field << 3 | 2, size)) if field < 16 and size < 0x80 else None
    return (prefix or _key(field, 2) + _varint(size)) + data


def _text(field: int, value: str) -> bytes:
    return _bytes(field, value.encode("utf-8"))


def _fixed64(field: int, value: int) -> bytes:
    return _key(field, 1) + struct.pack("<Q", value)


def _any_value(value: Any) -> bytes:
    # AnyValue: string 1, bool 2, int 3, double 4, array 5.
    if isinstance(value, str):
        return _text(1, value)
    if isinstance(value, bool):
        return _key(2, 0) + _varint(int(value))
    if isinstance(value, int):
        return _key(3, 0) + _varint(value & 0xFFFFFFFFFFFFFFFF)
    if isinstance(value, float):
        return _key(4, 1) + struct.pack("<d", value)
    if isinstance(value, Sequence):
        return _bytes(5, b"".join(_bytes(1, _any_value(item)) for item in value))
    return _text(1, str(value))


def _key_value(key: str, value: Any) -> bytes:
    """A ``KeyValue`` (key 1, value 2), reused from the cache when it was seen before."""
    cacheable = isinstance(value, str | bool | int)
    if cacheable:
        found = _attribute_cache.get((key, value))
        if found is not None:
            return found
    encoded = _text(1, key) + _bytes(2, _any_value(value))
    if cacheable:
        if len(_attribute_cache) >= ATTRIBUTE_CACHE_SIZE:
            _attribute_cache.clear()
        _attribute_cache[(key, value)] = encoded
    return encoded


def _attributes(field: int, attributes: Mapping[str, Any] | None) -> bytes:
    if not attributes:
        return b""
    # The SDK's BoundedAttributes keeps a plain dict: iterating it skips the Mapping layer.
    items = getattr(attributes, "_dict", attributes)
    return b"".join(_bytes(field, _key_value(k, v)) for k, v in items.items())


_names: dict[str, bytes] = {}


def _name(name: str) -> bytes:
    """The span's name field (5); names repeat, so they are kept (bounded like attributes)."""
    found = _names.get(name)
    if found is None:
        if len(_names) >= ATTRIBUTE_CACHE_SIZE:
            _names.clear()
        found = _names[name] = _text(5, name)
    return found


def encode_span(span: ReadableSpan) -> bytes:
    """One ``Span`` message."""
    context = span.context
    assert context is not None  # an ended SDK span always has one
    out = [
        _bytes(1, context.trace_id.to_bytes(16, "big")),
        _bytes(2, context.span_id.to_bytes(8, "big")),
    ]
    if span.parent is not None:
        out.append(_bytes(4, span.parent.span_id.to_bytes(8, "big")))
    out.append(_name(span.name))
    out.append(_key(6, 0) + _varint(_KINDS.get(span.kind, 1)))
    out.append(_fixed64(7, span.start_time or 0))
    out.append(_fixed64(8, span.end_time or 0))
    out.append(_attributes(9, span.attributes))
    for event in span.events:
        # Event: time 1, name 2, attributes 3.
        body = _fixed64(1, event.timestamp) + _text(2, event.name)
        out.append(_bytes(11, body + _attributes(3, event.attributes)))
    status = span.status
    code = _STATUS.get(status.status_code, 0)
    if code:
        body = (_text(2, status.description) if status.description else b"") + (
            _key(3, 0) + _varint(code)
        )
        out.append(_bytes(15, body))
    out.append(_key(16, 5) + struct.pack("<I", int(context.trace_flags) & 0xFF))
    return b"".join(out)


def encode_spans(spans: Sequence[ReadableSpan]) -> bytes:
    """An ``ExportTraceServiceRequest`` holding ``spans``, grouped by resource and scope."""
    groups: dict[int, tuple[ReadableSpan, dict[tuple[str, str], list[bytes]]]] = {}
    for span in spans:
        resource_key = id(span.resource)
        first, scopes = groups.setdefault(resource_key, (span, {}))
        scope = span.instrumentation_scope
        name = (scope.name, scope.version or "") if scope is not None else ("", "")
        scopes.setdefault(name, []).append(encode_span(span))
    out = []
    for first, scopes in groups.values():
        resource = _attributes(1, first.resource.attributes)
        scope_spans = []
        for (scope_name, scope_version), encoded in scopes.items():
            head = _text(1, scope_name) + (_text(2, scope_version) if scope_version else b"")
            scope_spans.append(
                _bytes(2, _bytes(1, head) + b"".join(_bytes(2, item) for item in encoded))
            )
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
