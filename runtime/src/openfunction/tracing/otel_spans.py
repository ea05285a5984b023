"""Spans the `opentelemetry` plugin makes for its invocations, without the SDK tracer's overhead.

The SDK's `Tracer.start_span` validates each attribute into a `BoundedAttributes` behind a
lock, asks the sampler, builds a span and then, at `end()`, a second read-only copy of it -
several times what serving a small request costs. An invocation's span has a handful of
string attributes the runtime wrote itself, so `SpanStarter` makes it directly: a
`RecordingSpan` is both the live API span (current while the function runs, so the spans the
function makes are its children, and writable: attributes, events, status) and the SDK
`ReadableSpan` the provider's span processors receive when it ends.

What the SDK decides stays the SDK's: the provider's resource, id generator and sampler (a
sampler other than the default parent-based always-on is asked for every span) and its span
processors, which see `on_start`, `on_end` (and the SDK's `_on_ending`) as for any other
span.
"""

from __future__ import annotations

import logging
import time
import traceback
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace as trace_api
from opentelemetry.sdk.trace import Event, ReadableSpan, sampling
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
from opentelemetry.trace.span import DEFAULT_TRACE_STATE

logger = logging.getLogger("openfunction.tracing")
_time_ns = time.time_ns

_SAMPLED = int(TraceFlags.SAMPLED)
_RANDOM_TRACE_ID = int(getattr(TraceFlags, "RANDOM_TRACE_ID", 0))
_FLAGS = {value: TraceFlags(value) for value in range(256)}
UNSET_STATUS = Status(StatusCode.UNSET)
"""The status of every span until it is set (compared by identity when encoding)."""
_ATTRIBUTE_TYPES = (str, bool, int, float)
_MAX_TRACE_ID = (1 << 128) - 1
_MAX_SPAN_ID = (1 << 64) - 1


def _context_is_tuple() -> bool:
    """Whether a `SpanContext` is the tuple (trace_id, span_id, is_remote, trace_flags,
    trace_state, is_valid), as it has been since the API's 1.0. Then the runtime makes and
    reads its fields as that tuple, which costs less than the constructor and properties."""
    flags = TraceFlags(TraceFlags.SAMPLED)
    probe = SpanContext(0x1F, 0x2F, True, flags, DEFAULT_TRACE_STATE)
    try:
        return tuple(probe) == (0x1F, 0x2F, True, flags, DEFAULT_TRACE_STATE, True)
    except TypeError:
        return False


CONTEXT_IS_TUPLE = _context_is_tuple()


def local_context(trace_id: int, span_id: int, flags: TraceFlags,
                  trace_state: TraceState | None) -> SpanContext:
    """`SpanContext(trace_id, span_id, False, flags, trace_state)`: a span made here."""
    if not CONTEXT_IS_TUPLE:
        return SpanContext(trace_id, span_id, False, flags, trace_state)
    valid = 0 < trace_id <= _MAX_TRACE_ID and 0 < span_id <= _MAX_SPAN_ID
    state = DEFAULT_TRACE_STATE if trace_state is None else trace_state
    return tuple.__new__(SpanContext, (trace_id, span_id, False, flags, state, valid))  # type: ignore[type-var]


