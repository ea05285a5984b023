"""Concurrent invocations in one process keep their own segments, and sends made from `def`
functions (worker threads) and `async def` ones alike get their own invocation as parent."""

from __future__ import annotations

import asyncio
import base64
import json

import httpx
import pytest

from support.skywalking_collector import skywalking_collector

pytestmark = pytest.mark.integration

SOURCE = """
import asyncio, time

def sync_handler(ctx, data):
    time.sleep(0.005)
    ctx.send({"n": data}, "sink")
    ctx.send({"n": data}, "audit")
    return data

async def async_handler(ctx, data):
    await asyncio.sleep(0.005)
    await asyncio.gather(ctx.send_async({"n": data}, "sink"), ctx.send_async({"n": data}, "audit"))
    return data
"""

OUTPUTS = {"sink": {"componentName": "msgs", "componentType": "pubsub.redis", "uri": "orders"},
           "audit": {"componentName": "log", "componentType": "bindings.kafka"}}


def sw8_fields(value: str) -> tuple[str, str, int, str]:
    parts = value.split("-")
    decode = lambda s: base64.b64decode(s).decode()  # noqa: E731
    return decode(parts[1]), decode(parts[2]), int(parts[3]), decode(parts[7])


@pytest.mark.parametrize("target", ["sync_handler", "async_handler"])
def test_each_invocation_parents_its_own_sends(make_function, target):
    with skywalking_collector() as collector:
        ctx = {"name": f"burst-{target[:4]}", "version": "v1", "runtime": "Knative",
               "outputs": OUTPUTS, "pluginsTracing": {
                   "enabled": True, "provider": {"name": "skywalking",
                                                 "oapServer": collector.address}}}
        fn = make_function(SOURCE, target, ctx)

        async def burst():
            transport = httpx.ASGITransport(app=fn.client.app)
            async with httpx.AsyncClient(transport=transport, base_url="http://fn") as client:
                return await asyncio.gather(*(client.post("/", json=i) for i in range(30)))

        responses = fn.client.portal.call(burst)
        assert [r.json() for r in responses] == list(range(30))
        segments = collector.wait_for_segments(ctx["name"], 30)

    by_segment = {s.traceSegmentId: s for s in segments}
    assert len(by_segment) == 30 and len({s.traceId for s in segments}) == 30
    for segment in segments:
        entry, *exits = sorted(segment.spans, key=lambda s: s.spanId)
        assert entry.spanType == 0 and [s.spanId for s in exits] == [1, 2]
        assert {s.peer for s in exits} == {"orders", "log"}
        assert all(s.parentSpanId == 0 and s.spanType == 1 for s in exits)
    assert len(fn.sender.sent) == 60
    segment_of_request: dict[int, set[str]] = {}
    for message in fn.sender.sent:
        trace_id, segment_id, span_id, peer = sw8_fields(message.metadata["sw8"])
        segment = by_segment[segment_id]
        assert segment.traceId == trace_id
        (exit_span,) = [s for s in segment.spans if s.spanId == span_id]
        assert exit_span.peer == peer == message.output.target
        request = json.loads(message.data)["n"]
        segment_of_request.setdefault(request, set()).add(segment_id)
    # both sends of a request carry that request's segment, and no other request's
    assert sorted(segment_of_request) == list(range(30))
    assert all(len(ids) == 1 for ids in segment_of_request.values())
    assert len(set().union(*segment_of_request.values())) == 30


TRACE_ID_SOURCE = """
import asyncio, time

def sync_handler(ctx, data):
    time.sleep(0.005)
    return ctx.invocation.plugins.value("skywalking", "trace_id")

async def async_handler(ctx, data):
    await asyncio.sleep(0.005)
    return ctx.invocation.plugins.value("skywalking", "trace_id")
"""


@pytest.mark.parametrize("target", ["sync_handler", "async_handler"])
def test_get_trace_id_answers_for_the_calling_invocation(make_function, target):
    """One plugin instance serves all invocations; `get` reads the caller's own segment."""
    with skywalking_collector() as collector:
        ctx = {"name": f"ids-{target[:4]}", "version": "v1", "runtime": "Knative",
               "pluginsTracing": {"enabled": True, "provider": {
                   "name": "skywalking", "oapServer": collector.address}}}
        fn = make_function(TRACE_ID_SOURCE, target, ctx)
        assert "skywalking" in fn.runner.pipeline.shared

        async def burst():
            transport = httpx.ASGITransport(app=fn.client.app)
            async with httpx.AsyncClient(transport=transport, base_url="http://fn") as client:
                return await asyncio.gather(*(client.post("/", json=i) for i in range(20)))

        answered = {r.text for r in fn.client.portal.call(burst)}
        segments = collector.wait_for_segments(ctx["name"], 20)
    assert answered == {s.traceId for s in segments} and len(answered) == 20
