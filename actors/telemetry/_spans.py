"""``LeanTracer``: OpenTelemetry spans at a fraction of the SDK's cost per span.

The SDK's ``Tracer.start_span`` and its ``Span`` cost about 12 µs a span here, most of it
machinery our spans never use: a lock per span and per attribute write, a
``BoundedAttributes`` that re-validates every value, two ``BoundedList`` objects, a sampler
call, and at the end a second, read-only copy of the span for the processors. A turn makes
three spans or more, on the host's one busy core, so this module makes them directly:

- a ``LeanSpan`` is a ``ReadableSpan`` (what exporters and processors read) and an API
  ``Span`` (what the code writes) in one object, handed to the processors as it ends;
- attributes live in a plain dict; values of the four scalar types are taken as they are,
  anything else is cleaned as the SDK cleans it (sequences become tuples, mappings dicts,
  other objects their ``str``);
- the sampling decisions of the SDK's default sampler (``ParentBased(ALWAYS_ON)``: a span
  is sampled unless its parent says it is not) and of ``ALWAYS_OFF`` (nothing is; a
  ``NonRecordingSpan`` still carries a fresh span id for ``traceparent``) are made inline;
  any other sampler is asked as the SDK asks it. Trace flags and trace state follow the
  SDK (the random-trace-id flag included).

The limits are the SDK's defaults (128 attributes, events and links per span; values are
not truncated). A span is written by the task that made it and read by the exporter's
thread only after it ended (``set_attribute`` after ``end`` is refused, as in the SDK), so
no lock is needed: each write is a single dict operation under the GIL.
"""

from __future__ import annotations

import logging
import traceback
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from time import time_ns
from types import TracebackType
from typing import Any, cast

from opentelemetry import trace as trace_api
from opentelemetry.context import Context
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Event, ReadableSpan, SpanProcessor
from opentelemetry.sdk.trace.id_generator import IdGenerator, RandomIdGenerator
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF, DEFAULT_ON, Sampler
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import (
    Link,
    NonRecordingSpan,
    SpanContext,
    SpanKind,
    Status,
    StatusCode,
    TraceFlags,
    TraceState,
)
from opentelemetry.util.types import AttributeValue

log = logging.getLogger("zl.telemetry")

#: The SDK's default ``SpanLimits``.
MAX_ATTRIBUTES = 128
MAX_EVENTS = 128
MAX_LINKS = 128

_UNSET = Status(StatusCode.UNSET)
_SCALARS = (str, bool, int, float)
_EMPTY_STATE = TraceState()
_SAMPLED = TraceFlags.SAMPLED
_RANDOM = TraceFlags.RANDOM_TRACE_ID
#: The four trace-flag values a span can get (sampled or not, random trace id or not).
_FLAGS = {value: TraceFlags(value) for value in (0, _SAMPLED, _RANDOM, _SAMPLED | _RANDOM)}


def _clean(value: Any) -> Any:
    """``value`` as the SDK stores an attribute value: scalars, bytes and None as they are,
    sequences as tuples and mappings as dicts (cleaned in turn), anything else as its
    ``str`` (with the SDK's warning), or None when it has no ``str`` of its own."""
    if value is None or isinstance(value, str | bool | int | float | bytes):
        return value
    if type(value) is tuple and all(type(item) in _SCALARS for item in value):
        return value  # (the common case, e.g. finish reasons: skips the ABC checks below)
    if isinstance(value, Sequence):
        return tuple(_clean(item) for item in value)
    if isinstance(value, Mapping):
        return {str(key): _clean(item) for key, item in value.items() if key}
    log.warning("Invalid type %s for attribute value; its str() is kept", type(value))
    kind: Any = type(value)
    own_str = kind.__str__ is not object.__str__ or kind.__repr__ is not object.__repr__
    return str(value) if own_str else None


def _put(attributes: dict[str, Any], key: str, value: Any) -> None:
    """Set one attribute; when full, the oldest one goes (as the SDK's ``BoundedAttributes``)."""
    if type(value) not in _SCALARS:
        value = _clean(value)
    if key not in attributes and len(attributes) >= MAX_ATTRIBUTES:
        del attributes[next(iter(attributes))]
    attributes[key] = value


