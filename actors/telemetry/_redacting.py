"""Span export through the redactor: what leaves the process carries no secret.

``RedactingSpanExporter`` wraps any ``SpanExporter``: before a batch goes out it redacts
every string in the spans' attributes, their events' attributes (the ``exception.message``
and ``exception.stacktrace`` that ``record_exception`` writes), their links' attributes,
their status description and their name. A span with nothing to redact goes out as it was.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from opentelemetry.sdk.trace import Event, ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from opentelemetry.trace import Link, Status

from actors.redaction import Redactor

Counter = Callable[[Mapping[str, int]], None]
#: Redacted values kept for reuse, and the longest value kept (longer ones are rare and
#: would make the cache's memory depend on what spans carry).
SEEN_CAPACITY = 4096
SEEN_MAX_CHARS = 256


class RedactingSpanExporter(SpanExporter):
    """Redacts spans, then hands them to ``inner``.

    Args:
        inner: where the spans go.
        redactor: what finds and replaces.
        on_redacted: called with counts by class for each batch that had any.
    """

    def __init__(
        self, inner: SpanExporter, redactor: Redactor, on_redacted: Counter | None = None
    ) -> None:
        self.inner = inner
        self.redactor = redactor
        self.on_redacted = on_redacted
        # Span names and most attribute values repeat (tools, models, tenants, outcomes): a
        # value already redacted is not scanned again. Bounded: emptied when full. Only
        # the exporter's thread uses it.
        self._seen: dict[str, tuple[str, tuple[tuple[str, int], ...]]] = {}

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        counts: dict[str, int] = {}
        cleaned = [self._span(span, counts) for span in spans]
        if counts and self.on_redacted is not None:
            self.on_redacted(counts)
        return self.inner.export(cleaned)

    def shutdown(self) -> None:
        self.inner.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self.inner.force_flush(timeout_millis)

    def _text(self, text: str, counts: dict[str, int]) -> str:
        seen = self._seen.get(text)
        if seen is None:
            redacted = self.redactor.redact(text)
            seen = (redacted.text, tuple(redacted.counts.items()))
            if len(text) <= SEEN_MAX_CHARS:
                if len(self._seen) >= SEEN_CAPACITY:
                    self._seen.clear()
                self._seen[text] = seen
        for kind, n in seen[1]:
            counts[kind] = counts.get(kind, 0) + n
        return seen[0]

    def _value(self, value: Any, counts: dict[str, int]) -> Any:
        if isinstance(value, str):
            return self._text(value, counts)
        if isinstance(value, (list, tuple)):
            return type(value)(self._value(item, counts) for item in value)
        return value

    def _attributes(
        self, attributes: Mapping[str, Any] | None, counts: dict[str, int]
    ) -> dict[str, Any] | None:
        if attributes is None:
            return None
        return {key: self._value(value, counts) for key, value in attributes.items()}

    def _span(self, span: ReadableSpan, counts: dict[str, int]) -> ReadableSpan:
        before = sum(counts.values())
        name = self._text(span.name, counts)
        attributes = self._attributes(span.attributes, counts)
        events = [
            Event(e.name, self._attributes(e.attributes, counts), e.timestamp) for e in span.events
        ]
        links = [
            Link(link.context, self._attributes(link.attributes, counts)) for link in span.links
        ]
        status = span.status
        if status.description:
            status = Status(status.status_code, self._text(status.description, counts))
        if sum(counts.values()) == before:
            return span
        return ReadableSpan(
            name=name,
            context=span.context,
            parent=span.parent,
            resource=span.resource,
            attributes=attributes,
            events=events,
            links=links,
            kind=span.kind,
            status=status,
            start_time=span.start_time,
            end_time=span.end_time,
            instrumentation_scope=span.instrumentation_scope,
        )
