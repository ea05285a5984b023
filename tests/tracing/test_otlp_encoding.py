"""The hand-written OTLP encoding parses to what the SDK's own encoder makes."""

from __future__ import annotations

import pytest
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import (
    Link,
    NonRecordingSpan,
    SpanContext,
    SpanKind,
    Status,
    StatusCode,
    TraceFlags,
    TraceState,
    set_span_in_context,
)

from openfunction.tracing.otlp_encoding import SpanEncoder, varint


def finished_spans(resource_attributes=None, schema_url=""):
    exporter = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource(resource_attributes or {"service.name": "fn"},
                                                schema_url))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider, exporter


def parsed(data: bytes) -> ExportTraceServiceRequest:
    return ExportTraceServiceRequest.FromString(data)


def test_varint():
    assert [varint(n) for n in (0, 1, 127, 128, 300, 2**63)] == [
        b"\x00", b"\x01", b"\x7f", b"\x80\x01", b"\xac\x02",
        b"\x80\x80\x80\x80\x80\x80\x80\x80\x80\x01"]


def test_spans_of_every_shape_encode_as_the_sdk_encodes_them():
    provider, exporter = finished_spans({"service.name": "fn", "k8s.pod.name": "p-1", "n": 3},
                                        "https://opentelemetry.io/schemas/1.21.0")
    tracer = provider.get_tracer("openfunction", "1.2.3")
    other = provider.get_tracer("user.code", schema_url="https://example.test/s",
                                attributes={"scope.attr": True})
    remote = SpanContext(0x4BF92F3577B34DA6A3CE929D0E0E4736, 0x00F067AA0BA902B7, is_remote=True,
                         trace_flags=TraceFlags(1), trace_state=TraceState([("vendor", "v1")]))
    parent = set_span_in_context(NonRecordingSpan(remote))
    server = tracer.start_span("hello", context=parent, kind=SpanKind.SERVER, attributes={
        "s": "text", "empty": "", "t": True, "f": False, "i": 7, "neg": -2, "zero": 0,
        "big": 2**40, "d": 1.5, "dz": 0.0, "strs": ["a", "b"], "ints": (1, 2), "bools": [True],
        "unicode": "héllo ✓"})
    try:
        raise ValueError("boom")
    except ValueError as error:
        server.record_exception(error)
    server.add_event("plain")
    server.set_status(Status(StatusCode.ERROR, "ValueError: boom"))
    child = tracer.start_span("hello", context=set_span_in_context(server),
                              kind=SpanKind.PRODUCER, attributes={"peer": "orders"},
                              links=[Link(remote, {"why": "batch"})])
    child.set_status(Status(StatusCode.OK))
    child.end()
    server.end()
    with other.start_as_current_span("inner"):
        pass
    root = tracer.start_span("root", kind=SpanKind.INTERNAL)
    root.end()
    spans = exporter.get_finished_spans()
    assert len(spans) == 4
    ours = SpanEncoder().encode_request(spans)
    assert parsed(ours) == encode_spans(spans)


def test_cached_parts_are_reused_and_stay_right():
    provider, exporter = finished_spans()
    tracer = provider.get_tracer("openfunction")
    encoder = SpanEncoder()
    for n in range(3):
        for url in ("h/a", "h/b"):
            tracer.start_span("hello", attributes={"url": url, "n": n, "flag": n == 1}).end()
        spans = exporter.get_finished_spans()
        exporter.clear()
        assert parsed(encoder.encode_request(spans)) == encode_spans(spans)


def test_true_and_one_are_different_attribute_values():
    provider, exporter = finished_spans()
    tracer = provider.get_tracer("openfunction")
    tracer.start_span("a", attributes={"x": True}).end()
    tracer.start_span("b", attributes={"x": 1}).end()
    tracer.start_span("c", attributes={"x": 1.0}).end()
    spans = exporter.get_finished_spans()
    values = [s.attributes[0].value for s in
              parsed(SpanEncoder().encode_request(spans)).resource_spans[0].scope_spans[0].spans]
    assert [v.WhichOneof("value") for v in values] == ["bool_value", "int_value", "double_value"]


def test_spans_of_two_providers_go_in_two_resource_groups():
    first, first_spans = finished_spans({"service.name": "a"})
    second, second_spans = finished_spans({"service.name": "b"})
    first.get_tracer("t").start_span("one").end()
    second.get_tracer("t").start_span("two").end()
    spans = [*first_spans.get_finished_spans(), *second_spans.get_finished_spans()]
    request = parsed(SpanEncoder().encode_request(spans))
    assert request == encode_spans(spans)
    assert [r.scope_spans[0].spans[0].name for r in request.resource_spans] == ["one", "two"]


def test_a_value_that_cannot_be_encoded_drops_that_attribute_only():
    provider, exporter = finished_spans()
    provider.get_tracer("t").start_span("one", attributes={"ok": "yes"}).end()
    (span,) = exporter.get_finished_spans()
    span._attributes = {"ok": "yes", "odd": object()}
    request = parsed(SpanEncoder().encode_request([span]))
    (encoded,) = request.resource_spans[0].scope_spans[0].spans
    assert [a.key for a in encoded.attributes] == ["ok"]


@pytest.mark.parametrize("size", [0, 127, 128, 20000])
def test_long_values_get_multi_byte_lengths(size):
    provider, exporter = finished_spans()
    provider.get_tracer("t").start_span("n" * size or "x", attributes={"v": "x" * size}).end()
    spans = exporter.get_finished_spans()
    assert parsed(SpanEncoder().encode_request(spans)) == encode_spans(spans)


def test_the_runtime_s_own_spans_encode_as_the_sdk_encodes_them():
    from opentelemetry.sdk.util.instrumentation import InstrumentationScope

    from openfunction.tracing.otel_spans import RecordingSpan, SpanStarter

    provider, exporter = finished_spans()
    starter = SpanStarter.for_provider(provider, InstrumentationScope("openfunction", "0.1"))
    remote = SpanContext(0x4BF92F3577B34DA6A3CE929D0E0E4736, 0x00F067AA0BA902B7, is_remote=True,
                         trace_flags=TraceFlags(1), trace_state=TraceState([("vendor", "v1")]))
    entry = starter.start("fn", set_span_in_context(NonRecordingSpan(remote)), SpanKind.SERVER,
                          {"http.method": "GET", "url": "h/x", "runtime": "Knative"})
    send = starter.start("fn", set_span_in_context(entry), SpanKind.PRODUCER, {"peer": "t"})
    send.end()
    entry.record_exception(KeyError("k"))
    entry.set_status(Status(StatusCode.ERROR, "KeyError: 'k'"))
    entry.end()
    root = starter.start("fn", None, SpanKind.CONSUMER, {"component.type": "pubsub"})
    root.end()
    spans = exporter.get_finished_spans()
    assert [type(span) for span in spans] == [RecordingSpan] * 3
    assert parsed(SpanEncoder().encode_request(spans)) == encode_spans(spans)
