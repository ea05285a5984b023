"""OpenTelemetry traces across Dapr: the real function processes, real daprd sidecars, a real
MQTT broker and an OTLP receiver. W3C trace context travels in OpenFunction's inner event."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from openfunction.dapr import innerevent
from support.otlp_receiver import OTLPReceiver, otlp_receiver
from support.traced_functions import TOPIC, consumer, producer

pytestmark = pytest.mark.integration

SAMPLE = Path(__file__).resolve().parents[2] / "samples" / "tracing"
TRACE = "0af7651916cd43dd8448eb211c80319c"
CALLER = "b7ad6b7169203331"
FAST_EXPORT = {"OTEL_BSP_SCHEDULE_DELAY": "100"}
SERVER, PRODUCER, CONSUMER = 2, 4, 5  # OTLP span kinds


@pytest.fixture(scope="module")
def receiver():
    with otlp_receiver() as running:
        yield running


@pytest.fixture(autouse=True)
def fresh_receiver(receiver):
    receiver.spans.clear()


def tracing(receiver: OTLPReceiver, **extra) -> dict:
    return {"enabled": True, "provider": {"name": "opentelemetry",
                                          "exporter": {"endpoint": receiver.endpoint}},
            "tags": {"tag1": "value1"}, **extra}


def spans_of(receiver: OTLPReceiver, service: str, count: int) -> list:
    receiver.wait_for_spans(count)
    return [s for s in receiver.spans if s.resource["service.name"] == service]


def test_send_puts_the_producer_span_s_context_in_the_inner_event(tmp_path, receiver, broker):
    baggage = {"key": "baggage", "value": "tenant=acme"}
    with broker.subscribe(TOPIC) as subscription, \
            producer(tmp_path, tracing(receiver, baggage=baggage), broker, env=FAST_EXPORT) as fn:
        r = httpx.post(fn.url, json={"n": 1}, timeout=10,
                       headers={"traceparent": f"00-{TRACE}-{CALLER}-01"})
        assert r.status_code == 200 and r.json() == {"sent": True}, fn.log
        (message,) = subscription.wait_for(1)
        spans = spans_of(receiver, "producer", 2)
    inner = innerevent.unwrap(json.dumps(json.loads(message)["data"]))
    assert inner is not None and json.loads(inner.user_data) == {"order": {"n": 1}}
    (entry,) = [s for s in spans if s.span.kind == SERVER]
    (send,) = [s for s in spans if s.span.kind == PRODUCER]
    assert entry.trace_id == send.trace_id == TRACE and entry.parent_span_id == CALLER
    assert send.parent_span_id == entry.span_id
    assert send.attributes == {"peer": TOPIC, "component.type": "pubsub"}
    assert inner.metadata["traceparent"] == f"00-{TRACE}-{send.span_id}-01"
    assert "tenant=acme" in inner.metadata["baggage"]


def test_one_trace_from_http_through_two_functions_and_daprd(tmp_path, receiver, broker):
    """HTTP → order-front → daprd → MQTT topic → daprd → order-handler (samples/tracing):
    one trace, two services, the producer's PRODUCER span the parent of the consumer's span."""
    with consumer(tmp_path, tracing(receiver), broker, SAMPLE / "async" / "main.py", "handle",
                  env=FAST_EXPORT) as (handler, _, _), \
            producer(tmp_path, tracing(receiver), broker, SAMPLE / "sync" / "main.py", "accept",
                     env=FAST_EXPORT) as fn:
        r = httpx.post(fn.url, json={"item": "lamp"}, timeout=10,
                       headers={"traceparent": f"00-{TRACE}-{CALLER}-01"})
        assert r.status_code == 200 and r.json() == {"accepted": {"item": "lamp", "quantity": 1}}
        receiver.wait_for_spans(3)
        handled = [s for s in receiver.spans if s.resource["service.name"] == "consumer"]
    assert f"order {{'item': 'lamp', 'quantity': 1}} (trace {TRACE})" in handler.log
    front = [s for s in receiver.spans if s.resource["service.name"] == "producer"]
    (send,) = [s for s in front if s.span.kind == PRODUCER]
    (handle,) = handled
    assert handle.span.kind == CONSUMER and handle.trace_id == TRACE
    assert handle.parent_span_id == send.span_id
    assert {k: handle.attributes[k] for k in ("runtime", "component.type")} == {
        "runtime": "Async", "component.type": "pubsub"}
    assert {k: handle.resource[k] for k in ("func", "instance", "namespace", "tag1")} == {
        "func": "consumer", "instance": "consumer-0", "namespace": "test", "tag1": "value1"}
