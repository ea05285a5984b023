"""The `opentelemetry` provider, in-process, with the SDK's in-memory exporter."""

from __future__ import annotations

import asyncio

from opentelemetry.trace import SpanKind, StatusCode

from openfunction.config import Component
from openfunction.dapr import innerevent
from openfunction.invocation import TOPIC, Invocation

UPSTREAM_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
UPSTREAM_SPAN = "00f067aa0ba902b7"
TRACEPARENT = f"00-{UPSTREAM_TRACE}-{UPSTREAM_SPAN}-01"

OTEL = {"enabled": True, "provider": {"name": "opentelemetry", "exporter": {
    "name": "otlp", "endpoint": "127.0.0.1:4317"}}, "tags": {"tag1": "value1"},
    "baggage": {"key": "baggage", "value": "tenant=acme"}}


def context(name: str, runtime: str = "Knative", **extra) -> dict:
    return {"name": name, "version": "v1", "runtime": runtime, "pluginsTracing": OTEL, **extra}


def hexid(value: int, width: int) -> str:
    return format(value, f"0{width}x")


def test_http_function_gets_a_server_span_with_the_go_tags(make_function, spans):
    fn = make_function("def hello(request):\n    return 'hi'\n", "hello", context("hello-otel"),
                       env={"POD_NAME": "hello-otel-7d9", "POD_NAMESPACE": "test",
                            "CONTEXT_MODE": "kubernetes"})
    assert fn.client.get("/greet", headers={"host": "fn.test"}).text == "hi"
    (span,) = spans.get_finished_spans()
    assert span.name == "hello-otel" and span.kind is SpanKind.SERVER
    assert span.parent is None
    assert span.status.status_code is StatusCode.UNSET
    assert dict(span.attributes) == {
        "http.method": "GET", "url": "fn.test/greet", "runtime": "Knative", "layer": "faas",
        "tag1": "value1", "func": "hello-otel", "instance": "hello-otel-7d9",
        "namespace": "test",
    }


def test_traceparent_header_continues_the_trace(make_function, spans):
    fn = make_function("def hello(request):\n    return 'hi'\n", "hello", context("hello-otel"))
    fn.client.get("/", headers={"traceparent": TRACEPARENT})
    (span,) = spans.get_finished_spans()
    assert hexid(span.context.trace_id, 32) == UPSTREAM_TRACE
    assert hexid(span.parent.span_id, 16) == UPSTREAM_SPAN and span.parent.is_remote


def test_send_makes_a_producer_span_and_puts_its_context_in_the_metadata(make_function, spans):
    source = """
        from opentelemetry import baggage

        def handler(ctx, data):
            ctx.send({"seen": data}, "sink")      # from a worker thread
            return {"tenant": baggage.get_baggage("tenant")}
    """
    outputs = {"sink": {"componentName": "msgs", "componentType": "pubsub.redis", "uri": "orders"}}
    fn = make_function(source, "handler", context("producer", outputs=outputs))
    r = fn.client.post("/", json={"n": 1}, headers={"traceparent": TRACEPARENT})
    assert r.status_code == 200 and r.json() == {"tenant": "acme"}
    exit_span, entry = spans.get_finished_spans()
    assert (entry.kind, exit_span.kind) == (SpanKind.SERVER, SpanKind.PRODUCER)
    assert exit_span.name == "producer"
    assert exit_span.parent.span_id == entry.context.span_id
    assert exit_span.context.trace_id == entry.context.trace_id == int(UPSTREAM_TRACE, 16)
    attributes = dict(exit_span.attributes)
    assert {k: attributes[k] for k in ("func", "layer", "peer", "component.type")} == {
        "func": "producer", "layer": "faas", "peer": "orders", "component.type": "pubsub"}
    (message,) = fn.sender.sent
    assert message.metadata["traceparent"] == (
        f"00-{UPSTREAM_TRACE}-{hexid(exit_span.context.span_id, 16)}-01")
    assert "tenant=acme" in message.metadata["baggage"]