class LeanSpan(trace_api.Span, ReadableSpan):
    """A recording span (see the module docstring); made by ``LeanTracer.start_span``."""

    def __init__(
        self,
        name: str,
        context: SpanContext,
        parent: SpanContext | None,
        kind: SpanKind,
        attributes: Mapping[str, AttributeValue] | None,
        links: Sequence[Link],
        tracer: LeanTracer,
        start_time: int | None,
        record_exception: bool,
        set_status_on_exception: bool,
    ) -> None:
        # ReadableSpan's fields, set here rather than by its __init__ (same names).
        self._name = name
        self._context = context
        self._parent = parent
        self._kind = kind
        self._resource = tracer.resource
        self._instrumentation_scope = tracer.instrumentation_scope
        self._instrumentation_info = None
        self._status = _UNSET
        self._events: list[Event] = []
        self._links: tuple[Link, ...] = ()
        if links:  # (as the SDK: a link needs a valid context or attributes)
            valid = (k for k in links if k and (k.context.is_valid or k.attributes))
            self._links = tuple(valid)[:MAX_LINKS]
        self._processor = tracer.processor
        self._record_exception = record_exception
        self._set_status_on_exception = set_status_on_exception
        self._attributes: dict[str, Any] = {}
        self._end_time: int | None = None
        if attributes:
            self.set_attributes(attributes)
        self._start_time: int | None = start_time if start_time is not None else time_ns()

    def __repr__(self) -> str:
        return f'{type(self).__name__}(name="{self._name}", context={self._context})'

    # -- the API Span -----------------------------------------------------------------------

    def get_span_context(self) -> SpanContext:
        return cast(SpanContext, self._context)

    def is_recording(self) -> bool:
        return self._end_time is None

    def set_attribute(self, key: str, value: AttributeValue) -> None:
        if self._end_time is not None:
            log.warning("Setting attribute on ended span.")
            return
        _put(self._attributes, key, value)

    def set_attributes(self, attributes: Mapping[str, AttributeValue]) -> None:
        if self._end_time is not None:
            log.warning("Setting attribute on ended span.")
            return
        mine = self._attributes
        for key, value in attributes.items():
            _put(mine, key, value)

    def add_event(
        self,
        name: str,
        attributes: Mapping[str, AttributeValue] | None = None,
        timestamp: int | None = None,
    ) -> None:
        if self._end_time is not None:
            log.warning("Tried calling add_event on an ended span.")
            return
        if len(self._events) >= MAX_EVENTS:
            return
        cleaned: dict[str, Any] = {}
        for key, value in (attributes or {}).items():
            _put(cleaned, key, value)
        self._events.append(Event(name, cleaned, timestamp))

    def add_link(
        self, context: SpanContext, attributes: Mapping[str, AttributeValue] | None = None
    ) -> None:
        if self._end_time is not None:
            log.warning("Tried calling add_link on an ended span.")
            return
        if len(self._links) < MAX_LINKS and (context.is_valid or attributes):
            self._links = (*self._links, Link(context, attributes))

    def update_name(self, name: str) -> None:
        if self._end_time is not None:
            log.warning("Tried calling update_name on an ended span.")
            return
        self._name = name

    def set_status(self, status: Status | StatusCode, description: str | None = None) -> None:
        if self._end_time is not None:
            log.warning("Tried calling set_status on an ended span.")
            return
        # As the SDK: OK is final, UNSET is ignored.
        if self._status.status_code is StatusCode.OK:
            return
        if isinstance(status, Status):
            if status.status_code is not StatusCode.UNSET:
                self._status = status
        elif status is not StatusCode.UNSET:
            self._status = Status(status, description)

    def record_exception(
        self,
        exception: BaseException,
        attributes: Mapping[str, AttributeValue] | None = None,
        timestamp: int | None = None,
        escaped: bool = False,
    ) -> None:
        """The exception as an ``exception`` event, with the SDK's attributes."""
        module = type(exception).__module__
        qualname = type(exception).__qualname__
        named = f"{module}.{qualname}" if module and module != "builtins" else qualname
        event: dict[str, AttributeValue] = {
            "exception.type": named,
            "exception.message": str(exception),
            "exception.stacktrace": "".join(traceback.format_exception(exception)),
            "exception.escaped": str(escaped),
        }
        if attributes:
            event.update(attributes)
        self.add_event("exception", event, timestamp)

    def end(self, end_time: int | None = None) -> None:
        if self._end_time is not None:
            log.warning("Calling end() on an ended span.")
            return
        self._end_time = end_time if end_time is not None else time_ns()
        # The span itself is what the processors get: nothing writes to it any more.
        self._processor.on_end(self)

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc_val: BaseException | None,
        exc_tb: TracebackType | None,
    ) -> None:
        # As the SDK's span used as a context manager.
        if exc_val is not None and self._end_time is None:
            if self._record_exception:
                self.record_exception(exc_val, escaped=True)
            if self._set_status_on_exception:
                self.set_status(Status(StatusCode.ERROR, f"{type(exc_val).__name__}: {exc_val}"))
        self.end()

    # -- what the SDK's ReadableSpan gives a processor, without copies ------------------

    @property
    def events(self) -> Sequence[Event]:
        return tuple(self._events)


