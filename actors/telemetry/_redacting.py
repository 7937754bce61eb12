"""Span export through the redactor: what leaves the process carries no secret.

``RedactingSpanExporter`` wraps any ``SpanExporter``: before a batch goes out it redacts
every string in the spans' attributes, their events' attributes (the ``exception.message``
and ``exception.stacktrace`` that ``record_exception`` writes), their links' attributes,
their status description and their name. A span with nothing to redact goes out as it was
(no copy). The host's own ids are not scanned when they have their shape, and a value seen
before is not scanned again (see ``_attributes``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from opentelemetry.sdk.trace import Event, ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from opentelemetry.trace import Link, Status

from actors.redaction import Redactor

from ._attributes import ID_SHAPES

Counter = Callable[[Mapping[str, int]], None]
#: Redacted values kept for reuse, and the longest value kept (longer ones are rare and
#: would make the cache's memory depend on what spans carry).
SEEN_CAPACITY = 4096
SEEN_MAX_CHARS = 256
#: Values with nothing to redact in them.
_UNSCANNED = frozenset({bool, int, float, type(None)})


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
        # The host's own ids are taken as they are when they have their shape (see
        # _attributes), unless tenant patterns could find something in them.
        self._shapes = {} if redactor.settings.patterns else dict(ID_SHAPES)
        #: Values scanned, values found in the cache, values of a host id's shape.
        self.scanned = self.cached = self.shaped = 0

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
            self.scanned += 1
            redacted = self.redactor.redact(text)
            seen = (redacted.text, tuple(redacted.counts.items()))
            if len(text) <= SEEN_MAX_CHARS:
                if len(self._seen) >= SEEN_CAPACITY:
                    self._seen.clear()
                self._seen[text] = seen
        else:
            self.cached += 1
        for kind, n in seen[1]:
            counts[kind] = counts.get(kind, 0) + n
        return seen[0]

    def _value(self, value: Any, counts: dict[str, int]) -> Any:
        if isinstance(value, str):
            return self._text(value, counts)
        if isinstance(value, (list, tuple)):
            return type(value)(self._value(item, counts) for item in value)
        if isinstance(value, Mapping):
            return {key: self._value(item, counts) for key, item in value.items()}
        return value

    def _attributes(
        self, attributes: Mapping[str, Any] | None, counts: dict[str, int]
    ) -> Mapping[str, Any] | None:
        """``attributes`` redacted: the same object when nothing in it changed."""
        if not attributes:
            return attributes
        shapes = self._shapes
        changed: dict[str, Any] | None = None
        for key, value in attributes.items():
            if type(value) in _UNSCANNED:
                continue
            if type(value) is str:
                shape = shapes.get(key)
                if shape is not None and shape.fullmatch(value):
                    self.shaped += 1
                    continue
            cleaned = self._value(value, counts)
            if cleaned != value:
                if changed is None:
                    changed = dict(attributes)
                changed[key] = cleaned
        return attributes if changed is None else changed

    def _event(self, event: Event, counts: dict[str, int]) -> Event:
        attributes = self._attributes(event.attributes, counts)
        return (
            event
            if attributes is event.attributes
            else Event(event.name, attributes, event.timestamp)
        )

    def _link(self, link: Link, counts: dict[str, int]) -> Link:
        attributes = self._attributes(link.attributes, counts)
        return link if attributes is link.attributes else Link(link.context, attributes)

    def _span(self, span: ReadableSpan, counts: dict[str, int]) -> ReadableSpan:
        name = self._text(span.name, counts)
        original = span.attributes  # (a fresh view at every access of an SDK span)
        attributes = self._attributes(original, counts)
        changed = name != span.name or attributes is not original
        events = span.events
        if events:
            cleaned_events = [self._event(event, counts) for event in events]
            if any(a is not b for a, b in zip(cleaned_events, events, strict=True)):
                events, changed = cleaned_events, True
        links = span.links
        if links:
            cleaned_links = [self._link(link, counts) for link in links]
            if any(a is not b for a, b in zip(cleaned_links, links, strict=True)):
                links, changed = cleaned_links, True
        status = span.status
        if status.description:
            description = self._text(status.description, counts)
            if description != status.description:
                status, changed = Status(status.status_code, description), True
        if not changed:
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
