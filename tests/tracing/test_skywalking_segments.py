"""How the tracer turns an invocation into its segment: made on the reporter thread from what
the invocation left, the same whichever way it is encoded."""

from __future__ import annotations

import json
import os
import time

import pytest

from skywalking.protocol.language_agent.Tracing_pb2 import SegmentCollection, SegmentObject

from openfunction.config import FunctionConfig, parse_function_context
from openfunction.invocation import BINDING, HTTP, Invocation
from openfunction.request import Request
from openfunction.tracing.common import TraceSettings
from openfunction.tracing.skywalking import Capture, SkyWalkingTracer

CONTEXT = {"name": "fn", "version": "v1", "runtime": "Knative",
           "pluginsTracing": {"enabled": True, "tags": {"team": "a"},
                              "provider": {"name": "skywalking", "oapServer": "oap:11800"}}}


CONFIG = parse_function_context(json.dumps(CONTEXT), {"CONTEXT_MODE": "self-host"})


def tracer() -> SkyWalkingTracer:
    sw = SkyWalkingTracer(TraceSettings.from_config(CONFIG), "oap:11800", os.environ)
    sw._started = True  # no agent: these tests never report
    return sw


async def _receive() -> dict:
    return {"type": "http.request", "body": b""}


def http_invocation(config: FunctionConfig, *headers: tuple[bytes, bytes]) -> Invocation:
    scope = {"type": "http", "method": "POST", "path": "/orders", "server": ("10.0.0.1", 8080),
             "headers": [(b"host", b"fn.default:8080"), *headers]}
    invocation = Invocation(config, HTTP, request=Request(scope, _receive))
    invocation.status_code = 200
    return invocation


def reported(sw: SkyWalkingTracer) -> list[SegmentObject]:
    """What the reporter thread would send of the queued segments."""
    entries = b"".join(sw.encode(item) for item in sw.reporter.pending)
    sw.reporter.pending.clear()
    return list(SegmentCollection.FromString(entries).segments)


def finished_both_ways(sw: SkyWalkingTracer, invocation: Invocation
                       ) -> tuple[SegmentObject, SegmentObject]:
    """The segment of `invocation` as queued by `leave` (a plain tuple), and made through
    a `SegmentRecord` as the rich path does."""
    sw.enter(invocation)
    invocation.ended_at = time.time()
    sw.leave(invocation)
    (item,) = sw.reporter.pending
    assert type(item) is tuple
    seq, start, end, scope, carrier, trigger, failure = item
    capture = Capture(seq, start, scope, carrier, trigger)
    capture.end = end
    slow = SegmentObject.FromString(sw._encoder.segment(sw.finished(capture)))
    (fast,) = reported(sw)
    return fast, slow


def test_a_plain_http_invocation_is_encoded_as_its_record_would_be():
    sw = tracer()
    fast, slow = finished_both_ways(sw, http_invocation(CONFIG))
    assert fast == slow
    (entry,) = fast.spans
    tags = dict((t.key, t.value) for t in entry.tags)
    assert tags["url"] == "fn.default:8080/orders" and tags["http.method"] == "POST"
    assert tags["team"] == "a" and tags["runtime"] == "Knative"
    assert entry.endTime >= entry.startTime > 0 and not entry.refs


def test_a_dapr_event_is_encoded_as_its_record_would_be():
    sw = tracer()
    invocation = Invocation(CONFIG, BINDING, data=b"{}")
    fast, slow = finished_both_ways(sw, invocation)
    assert fast == slow
    (entry,) = fast.spans
    assert ("component.type", "bindings") in [(t.key, t.value) for t in entry.tags]


def test_ids_made_during_the_invocation_are_the_ones_reported():
    sw = tracer()
    invocation = http_invocation(CONFIG)
    sw.enter(invocation)
    capture = sw.capture(invocation)  # what `get("trace_id")` or a send does
    assert capture is not None and sw.capture(invocation) is capture
    record = sw.record(capture)
    sw.leave(invocation)
    (segment,) = reported(sw)
    assert (segment.traceId, segment.traceSegmentId) == (record.trace_id, record.segment_id)
    other = http_invocation(CONFIG)
    sw.enter(other)
    sw.leave(other)
    (plain,) = reported(sw)
    assert plain.traceSegmentId != record.segment_id and plain.traceId != record.trace_id


def test_a_callers_sw8_takes_the_slow_path_and_continues_its_trace():
    sw = tracer()
    sw8 = ("1-dXAtdHJhY2U=-dXAtc2VnbWVudA==-3-dXA=-dXAtMA==-L2J1eQ==-Zm46ODA4MA==")
    invocation = http_invocation(CONFIG, (b"sw8", sw8.encode()))
    sw.enter(invocation)
    sw.leave(invocation)
    (segment,) = reported(sw)
    assert segment.traceId == "up-trace"
    (ref,) = segment.spans[0].refs
    assert (ref.parentTraceSegmentId, ref.parentSpanId) == ("up-segment", 3)


UP_SW8 = "1-dXAtdHJhY2U=-dXAtc2VnbWVudA==-3-dXA=-dXAtMA==-L2J1eQ==-Zm46ODA4MA=="


@pytest.mark.parametrize("headers, continued", [
    ([(b"sw8", UP_SW8[:-1].encode())], False),  # base64 padding missing
    ([(b"sw8", UP_SW8.replace("-3-", "-\u00b2-").encode())], False),  # span id not a number
    ([(b"sw8", UP_SW8.encode()), (b"sw8-correlation", b"a2V5:!!!")], True),
])
def test_a_malformed_caller_context_never_fails_the_invocation(headers, continued, caplog):
    sw = tracer()
    invocation = http_invocation(CONFIG, *headers)
    sw.enter(invocation)
    sw.leave(invocation)
    (segment,) = reported(sw)
    assert (segment.traceId == "up-trace") is continued
    assert bool(segment.spans[0].refs) is continued
    assert "Traceback" not in caplog.text


def test_a_failed_invocation_is_an_error_span():
    sw = tracer()
    invocation = http_invocation(CONFIG)
    sw.enter(invocation)
    invocation.error, invocation.status_code = ValueError("bad order"), 500
    sw.leave(invocation)
    (segment,) = reported(sw)
    (entry,) = segment.spans
    assert entry.isError
    assert [(d.key, d.value) for d in entry.logs[0].data] == [
        ("event", "error"), ("error.kind", "ValueError"), ("message", "ValueError: bad order")]


def test_a_full_queue_drops_the_segment_and_counts_it():
    sw = tracer()
    sw._max_pending = sw.reporter.max_pending = 1
    for _ in range(3):
        invocation = http_invocation(CONFIG)
        sw.enter(invocation)
        sw.leave(invocation)
    assert len(sw.reporter.pending) == 1 and sw.reporter.dropped == 2
