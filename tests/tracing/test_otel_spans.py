"""Spans the runtime starts itself behave as the SDK's: sampling, ids, the span API, processors."""

from __future__ import annotations

import logging

import pytest
from opentelemetry.context import Context
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import (
    ALWAYS_OFF,
    ALWAYS_ON,
    DEFAULT_OFF,
    Decision,
    ParentBased,
    ParentBasedTraceIdRatio,
    Sampler,
    SamplingResult,
    TraceIdRatioBased,
)
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import (
    NonRecordingSpan,
    SpanContext,
    SpanKind,
    Status,
    StatusCode,
    TraceFlags,
    TraceState,
    set_span_in_context,
)

from openfunction.tracing.otel_spans import (
    CONTEXT_IS_TUPLE,
    RecordingSpan,
    SpanStarter,
    local_context,
    sampling_rule,
)

SCOPE = InstrumentationScope("openfunction", "0.1")
TRACE, PARENT = 0x4BF92F3577B34DA6A3CE929D0E0E4736, 0x00F067AA0BA902B7


class Recorder(SpanProcessor):
    """A span processor that notes what it is told."""

    def __init__(self):
        self.started, self.ended, self.ending = [], [], []

    def _on_ending(self, span):
        self.ending.append(span)

    def on_start(self, span, parent_context=None):
        self.started.append((span, parent_context))

    def on_end(self, span):
        self.ended.append(span)


def starter(sampler=None):
    provider = TracerProvider(resource=Resource({"service.name": "fn"}), sampler=sampler)
    recorder = Recorder()
    provider.add_span_processor(recorder)
    return SpanStarter.for_provider(provider, SCOPE), recorder, provider


def remote(sampled=True, state=()):
    context = SpanContext(TRACE, PARENT, is_remote=True, trace_flags=TraceFlags(int(sampled)),
                          trace_state=TraceState(list(state)))
    return set_span_in_context(NonRecordingSpan(context))


def test_a_root_span_gets_new_ids_and_is_sampled():
    spans, recorder, provider = starter()
    span = spans.start("fn", Context(), SpanKind.SERVER, {"a": "b"})
    assert isinstance(span, RecordingSpan) and span.parent is None
    context = span.get_span_context()
    assert context.is_valid and not context.is_remote and context.trace_flags.sampled
    assert span.resource is provider.resource and span.instrumentation_scope is SCOPE
    assert recorder.started == [(span, Context())] and recorder.ended == []
    span.end()
    span.end()
    assert recorder.ending == recorder.ended == [span] and span.end_time >= span.start_time


def test_a_sampled_remote_parent_is_continued_with_its_trace_state():
    spans, _, _ = starter()
    span = spans.start("fn", remote(state=[("vendor", "v1")]), SpanKind.SERVER, {})
    context = span.get_span_context()
    assert (context.trace_id, span.parent.span_id, span.parent.is_remote) == (TRACE, PARENT, True)
    assert context.span_id != PARENT and context.trace_state == TraceState([("vendor", "v1")])
    assert int(context.trace_flags) == 1  # the parent's trace id was not marked random


def test_an_unsampled_remote_parent_gives_a_span_that_records_nothing():
    spans, recorder, _ = starter()
    span = spans.start("fn", remote(sampled=False), SpanKind.SERVER, {})
    assert isinstance(span, NonRecordingSpan) and not span.is_recording()
    assert span.get_span_context().trace_id == TRACE and not span.get_span_context().trace_flags.sampled
    span.end()
    assert recorder.started == recorder.ended == []


def test_a_configured_sampler_decides():
    spans, recorder, _ = starter(ALWAYS_OFF)
    assert not spans.start("fn", Context(), SpanKind.SERVER, {}).is_recording()
    spans, _, _ = starter(ParentBasedTraceIdRatio(1.0))
    assert spans.start("fn", Context(), SpanKind.SERVER, {}).is_recording()

    class RecordOnly(Sampler):
        def should_sample(self, parent_context, trace_id, name, kind=None, attributes=None,
                          links=None, trace_state=None):
            return SamplingResult(Decision.RECORD_ONLY, {"sampler": "yes"})

        def get_description(self):
            return "RecordOnly"

    spans, recorder, _ = starter(RecordOnly())
    span = spans.start("fn", Context(), SpanKind.SERVER, {"a": "b"})
    assert span.is_recording() and not span.get_span_context().trace_flags.sampled
    assert dict(span.attributes) == {"a": "b", "sampler": "yes"}