class RecordingSpan(trace_api.Span, ReadableSpan):
    """A span recorded with plain writes, handed to the span processors by `end()`."""

    # The fields `ReadableSpan.__init__` sets (a test keeps them in step): those every new
    # span starts with are read from the class until a span writes its own; events and links
    # stay shared empty tuples until the function adds one.
    _instrumentation_info = None
    _end_time: int | None = None
    _events: Any = ()
    _links: Any = ()
    _status: Status = UNSET_STATUS

    def __init__(self, name: str, context: SpanContext, parent: SpanContext | None,
                 kind: SpanKind, attributes: dict[str, Any], starter: "SpanStarter",
                 start_time: int, end_hooks: tuple[tuple[Any, ...], tuple[Any, ...]]) -> None:
        self._name = name
        self._context = context
        self._kind = kind
        self._instrumentation_scope = starter.scope
        self._parent = parent
        self._start_time = start_time
        self._attributes = attributes
        self._resource = starter.provider.resource
        self._ending, self._ended = end_hooks

    def get_span_context(self) -> SpanContext:
        return self._context  # type: ignore[return-value]

    def is_recording(self) -> bool:
        return self._end_time is None

    def set_attribute(self, key: str, value: Any) -> None:
        if self._end_time is not None:
            return
        if not isinstance(key, str) or not key:
            logger.warning("OpenTelemetry: attribute key %r is not a non-empty string", key)
            return
        if value is None or not _valid_value(value):
            logger.warning("OpenTelemetry: attribute %r has a value of type %s; use str, bool, "
                           "int, float or a sequence of one of them", key, type(value).__name__)
            return
        attributes: dict[str, Any] = self._attributes  # type: ignore[assignment]
        attributes[key] = value if isinstance(value, _ATTRIBUTE_TYPES) else tuple(value)

    def set_attributes(self, attributes: Mapping[str, Any]) -> None:
        for key, value in attributes.items():
            self.set_attribute(key, value)

    def add_event(self, name: str, attributes: Mapping[str, Any] | None = None,
                  timestamp: int | None = None) -> None:
        if self._end_time is None:
            self._events = [*self._events, Event(name, dict(attributes or {}),
                                                 timestamp or _time_ns())]

    def add_link(self, context: SpanContext, attributes: Mapping[str, Any] | None = None) -> None:
        if self._end_time is None and context is not None and context.is_valid:
            self._links = [*self._links, Link(context, dict(attributes or {}))]

    def update_name(self, name: str) -> None:
        if self._end_time is None:
            self._name = name

    def set_status(self, status: Status | StatusCode, description: str | None = None) -> None:
        if self._end_time is not None or self._status.status_code is StatusCode.OK:
            return
        if isinstance(status, StatusCode):
            status = Status(status, description)
        if status.status_code is not StatusCode.UNSET:
            self._status = status

    def record_exception(self, exception: BaseException,
                         attributes: Mapping[str, Any] | None = None,
                         timestamp: int | None = None, escaped: bool = False) -> None:
        kind = type(exception)
        module = kind.__module__
        recorded = {
            "exception.type": (f"{module}.{kind.__qualname__}"
                               if module and module != "builtins" else kind.__qualname__),
            "exception.message": str(exception),
            "exception.stacktrace": "".join(traceback.format_exception(exception)),
            "exception.escaped": str(escaped),
        }
        if attributes:
            recorded.update(attributes)
        self.add_event("exception", recorded, timestamp)

    def end(self, end_time: int | None = None) -> None:
        if self._end_time is not None:
            return
        self._end_time = end_time or _time_ns()
        for hook in self._ending:
            hook(self)
        for hook in self._ended:
            hook(self)

    def __repr__(self) -> str:
        return f"RecordingSpan(name={self._name!r}, context={self._context!r})"


class SpanStarter:
    """Starts `RecordingSpan`s on a provider: its resource, ids, sampler and processors."""

    def __init__(self, provider: Any, processor: Any, scope: InstrumentationScope) -> None:
        self.provider = provider
        self.processor = processor
        self.scope = scope
        self._planned_for: Any = _NOT_PLANNED
        self._plan: tuple[tuple[Any, ...], tuple[Any, ...], tuple[Any, ...]] = ((), (), ())
        self._ids = provider.id_generator
        sampler = provider.sampler
        self._sampler = None if sampler is sampling.DEFAULT_ON else sampler
        self._rule = None if self._sampler is None else sampling_rule(self._sampler)
        """How a standard sampler other than the default decides (None: the default, decided
        in `start`, or a sampler asked through `should_sample`)."""
        self._random_ids = _RANDOM_TRACE_ID if _ids_are_random(self._ids) else 0

    @classmethod
    def for_provider(cls, provider: Any, scope: InstrumentationScope) -> "SpanStarter | None":
        """A starter for an SDK `TracerProvider` whose span processors it can reach, else None
        (spans are then made by the SDK's tracer)."""
        processor = getattr(provider, "_active_span_processor", None)
        if processor is None or getattr(provider, "_disabled", False) or not all(
            hasattr(provider, name) for name in ("resource", "id_generator", "sampler")
        ):
            return None
        return cls(provider, processor, scope)

    def start(self, name: str, parent: "otel_context.Context | None", kind: SpanKind,
              attributes: "dict[str, Any] | Callable[[], dict[str, Any]]") -> trace_api.Span:
        """A started span under the span of `parent` (a root span without one).

        `attributes` may be a function making them: it is called only for a span that
        records, or for a sampler that decides on attributes, so a span sampled out costs
        its ids and nothing more."""
        parent_span = trace_api.get_current_span(parent).get_span_context() if parent else None
        if parent_span is not None and not parent_span.is_valid:
            parent_span = None
        if parent_span is None:
            trace_id = self._ids.generate_trace_id()
            random_ids = self._random_ids
        else:
            trace_id = parent_span.trace_id
            random_ids = parent_span.trace_flags & _RANDOM_TRACE_ID
        # the standard samplers keep the parent's trace state and record what they sample
        trace_state = parent_span.trace_state if parent_span is not None else None
        if self._sampler is None:
            # parent-based, always on: follow the parent's decision, sample roots
            recording = sampled = parent_span is None or parent_span.trace_flags.sampled
        elif self._rule is not None:  # another standard sampler, decided here
            recording = sampled = self._rule(parent_span, trace_id)
        else:
            if callable(attributes):
                attributes = attributes()
            result = self._sampler.should_sample(parent, trace_id, name, kind, attributes)
            sampled = result.decision.is_sampled()
            recording = result.decision.is_recording()
            trace_state = result.trace_state
            if recording and result.attributes:
                attributes.update(result.attributes)
        flags = _FLAGS[(_SAMPLED if sampled else 0) | random_ids]
        context = local_context(trace_id, self._ids.generate_span_id(), flags, trace_state)
        if not recording:
            return NonRecordingSpan(context)
        if callable(attributes):
            attributes = attributes()
        starts, endings, ends = self._hooks()
        span = RecordingSpan(name, context, parent_span, kind, attributes, self, _time_ns(),
                             (endings, ends))
        for hook in starts:
            hook(span, parent_context=parent)
        return span

    def _hooks(self) -> tuple[tuple[Any, ...], tuple[Any, ...], tuple[Any, ...]]:
        """The processors' `on_start`, `_on_ending` and `on_end` methods, leaving out those
        known to do nothing (the SDK's batch and simple processors only act on `on_end`).
        Worked out again whenever a processor is added to the provider."""
        processors = getattr(self.processor, "_span_processors", None)
        if processors is self._planned_for:
            return self._plan
        if processors is None:  # not the SDK's synchronous multi-processor: ask it all
            listed: Any = (self.processor,)
        else:
            listed = processors
        starts, endings, ends = [], [], []
        for processor in listed:
            kind = type(processor)
            if getattr(kind, "on_start", None) not in _NO_OP_HOOKS:
                starts.append(processor.on_start)
            ending = getattr(processor, "_on_ending", None)
            if ending is not None and getattr(kind, "_on_ending", None) not in _NO_OP_HOOKS:
                endings.append(ending)
            ends.append(processor.on_end)
        self._plan = (tuple(starts), tuple(endings), tuple(ends))
        self._planned_for = processors
        return self._plan


