"""The hand-made wire encoding of segments, read back with the agent's protocol stubs."""

from __future__ import annotations

from skywalking.protocol.language_agent.Tracing_pb2 import SegmentCollection

from openfunction.tracing.skywalking_report import Ref, SegmentEncoder, SegmentRecord


def test_segments_read_back_as_the_protocol_defines_them():
    encoder = SegmentEncoder("fn", "fn-0", "fn", 5013, [("layer", "faas"), ("func", "fn")])
    plain = SegmentRecord("t1", "s1", start=1795373970208, end=1795373970210,
                          tags=(("runtime", "Knative"), ("url", "h/é" * 50)))
    rich = SegmentRecord(
        "t2", "s2", start=1, end=2, tags=(("runtime", "Async"),),
        ref=Ref("up-trace", "up-seg", 3, "up", "up-0", "/buy", "fn:8080"),
        error=[("event", "error"), ("message", "boom")], error_time=2,
        exits=[(1, 1, 1, "topic-a"), (2, 2, 2, "topic-b")],
    )
    (one, two) = SegmentCollection.FromString(encoder.collection([encoder.segment(plain), encoder.segment(rich)])).segments

    assert (one.traceId, one.traceSegmentId, one.service, one.serviceInstance) == (
        "t1", "s1", "fn", "fn-0")
    (entry,) = one.spans
    assert (entry.spanId, entry.parentSpanId, entry.spanType, entry.spanLayer) == (0, -1, 0, 6)
    assert (entry.startTime, entry.endTime, entry.operationName, entry.componentId) == (
        1795373970208, 1795373970210, "fn", 5013)
    assert [(t.key, t.value) for t in entry.tags] == [
        ("layer", "faas"), ("func", "fn"), ("runtime", "Knative"), ("url", "h/é" * 50)]
    assert not entry.isError and not entry.refs and not entry.logs

    entry, first, second = two.spans
    (ref,) = entry.refs
    assert (ref.refType, ref.traceId, ref.parentTraceSegmentId, ref.parentSpanId,
            ref.parentService, ref.parentServiceInstance, ref.parentEndpoint,
            ref.networkAddressUsedAtPeer) == (0, "up-trace", "up-seg", 3, "up", "up-0", "/buy",
                                              "fn:8080")
    assert entry.isError
    (log,) = entry.logs
    assert log.time == 2 and [(d.key, d.value) for d in log.data] == [
        ("event", "error"), ("message", "boom")]
    for span, number, peer in ((first, 1, "topic-a"), (second, 2, "topic-b")):
        assert (span.spanId, span.parentSpanId, span.spanType, span.peer) == (number, 0, 1, peer)
        assert (span.spanLayer, span.componentId, span.operationName) == (6, 5013, "fn")
        assert not span.tags


def plain(encoder: SegmentEncoder, seq: int, start: int, end: int,
          tags: tuple[tuple[str, str], ...]) -> bytes:
    """A plain segment made from the template, as the tracer fills it in."""
    started, ended = encoder.times(start, end)
    template = encoder.plain_template(b"trace%", b"seg-", tags, len(started) + len(ended))
    return template % (seq, seq, started, ended)


def test_a_plain_segment_reads_back_as_the_same_segment_made_from_a_record():
    encoder = SegmentEncoder("fn", "fn-0", "fn", 5013, [("layer", "faas"), ("50%", "off")])
    tags = (("http.method", "GET"), ("url", "fn:8080/a%20b"), ("runtime", "Knative"))
    record = SegmentRecord(f"trace%{7:016x}", f"seg-{7:016x}", start=1795373970208,
                           end=1795373970210, tags=tags)
    (one, two) = SegmentCollection.FromString(
        encoder.collection([encoder.segment(record)])
        + plain(encoder, 7, 1795373970208, 1795373970210, tags)).segments
    assert one == two and two.traceSegmentId == f"seg-{7:016x}"


def test_a_span_that_starts_and_ends_in_the_same_millisecond_keeps_both_times():
    encoder = SegmentEncoder("fn", "fn-0", "fn", 5013, [])
    tags = (("runtime", "Knative"),)
    ms = 1795373970208
    for encoded in (encoder.entry(encoder.segment(SegmentRecord("t", "s", start=ms, end=ms, tags=tags))),
                    plain(encoder, 1, ms, ms, tags),
                    encoder.entry(encoder.segment(SegmentRecord("t", "s", start=ms - 1, end=ms, tags=tags)))):
        (segment,) = SegmentCollection.FromString(encoded).segments
        assert segment.spans[0].endTime == ms and segment.spans[0].startTime in (ms, ms - 1)