STANDARD_SAMPLERS = [
    ALWAYS_ON, ALWAYS_OFF, DEFAULT_OFF, TraceIdRatioBased(0.5), ParentBasedTraceIdRatio(0.25),
    ParentBased(TraceIdRatioBased(0.5), remote_parent_sampled=ALWAYS_OFF,
                local_parent_not_sampled=ALWAYS_ON),
]


def _parent(remote: bool, sampled: bool) -> SpanContext:
    return SpanContext(TRACE, PARENT, is_remote=remote, trace_flags=TraceFlags(int(sampled)))


@pytest.mark.parametrize("sampler", STANDARD_SAMPLERS, ids=lambda s: s.get_description())
def test_the_standard_samplers_are_decided_as_they_decide(sampler):
    rule = sampling_rule(sampler)
    assert rule is not None
    parents = [None, *(_parent(r, s) for r in (True, False) for s in (True, False))]
    trace_ids = [1, TRACE, (1 << 63) - 1, 1 << 63, (1 << 64) + 5, (1 << 128) - 1]
    for parent in parents:
        context = set_span_in_context(NonRecordingSpan(parent)) if parent else Context()
        for trace_id in trace_ids:
            expected = sampler.should_sample(context, trace_id, "fn").decision.is_sampled()
            assert rule(parent, trace_id) is expected, (parent, hex(trace_id))


def test_a_sampler_with_its_own_should_sample_is_asked():
    class Odd(TraceIdRatioBased):
        def should_sample(self, *args, **kwargs):
            return SamplingResult(Decision.RECORD_AND_SAMPLE)

    assert sampling_rule(Odd(0.0)) is None
    assert sampling_rule(ParentBased(Odd(0.0))) is None
    spans, _, _ = starter(Odd(0.0))
    assert spans.start("fn", Context(), SpanKind.SERVER, {}).is_recording()


def test_a_span_sampled_out_never_makes_its_attributes():
    made = []

    def attributes():
        made.append(1)
        return {"a": "b"}

    for sampler in (ALWAYS_OFF, ParentBasedTraceIdRatio(0.0), None):
        spans, recorder, _ = starter(sampler)
        parent = remote(sampled=False) if sampler is None else Context()
        span = spans.start("fn", parent, SpanKind.SERVER, attributes)
        assert not span.is_recording() and recorder.started == [] and made == []
    spans, _, _ = starter(ParentBasedTraceIdRatio(1.0))
    span = spans.start("fn", Context(), SpanKind.SERVER, attributes)
    assert span.is_recording() and dict(span.attributes) == {"a": "b"} and made == [1]


def test_the_span_api_matches_the_sdk_span():
    spans, recorder, provider = starter()
    ours = spans.start("fn", Context(), SpanKind.SERVER, {})
    theirs = provider.get_tracer("t").start_span("fn", kind=SpanKind.SERVER)
    error = ValueError("boom")
    for span in (ours, theirs):
        span.set_attribute("s", "x")
        span.set_attributes({"i": 1, "list": ["a", "b"]})
        span.add_event("e", {"k": "v"}, timestamp=5)
        span.record_exception(error, {"extra": True})
        span.update_name("renamed")
        span.set_status(StatusCode.UNSET)
        span.set_status(Status(StatusCode.ERROR, "bad"))
        span.end()
        span.set_attribute("late", "ignored")
    assert (ours.name, dict(ours.attributes)) == (theirs.name, dict(theirs.attributes))
    assert ours.status.status_code is StatusCode.ERROR and ours.status.description == "bad"
    assert [(e.name, dict(e.attributes)) for e in ours.events] == [
        (e.name, dict(e.attributes)) for e in theirs.events]


