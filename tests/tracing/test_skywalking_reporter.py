"""The segment queue and its reporter thread (without a collector: a recording sender)."""

from __future__ import annotations

import logging

from skywalking.protocol.language_agent.Tracing_pb2 import SegmentCollection

from openfunction.tracing import skywalking_report
from openfunction.tracing.skywalking_report import SegmentEncoder, SegmentRecord, SegmentReporter


def record(n: int) -> SegmentRecord:
    return SegmentRecord(f"t{n}", f"s{n}", start=n, tags=(("runtime", "Knative"),), end=n + 1)


def reporter(max_pending: int = 100) -> SegmentReporter:
    encoder = SegmentEncoder("fn", "fn-0", "fn", 5013, [("layer", "faas")])
    return SegmentReporter(encoder, max_pending, "oap:11800")


def test_batches_are_encoded_segment_collections(monkeypatch):
    monkeypatch.setattr(skywalking_report, "MAX_BATCH", 3)
    sent: list[bytes] = []
    rep = reporter()
    rep.sender = sent.append
    for n in range(7):
        rep.submit(record(n))
    assert rep.flush()
    batches = [SegmentCollection.FromString(b).segments for b in sent]
    assert [len(b) for b in batches] == [3, 3, 1]
    assert [s.traceId for b in batches for s in b] == [f"t{n}" for n in range(7)]
    assert rep.reported == 7 and rep.dropped == 0


def test_a_full_queue_drops_new_segments_and_says_so(caplog):
    rep = reporter(max_pending=2)
    with caplog.at_level(logging.WARNING, logger="openfunction.tracing"):
        for n in range(5):
            rep.submit(record(n))
    assert len(rep.pending) == 2 and rep.dropped == 3
    assert "SW_AGENT_TRACE_REPORTER_MAX_BUFFER_SIZE" in caplog.text


def test_a_failing_collector_costs_the_batch_and_is_logged_once(caplog):
    rep = reporter()
    calls = []

    def failing(batch: bytes) -> None:
        calls.append(batch)
        raise ConnectionError("collector down")

    rep.sender = failing
    with caplog.at_level(logging.INFO, logger="openfunction.tracing"):
        for attempt in range(3):
            rep.submit(record(attempt))
            assert not rep.flush()
        rep.sender = lambda batch: None
        rep.submit(record(9))
        assert rep.flush()
    assert rep.dropped == 3 and rep.reported == 1
    assert caplog.text.count("could not report") == 1
    assert "reporting to oap:11800 again" in caplog.text


def test_stop_reports_what_is_queued():
    sent: list[bytes] = []
    rep = reporter()
    rep.sender = sent.append
    rep.start()
    rep.submit(record(1))
    rep.submit(record(2))
    assert rep.stop(5.0)
    assert sum(len(SegmentCollection.FromString(b).segments) for b in sent) == 2