_NOT_PLANNED = object()


def sampling_rule(sampler: Any) -> Callable[[SpanContext | None, int], bool] | None:
    """How one of the SDK's standard samplers - those `OTEL_TRACES_SAMPLER` names: always
    on or off, trace id ratio, parent-based over any of them - decides whether a span under
    `parent` (a valid span context, or None) with `trace_id` is sampled. They decide on
    those two alone, add no attributes and keep the parent's trace state, so `start` can
    ask this before the span's attributes exist. None for any other sampler (a subclass
    overriding `should_sample` included): it is asked through `should_sample`."""
    should_sample = getattr(type(sampler), "should_sample", None)
    if should_sample is sampling.StaticSampler.should_sample:
        decision = getattr(sampler, "_decision", None)
        if decision is sampling.Decision.RECORD_AND_SAMPLE:
            return lambda parent, trace_id: True
        if decision is sampling.Decision.DROP:
            return lambda parent, trace_id: False
        return None
    if should_sample is sampling.TraceIdRatioBased.should_sample:
        bound = sampler.bound
        limit = sampling.TraceIdRatioBased.TRACE_ID_LIMIT
        return lambda parent, trace_id: trace_id & limit < bound
    if should_sample is sampling.ParentBased.should_sample:
        rules = [sampling_rule(getattr(sampler, name, None)) for name in (
            "_root", "_remote_parent_sampled", "_remote_parent_not_sampled",
            "_local_parent_sampled", "_local_parent_not_sampled")]
        if any(rule is None for rule in rules):
            return None
        root, remote_sampled, remote_not_sampled, local_sampled, local_not_sampled = rules

        def parent_based(parent: SpanContext | None, trace_id: int) -> bool:
            if parent is None:
                return root(parent, trace_id)  # type: ignore[misc]
            if parent.is_remote:
                rule = remote_sampled if parent.trace_flags.sampled else remote_not_sampled
            else:
                rule = local_sampled if parent.trace_flags.sampled else local_not_sampled
            return rule(parent, trace_id)  # type: ignore[misc]

        return parent_based
    return None


def _no_op_hooks() -> frozenset[Any]:
    """`on_start` / `_on_ending` of the SDK's processors whose bodies are `pass`."""
    from opentelemetry.sdk.trace import SpanProcessor
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor

    return frozenset(
        getattr(kind, name)
        for kind in (SpanProcessor, BatchSpanProcessor, SimpleSpanProcessor)
        for name in ("on_start", "_on_ending")
        if hasattr(kind, name)
    )


_NO_OP_HOOKS = _no_op_hooks()


def _valid_value(value: Any) -> bool:
    if isinstance(value, _ATTRIBUTE_TYPES):
        return True
    if isinstance(value, Sequence) and not isinstance(value, (bytes, bytearray)):
        kinds = {type(item) for item in value if item is not None}
        return len(kinds) <= 1 and kinds <= set(_ATTRIBUTE_TYPES)
    return False


def _ids_are_random(ids: Any) -> bool:
    check = getattr(ids, "is_trace_id_random", None)
    return bool(check()) if check is not None else False

