"""The OTLP/gRPC exporter: the SDK's transport with the runtime's encoding, to a real receiver."""

from __future__ import annotations

import grpc
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from openfunction.tracing import otlp_exporter
from openfunction.tracing.otlp_exporter import FastOTLPSpanExporter, make_grpc_exporter
from support.otlp_receiver import otlp_receiver


def some_spans(count: int):
    exporter = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource({"service.name": "fn", "func": "fn"}))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("openfunction")
    for n in range(count):
        tracer.start_span("fn", attributes={"n": n, "url": "h/x"}).end()
    return exporter.get_finished_spans()


def test_a_batch_reaches_the_receiver_with_the_resource_and_attributes():
    with otlp_receiver() as receiver:
        exporter = make_grpc_exporter(endpoint=f"http://{receiver.endpoint}", timeout=5)
        assert isinstance(exporter, FastOTLPSpanExporter)
        assert exporter.export(some_spans(3)) is SpanExportResult.SUCCESS
        received = receiver.wait_for_spans(3)
        exporter.shutdown()
    assert [s.attributes["n"] for s in received] == [0, 1, 2]
    assert received[0].resource == {"service.name": "fn", "func": "fn"}


def test_a_reconnected_channel_still_sends_encoded_requests():
    with otlp_receiver() as receiver:
        exporter = FastOTLPSpanExporter(endpoint=f"http://{receiver.endpoint}", timeout=5)
        exporter._initialize_channel_and_stub()  # what the SDK does after UNAVAILABLE
        assert exporter.export(some_spans(1)) is SpanExportResult.SUCCESS
        receiver.wait_for_spans(1)
        exporter.shutdown()


def test_headers_and_compression_are_the_sdk_s():
    with otlp_receiver() as receiver:
        exporter = FastOTLPSpanExporter(endpoint=f"http://{receiver.endpoint}", timeout=5,
                                        headers={"authorization": "Bearer t"},
                                        compression=grpc.Compression.Gzip)
        assert exporter.export(some_spans(2)) is SpanExportResult.SUCCESS
        receiver.wait_for_spans(2)
        exporter.shutdown()
    assert receiver.metadata[0]["authorization"] == "Bearer t"  # and gzip was accepted


def test_an_absent_receiver_fails_the_batch_without_raising():
    exporter = FastOTLPSpanExporter(endpoint="http://127.0.0.1:9", timeout=0.5)
    assert exporter.export(some_spans(1)) is SpanExportResult.FAILURE
    exporter.shutdown()


def test_an_exporter_version_without_the_stub_hook_falls_back_to_the_sdk_s(monkeypatch):
    monkeypatch.setattr(otlp_exporter.FastOTLPSpanExporter, "_use_bytes_stub", lambda self: None)
    exporter = make_grpc_exporter(endpoint="http://127.0.0.1:9", timeout=0.5)
    assert type(exporter) is OTLPSpanExporter
    exporter.shutdown()