def test_concurrent_invocations_parent_their_own_sends(make_function, spans):
    source = """
        import asyncio

        async def handler(ctx, data):
            await asyncio.sleep(0.01)
            await ctx.send_async(data, "sink")
            return "ok"
    """
    outputs = {"sink": {"componentName": "msgs", "componentType": "pubsub.redis", "uri": "t"}}
    fn = make_function(source, "handler", context("fan", outputs=outputs))

    async def burst():
        import httpx

        transport = httpx.ASGITransport(app=fn.client.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://fn") as client:
            await asyncio.gather(*(client.post("/", json=i) for i in range(20)))

    fn.client.portal.call(burst)
    finished = spans.get_finished_spans()
    entries = {s.context.span_id: s for s in finished if s.kind is SpanKind.SERVER}
    exits = [s for s in finished if s.kind is SpanKind.PRODUCER]
    assert len(entries) == 20 and len(exits) == 20
    assert {s.parent.span_id for s in exits} == set(entries)
    for message in fn.sender.sent:
        trace_id = message.metadata["traceparent"].split("-")[1]
        assert trace_id in {hexid(e.context.trace_id, 32) for e in entries.values()}
    assert len({e.context.trace_id for e in entries.values()}) == 20


def test_async_event_continues_the_trace_of_a_go_inner_event(make_function, spans):
    fn = make_function("def handler(ctx, data):\n    return None\n", "handler",
                       context("consumer", runtime="Async", inputs={
                           "in": {"componentName": "msgs", "componentType": "pubsub.redis",
                                  "uri": "orders"}}))
    raw = innerevent.wrap(fn.config, b'{"n":1}', {"traceparent": TRACEPARENT})
    inner = innerevent.unwrap(raw)
    invocation = Invocation(
        fn.config, TOPIC, data={"n": 1},
        input=Component("in", "msgs", "pubsub.redis", "orders"),
        carrier=dict(inner.metadata),
    )
    fn.client.portal.call(fn.runner.run, invocation)
    (span,) = spans.get_finished_spans()
    assert span.kind is SpanKind.CONSUMER
    assert hexid(span.context.trace_id, 32) == UPSTREAM_TRACE
    assert hexid(span.parent.span_id, 16) == UPSTREAM_SPAN
    assert span.attributes["runtime"] == "Async"
    assert span.attributes["component.type"] == "pubsub"
    assert "http.method" not in span.attributes


def test_raising_function_marks_the_span_as_an_error(make_function, spans):
    fn = make_function("def boom(request):\n    raise ValueError('bad input')\n", "boom",
                       context("boom"))
    assert fn.client.get("/").status_code == 500
    (span,) = spans.get_finished_spans()
    assert span.status.status_code is StatusCode.ERROR
    assert "ValueError: bad input" in span.status.description
    assert [e.name for e in span.events] == ["exception"]


def test_5xx_answer_marks_the_span_as_an_error(make_function, spans):
    fn = make_function("def f(request):\n    return 'down', 503\n", "f", context("five"))
    assert fn.client.get("/").status_code == 503
    (span,) = spans.get_finished_spans()
    assert span.status.status_code is StatusCode.ERROR and "503" in span.status.description


def test_the_function_sees_its_span_as_the_current_one(make_function, spans):
    source = """
        from opentelemetry import trace

        def f(request):
            with trace.get_tracer("user").start_as_current_span("inner"):
                pass
            return format(trace.get_current_span().get_span_context().span_id, "016x")
    """
    fn = make_function(source, "f", context("nested"))
    current = fn.client.get("/").text
    inner, entry = spans.get_finished_spans()
    assert current == hexid(entry.context.span_id, 16)
    assert inner.parent.span_id == entry.context.span_id


def test_tracing_off_makes_no_spans_and_loads_no_plugin(make_function, spans):
    fn = make_function("def f(request):\n    return 'x'\n", "f",
                       {"name": "off", "runtime": "Knative",
                        "pluginsTracing": {**OTEL, "enabled": False}})
    assert fn.client.get("/").text == "x"
    assert spans.get_finished_spans() == ()
    assert not fn.runner.pipeline


def test_propagators_that_read_other_headers_are_given_all_of_them():
    from openfunction.tracing.opentelemetry import _exact_propagators

    assert _exact_propagators({}) and _exact_propagators({"OTEL_PROPAGATORS": "b3, tracecontext"})
    assert not _exact_propagators({"OTEL_PROPAGATORS": "tracecontext,jaeger"})


def test_a_provider_the_starter_cannot_serve_gets_spans_from_the_sdk_tracer(make_function, spans,
                                                                              monkeypatch):
    from openfunction.tracing.otel_spans import RecordingSpan, SpanStarter

    monkeypatch.setattr(SpanStarter, "for_provider", classmethod(lambda cls, p, s: None))
    fn = make_function("def hello(request):\n    raise KeyError('k')\n", "hello",
                       context("hello-otel"))
    assert fn.client.get("/", headers={"traceparent": TRACEPARENT}).status_code == 500
    (span,) = spans.get_finished_spans()
    assert not isinstance(span, RecordingSpan)  # the SDK's read-only copy of its span
    assert hexid(span.context.trace_id, 32) == UPSTREAM_TRACE
    assert span.status.status_code is StatusCode.ERROR and span.events[0].name == "exception"


def test_a_trace_sampled_out_records_nothing_and_stays_sampled_out(make_function, spans,
                                                                  monkeypatch):
    from opentelemetry import trace
    from opentelemetry.sdk.trace.sampling import ParentBasedTraceIdRatio

    # what OTEL_TRACES_SAMPLER=parentbased_traceidratio, OTEL_TRACES_SAMPLER_ARG=0 sets up
    monkeypatch.setattr(trace.get_tracer_provider(), "sampler", ParentBasedTraceIdRatio(0.0))
    source = """
        from opentelemetry import trace

        def f(request):
            with trace.get_tracer("user").start_as_current_span("inner") as inner:
                recording = inner.is_recording()
            context = trace.get_current_span().get_span_context()
            return f"{context.is_valid} {context.trace_flags.sampled} {recording}"
    """
    fn = make_function(source, "f", context("sampled-out"))
    assert fn.client.get("/").text == "True False False"
    assert spans.get_finished_spans() == ()
    # a caller's sampled trace is still followed
    assert fn.client.get("/", headers={"traceparent": TRACEPARENT}).text == "True True True"
    inner, entry = spans.get_finished_spans()
    assert hexid(entry.context.trace_id, 32) == UPSTREAM_TRACE
