"""SkyWalking traces across Dapr: the real function processes, real daprd sidecars, a real
MQTT broker, and the collector. Trace context travels in OpenFunction's inner event."""

from __future__ import annotations

import base64
import json
import time
import uuid
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Iterator

import httpx
import pytest

from openfunction.dapr import innerevent
from support.dapr import Daprd, Mosquitto, mqtt_component, start_daprd, start_mosquitto, write_components
from support.process import Process, free_port, run_function
from support.skywalking_collector import SkyWalkingCollector, skywalking_collector, tags

pytestmark = pytest.mark.integration

PRODUCER = """
def handler(ctx, data):
    ctx.send({"order": data}, "orders")        # a def function: sends from a worker thread
    return {"sent": True}
"""

CONSUMER = """
import json, os

def handler(ctx, data):
    with open(os.environ["RECEIVED"], "a") as out:
        out.write(json.dumps(data) + "\\n")
"""

TOPIC = "orders"
SAMPLE = Path(__file__).resolve().parents[2] / "samples" / "tracing"


@pytest.fixture(scope="module")
def collector():
    with skywalking_collector() as running:
        yield running


@pytest.fixture(autouse=True)
def fresh_collector(collector):
    collector.clear()


@pytest.fixture(scope="module")
def broker():
    with start_mosquitto() as running:
        yield running


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


def pod(name: str) -> dict[str, str]:
    return {"POD_NAME": f"{name}-0", "POD_NAMESPACE": "test"}


@contextmanager
def producer(tmp: Path, collector, broker: Mosquitto, source: Path | None = None,
             target: str = "handler", **extra) -> Iterator[Process]:
    """A Knative function whose output is the MQTT topic, with its own daprd."""
    if source is None:
        source = tmp / "producer.py"
        source.write_text(PRODUCER)
    resources = write_components(tmp / "producer-resources",
                                 [mqtt_component("msgs", "pubsub.mqtt3", broker)])
    ctx = {"name": "producer", "version": "v1", "runtime": "Knative",
           "outputs": {"orders": {"componentName": "msgs", "componentType": "pubsub.mqtt3",
                                  "uri": TOPIC}},
           "pluginsTracing": tracing(collector, **extra)}
    # The daprd of a function that only sends needs no app: nothing listens on its app port.
    with start_daprd(resources, free_port(), app_id="producer", wait="outbound") as daprd:
        env = {"FUNC_CONTEXT": json.dumps(ctx), **pod("producer"), **daprd.env}
        with run_function(source, target, env=env) as fn:
            yield fn


@contextmanager
def consumer(tmp: Path, collector, broker: Mosquitto, source: Path | None = None,
             target: str = "handler") -> Iterator[tuple[Process, Daprd, Path]]:
    """An Async function reading the MQTT topic, with its own daprd."""
    if source is None:
        source = tmp / "consumer.py"
        source.write_text(CONSUMER)
    received = tmp / "received.jsonl"
    resources = write_components(tmp / "consumer-resources",
                                 [mqtt_component("msgs", "pubsub.mqtt3", broker)])
    port = free_port()
    ctx = {"name": "consumer", "version": "v1", "runtime": "Async", "port": str(port),
           "inputs": {"in": {"componentName": "msgs", "componentType": "pubsub.mqtt3",
                             "uri": TOPIC}},
           "pluginsTracing": tracing(collector)}
    with ExitStack() as stack:
        daprd = stack.enter_context(start_daprd(resources, port, app_id="consumer",
                                                wait="outbound"))
        env = {"FUNC_CONTEXT": json.dumps(ctx), **pod("consumer"), **daprd.env,
               "RECEIVED": str(received)}
        fn = stack.enter_context(run_function(source, target, env=env, port=port))
        deadline = time.monotonic() + 20
        while not daprd.metadata().get("subscriptions"):
            assert time.monotonic() < deadline, f"daprd never subscribed:\n{daprd.log}\n{fn.log}"
            time.sleep(0.1)
        time.sleep(0.3)  # the MQTT subscription reaches the broker
        yield fn, daprd, received


def entry_of(segment):
    (entry,) = [s for s in segment.spans if s.spanType == 0]
    return entry


def test_send_makes_an_exit_span_whose_sw8_rides_in_the_inner_event(tmp_path, collector, broker):
    baggage = {"key": "sw8-correlation", "value": f"{b64('tenant')}:{b64('acme')}"}
    with broker.subscribe(TOPIC) as subscription, \
            producer(tmp_path, collector, broker, baggage=baggage) as fn:
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
    with consumer(tmp_path, collector, broker) as (fn, daprd, received):
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
    with consumer(tmp_path, collector, broker, SAMPLE / "async" / "main.py", "handle") as (
            handler, _, _), \
            producer(tmp_path, collector, broker, SAMPLE / "sync" / "main.py", "accept") as fn:
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
