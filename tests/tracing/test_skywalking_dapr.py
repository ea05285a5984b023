"""SkyWalking traces across Dapr: the real function processes, real daprd sidecars, a real
MQTT broker, and the collector. Trace context travels in OpenFunction's inner event."""

from __future__ import annotations

import base64
import json
import uuid
from pathlib import Path

import httpx
import pytest

from openfunction.dapr import innerevent
from support.skywalking_collector import SkyWalkingCollector, skywalking_collector, tags
from support.traced_functions import TOPIC, consumer, producer

pytestmark = pytest.mark.integration

SAMPLE = Path(__file__).resolve().parents[2] / "samples" / "tracing"


@pytest.fixture(scope="module")
def collector():
    with skywalking_collector() as running:
        yield running


@pytest.fixture(autouse=True)
def fresh_collector(collector):
    collector.clear()


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def decode_sw8(value: str) -> dict:
    parts = value.split("-")
    assert len(parts) == 8 and parts[0] == "1", value
    d = lambda s: base64.b64decode(s).decode()  # noqa: E731
    return {"trace": d(parts[1]), "segment": d(parts[2]), "span": int(parts[3]),
            "service": d(parts[4]), "instance": d(parts[5]), "endpoint": d(parts[6]),
            "peer": d(parts[7])}


def tracing(collector: SkyWalkingCollector, **extra) -> dict:
    return {"enabled": True, "provider": {"name": "skywalking", "oapServer": collector.address},
            "tags": {"tag1": "value1"}, **extra}


def entry_of(segment):
    (entry,) = [s for s in segment.spans if s.spanType == 0]
    return entry


def test_send_makes_an_exit_span_whose_sw8_rides_in_the_inner_event(tmp_path, collector, broker):
    baggage = {"key": "sw8-correlation", "value": f"{b64('tenant')}:{b64('acme')}"}
    with broker.subscribe(TOPIC) as subscription, \
            producer(tmp_path, tracing(collector, baggage=baggage), broker) as fn:
        r = httpx.post(fn.url, json={"n": 1}, timeout=10)
        assert r.status_code == 200 and r.json() == {"sent": True}, fn.log
        (message,) = subscription.wait_for(1)
        (segment,) = collector.wait_for_segments("producer")
    envelope = json.loads(message)  # daprd's CloudEvent; its data is the inner event
    inner = innerevent.unwrap(json.dumps(envelope["data"]))
    assert inner is not None, message
    assert json.loads(inner.user_data) == {"order": {"n": 1}}
    exit_span, entry = sorted(segment.spans, key=lambda s: -s.spanId)
    assert (exit_span.spanType, exit_span.spanId, exit_span.parentSpanId) == (1, 1, 0)  # Exit
    assert (exit_span.operationName, exit_span.peer) == ("producer", TOPIC)
    assert (exit_span.spanLayer, exit_span.componentId) == (6, 5013)
    assert (entry.spanType, entry.spanId) == (0, 0)
    assert tags(entry)["runtime"] == "Knative"
    context = decode_sw8(inner.metadata["sw8"])
    assert context == {"trace": segment.traceId, "segment": segment.traceSegmentId, "span": 1,
                       "service": "producer", "instance": "producer-0", "endpoint": "producer",
                       "peer": TOPIC}
    assert inner.metadata["sw8-correlation"] == f"{b64('tenant')}:{b64('acme')}"


def go_inner_event(sw8: str, payload: bytes) -> str:
    """An inner event exactly as OpenFunction's Go framework publishes it."""
    data = json.dumps({"metadata": {"sw8": sw8},
                       "userData": base64.b64encode(payload).decode()}, separators=(",", ":"))
    return ('{"specversion":"1.0","id":"%s","source":"default/upstream",'
            '"type":"io.openfunction.function.default.upstream",'
            '"datacontenttype":"application/json","time":"2026-11-22T10:00:00.123456789Z",'
            '"data":%s}' % (uuid.uuid4(), data))


def test_async_function_continues_the_trace_of_a_go_inner_event(tmp_path, collector, broker):
    sw8 = "-".join(["1", b64("go-trace-1"), b64("go-segment-1"), "1", b64("upstream"),
                    b64("upstream-0"), b64("upstream"), b64(TOPIC)])
    with consumer(tmp_path, tracing(collector), broker) as (fn, daprd, received):
        daprd.publish("msgs", TOPIC, go_inner_event(sw8, b'{"n":7}'))
        (segment,) = collector.wait_for_segments("consumer")
    assert received.read_text().splitlines() == ['{"n": 7}']
    assert segment.traceId == "go-trace-1" and segment.serviceInstance == "consumer-0"
    span = entry_of(segment)
    assert (span.operationName, span.spanLayer, span.componentId, span.isError) == (
        "consumer", 6, 5013, False)
    assert {k: v for k, v in tags(span).items() if k != "instance"} == {
        "runtime": "Async", "component.type": "pubsub", "layer": "faas", "tag1": "value1",
        "func": "consumer", "namespace": "test"}
    (ref,) = span.refs
    assert (ref.traceId, ref.parentTraceSegmentId, ref.parentSpanId, ref.parentService,
            ref.parentServiceInstance, ref.parentEndpoint, ref.networkAddressUsedAtPeer) == (
        "go-trace-1", "go-segment-1", 1, "upstream", "upstream-0", "upstream", TOPIC)


def test_one_trace_from_http_through_two_functions_and_daprd(tmp_path, collector, broker):
    """HTTP → order-front → daprd → MQTT topic → daprd → order-handler (samples/tracing):
    one trace, two services, the producer's exit span the parent of the consumer's entry."""
    upstream = "-".join(["1", b64("e2e-trace"), b64("client-segment"), "2", b64("client"),
                         b64("client-0"), b64("/buy"), b64("producer:8080")])
    with consumer(tmp_path, tracing(collector), broker, SAMPLE / "async" / "main.py",
                  "handle") as (handler, _, _), \
            producer(tmp_path, tracing(collector), broker, SAMPLE / "sync" / "main.py",
                     "accept") as fn:
        r = httpx.post(fn.url, json={"item": "lamp"}, headers={"sw8": upstream}, timeout=10)
        assert r.status_code == 200 and r.json() == {"accepted": {"item": "lamp", "quantity": 1}}
        (a,) = collector.wait_for_segments("producer")
        (b,) = collector.wait_for_segments("consumer")
    assert "order {'item': 'lamp', 'quantity': 1} (trace e2e-trace)" in handler.log
    assert a.traceId == b.traceId == "e2e-trace"
    assert entry_of(a).refs[0].parentService == "client"
    (a_exit,) = [s for s in a.spans if s.spanType == 1]
    (ref,) = entry_of(b).refs
    assert (ref.parentTraceSegmentId, ref.parentSpanId) == (a.traceSegmentId, a_exit.spanId)
    assert (ref.parentService, ref.parentServiceInstance, ref.parentEndpoint,
            ref.networkAddressUsedAtPeer) == ("producer", "producer-0", "producer", TOPIC)