def test_ok_status_sticks_and_links_need_a_valid_context():
    spans, _, _ = starter()
    span = spans.start("fn", Context(), SpanKind.SERVER, {})
    span.set_status(Status(StatusCode.OK))
    span.set_status(Status(StatusCode.ERROR, "later"))
    span.add_link(SpanContext(0, 0, False))
    span.add_link(SpanContext(TRACE, PARENT, True), {"why": "batch"})
    assert span.status.status_code is StatusCode.OK
    assert [(link.context.span_id, dict(link.attributes)) for link in span.links] == [
        (PARENT, {"why": "batch"})]


@pytest.mark.parametrize("key, value", [("k", {"no": "dicts"}), ("k", ["mixed", 1]), ("", "x"),
                                        ("k", None)])
def test_invalid_attributes_are_logged_and_left_out(key, value, caplog):
    spans, _, _ = starter()
    span = spans.start("fn", Context(), SpanKind.SERVER, {})
    with caplog.at_level(logging.WARNING, "openfunction.tracing"):
        span.set_attribute(key, value)
    assert dict(span.attributes) == {} and caplog.records


def test_spans_reach_the_processors_of_a_provider_set_up_elsewhere():
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    spans = SpanStarter.for_provider(provider, SCOPE)
    spans.start("fn", Context(), SpanKind.CONSUMER, {"component.type": "pubsub"}).end()
    (span,) = exporter.get_finished_spans()
    assert (span.name, span.kind, dict(span.attributes)) == (
        "fn", SpanKind.CONSUMER, {"component.type": "pubsub"})


def test_providers_it_cannot_serve_are_left_to_the_sdk_tracer(monkeypatch):
    class Elsewhere:
        resource, id_generator, sampler = None, None, None

    assert SpanStarter.for_provider(Elsewhere(), SCOPE) is None
    monkeypatch.setenv("OTEL_SDK_DISABLED", "true")
    assert SpanStarter.for_provider(TracerProvider(), SCOPE) is None


def test_the_processor_hooks_left_out_really_do_nothing():
    import ast
    import inspect
    import textwrap

    from openfunction.tracing.otel_spans import _NO_OP_HOOKS

    assert _NO_OP_HOOKS
    for hook in _NO_OP_HOOKS:
        (function,) = ast.parse(textwrap.dedent(inspect.getsource(hook))).body
        statements = [node for node in function.body if not (
            isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant))]
        assert all(isinstance(node, ast.Pass) for node in statements), hook


def test_a_processor_added_later_sees_the_next_spans():
    spans, first, provider = starter()
    spans.start("fn", Context(), SpanKind.SERVER, {}).end()
    second = Recorder()
    provider.add_span_processor(second)
    span = spans.start("fn", Context(), SpanKind.SERVER, {})
    span.end()
    assert len(first.ended) == 2 and second.started == [(span, Context())]
    assert second.ended == [span]


def test_a_recording_span_sets_every_field_a_readable_span_has():
    from opentelemetry.sdk.trace import ReadableSpan

    spans, _, _ = starter()
    span = spans.start("fn", Context(), SpanKind.SERVER, {})
    missing = [name for name in vars(ReadableSpan("x")) if not hasattr(span, name)]
    assert missing == []
    assert (span.events, span.links, span.dropped_events, span.dropped_links) == ((), (), 0, 0)


@pytest.mark.parametrize("trace_id, span_id", [
    (0x4BF92F3577B34DA6A3CE929D0E0E4736, 0x00F067AA0BA902B7),
    (1, 1), ((1 << 128) - 1, (1 << 64) - 1),
    (0, 5), (5, 0), (1 << 128, 5), (5, 1 << 64),  # invalid: not is_valid, as the API says
])
@pytest.mark.parametrize("state", [None, TraceState(), TraceState([("k", "v")])])
def test_local_context_is_the_span_context_the_api_makes(trace_id, span_id, state):
    flags = TraceFlags(TraceFlags.SAMPLED)
    made = local_context(trace_id, span_id, flags, state)
    expected = SpanContext(trace_id, span_id, False, flags, state)
    assert CONTEXT_IS_TUPLE
    assert type(made) is SpanContext and tuple(made) == tuple(expected)
    assert (made.trace_id, made.span_id, made.is_remote, made.trace_flags, made.trace_state,
            made.is_valid) == (expected.trace_id, expected.span_id, False, flags,
                               expected.trace_state, expected.is_valid)