class LeanTracer(trace_api.Tracer):
    """Makes ``LeanSpan`` objects (or ``NonRecordingSpan`` ones for spans not sampled).

    Args:
        processor: told of every recording span as it starts and ends (the provider's).
        resource: the process's resource, on every span.
        scope: the instrumentation scope, on every span.
        sampler: the SDK's default (``ParentBased(ALWAYS_ON)``) and ``ALWAYS_OFF`` are
            decided inline; any other (``OTEL_TRACES_SAMPLER``) is asked for every span.
        id_generator: trace and span ids (default: random, as the SDK's).
    """

    def __init__(
        self,
        processor: SpanProcessor,
        *,
        resource: Resource,
        scope: InstrumentationScope,
        sampler: Sampler = DEFAULT_ON,
        id_generator: IdGenerator | None = None,
    ) -> None:
        self.processor = processor
        self.resource = resource
        self.instrumentation_scope = scope
        description = sampler.get_description()
        #: None: ask ``sampler``; True: the default; False: nothing is sampled.
        self._inline: bool | None = {
            DEFAULT_ON.get_description(): True,  # type: ignore[no-untyped-call]
            ALWAYS_OFF.get_description(): False,
        }.get(description)
        self._sampler = sampler
        ids = id_generator or RandomIdGenerator()
        self._new_trace_id = ids.generate_trace_id
        self._new_span_id = ids.generate_span_id
        self._random_ids = ids.is_trace_id_random()

    def start_span(
        self,
        name: str,
        context: Context | None = None,
        kind: SpanKind = SpanKind.INTERNAL,
        attributes: Mapping[str, AttributeValue] | None = None,
        links: Sequence[Link] | None = (),
        start_time: int | None = None,
        record_exception: bool = True,
        set_status_on_exception: bool = True,
    ) -> trace_api.Span:
        parent: SpanContext | None = trace_api.get_current_span(context).get_span_context()
        if parent is not None and parent.is_valid:
            trace_id = parent.trace_id
            random_ids = parent.trace_flags & _RANDOM
            state = parent.trace_state
        else:
            parent = None
            trace_id = self._new_trace_id()
            random_ids = self._random_ids
            state = _EMPTY_STATE
        inline = self._inline
        if inline is None:
            result = self._sampler.should_sample(context, trace_id, name, kind, attributes, links)
            sampled = result.decision.is_sampled()  # type: ignore[no-untyped-call]
            recording = result.decision.is_recording()  # type: ignore[no-untyped-call]
            attributes, state = result.attributes, result.trace_state or state
        else:
            # ParentBased(ALWAYS_ON): a parent's decision holds, a root span is sampled.
            sampled = recording = inline and (parent is None or bool(parent.trace_flags & _SAMPLED))
        span_context = SpanContext(
            trace_id,
            self._new_span_id(),
            is_remote=False,
            trace_flags=_FLAGS[(_SAMPLED if sampled else 0) | (_RANDOM if random_ids else 0)],
            trace_state=state,
        )
        if not recording:
            return NonRecordingSpan(span_context)
        span = LeanSpan(
            name,
            span_context,
            parent,
            kind,
            attributes,
            links or (),
            self,
            start_time,
            record_exception,
            set_status_on_exception,
        )
        # (Processors take it as the SDK's span: they read what a ReadableSpan has.)
        self.processor.on_start(span, parent_context=context)  # type: ignore[arg-type]
        return span

    @contextmanager  # (the API's own decorator is private; this one is equivalent)
    def start_as_current_span(  # type: ignore[override]
        self,
        name: str,
        context: Context | None = None,
        kind: SpanKind = SpanKind.INTERNAL,
        attributes: Mapping[str, AttributeValue] | None = None,
        links: Sequence[Link] | None = (),
        start_time: int | None = None,
        record_exception: bool = True,
        set_status_on_exception: bool = True,
        end_on_exit: bool = True,
    ) -> Iterator[trace_api.Span]:
        span = self.start_span(
            name, context, kind, attributes, links, start_time, record_exception,
            set_status_on_exception,
        )  # fmt: skip
        with trace_api.use_span(
            span,
            end_on_exit=end_on_exit,
            record_exception=record_exception,
            set_status_on_exception=set_status_on_exception,
        ) as current:
            yield current
