"""Reporting the function's trace segments through the SkyWalking agent, in batches.

A function's segment is always the same shape: one entry span and an exit span per send,
most tags the same on every invocation. So the segments are kept as small records and
encoded by hand in the protocol's wire format (`SegmentObject` of skywalking/v3
Tracing.proto), with everything constant encoded once at start-up. The agent's reporter
thread sends them in batches with `TraceSegmentReportService/collectInSync`: one RPC per
batch (the segments of `BATCH_WINDOW` seconds, at most `MAX_BATCH` an RPC) instead of one
streamed message per segment. That is what keeps tracing cheap enough for a small
function; the agent still owns the queue, the thread, the channel, retries and
shutdown flushing.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from queue import Queue
from typing import Any, Iterable, Sequence

MAX_BATCH = 500
BATCH_WINDOW = 0.1
REPORT_TIMEOUT = 10.0
COLLECT_IN_SYNC = "/skywalking.v3.TraceSegmentReportService/collectInSync"

EXIT = 1  # SpanType (Entry = 0, the default, is left out as proto3 does)
FAAS = 6  # SpanLayer

_VARINT, _LENGTH = 0, 2
_MASK64 = (1 << 64) - 1


@dataclass(frozen=True)
class Ref:
    """The caller's span, from the `sw8` it sent."""

    trace_id: str
    segment_id: str
    span_id: int
    service: str
    instance: str
    endpoint: str
    peer: str


class SegmentRecord:
    """One invocation's segment while it is being made and until it is reported."""

    __slots__ = ("trace_id", "segment_id", "start", "tags", "ref", "correlation", "end",
                 "error", "error_time", "exits")

    def __init__(self, trace_id: str, segment_id: str, start: int, tags: list[tuple[str, str]],
                 ref: Ref | None = None, correlation: dict[str, str] | None = None, end: int = 0,
                 error: list[tuple[str, str]] | None = None, error_time: int = 0,
                 exits: list[tuple[int, int, int, str]] | None = None) -> None:
        self.trace_id = trace_id
        self.segment_id = segment_id
        self.start = start
        self.tags = tags
        self.ref = ref
        self.correlation = correlation if correlation is not None else {}
        self.end = end
        self.error = error
        self.error_time = error_time
        self.exits = exits if exits is not None else []
        """(span id, start, end, peer) of each exit span."""

    def next_span_id(self) -> int:
        return len(self.exits) + 1


def now_ms() -> int:
    return int(time.time() * 1000)


class SegmentEncoder:
    """Encodes records into `SegmentObject` / `SegmentCollection` bytes."""

    def __init__(self, service: str, instance: str, operation: str, component: int,
                 static_tags: Sequence[tuple[str, str]]) -> None:
        common = _string(6, operation) + _uint(9, FAAS) + _uint(10, component)
        self._entry = common + _uint(2, -1) + b"".join(_tag(k, v) for k, v in static_tags)
        self._exit = common + _uint(8, EXIT)
        self._tail = _string(4, service) + _string(5, instance)
        self._tags: dict[tuple[str, str], bytes] = {}

    def segment(self, record: SegmentRecord) -> bytes:
        tags = self._tags
        entry = [self._entry, _START, _varint(record.start), _END, _varint(record.end)]
        for pair in record.tags:
            encoded = tags.get(pair)
            if encoded is None:
                if len(tags) >= _TAG_CACHE_SIZE:
                    tags.clear()
                encoded = tags[pair] = _tag(*pair)
            entry.append(encoded)
        ref = record.ref
        if ref is not None:
            entry.append(_message(5, b"".join((
                _string(2, ref.trace_id), _string(3, ref.segment_id), _uint(4, ref.span_id),
                _string(5, ref.service), _string(6, ref.instance), _string(7, ref.endpoint),
                _string(8, ref.peer),
            ))))
        if record.error is not None:
            entry.append(_uint(11, 1))
            entry.append(_message(13, _uint(1, record.error_time) + b"".join(
                _message(2, _pair(k, v)) for k, v in record.error)))
        body = b"".join(entry)
        parts = [_string(1, record.trace_id), _string(2, record.segment_id),
                 _SPAN, _varint(len(body)), body]
        for span_id, start, end, peer in record.exits:
            body = b"".join((self._exit, _uint(1, span_id), _START, _varint(start), _END,
                             _varint(end), _string(7, peer)))
            parts += (_SPAN, _varint(len(body)), body)
        parts.append(self._tail)
        return b"".join(parts)

    def collection(self, records: Iterable[SegmentRecord]) -> bytes:
        parts: list[bytes] = []
        segment = self.segment
        for record in records:
            encoded = segment(record)
            parts += (_SEGMENT, _varint(len(encoded)), encoded)
        return b"".join(parts)

def batching_protocol(base: type, encoder: SegmentEncoder) -> type:
    """A subclass of the agent's `GrpcProtocol` that reports `SegmentRecord`s in batches."""
    import grpc
    from skywalking.protocol.common.Command_pb2 import Commands

    class BatchingGrpcProtocol(base):  # type: ignore[misc, valid-type]
        reports_records = True
        segment_encoder = encoder

        def __init__(self) -> None:
            super().__init__()
            self._collect = self.channel.unary_unary(
                COLLECT_IN_SYNC, request_serializer=None,
                response_deserializer=Commands.FromString,
            )

        def report_segment(self, queue: Queue, block: bool = True) -> None:
            if block:
                # Let a batch gather. (Sleeping rather than waiting on the queue: a reporter
                # blocked in `queue.get` would be woken by every invocation's segment, and
                # each wake-up costs the function the GIL.)
                time.sleep(BATCH_WINDOW)
            while True:
                records = _take(queue)
                if not records:
                    return
                try:
                    self._collect(self.segment_encoder.collection(records),
                                  timeout=REPORT_TIMEOUT)
                except grpc.RpcError:
                    self.on_error()
                    raise
                if len(records) < MAX_BATCH:
                    return

    return BatchingGrpcProtocol


def _take(queue: Queue) -> list[Any]:
    """Up to MAX_BATCH of the queued records, taken under one acquisition of the queue's lock
    (one `get_nowait` and `task_done` per record would cost more than encoding it)."""
    with queue.mutex:
        items = queue.queue
        count = min(len(items), MAX_BATCH)
        records = [items.popleft() for _ in range(count)]
        if count:
            queue.not_full.notify_all()
            queue.unfinished_tasks -= count
            if queue.unfinished_tasks <= 0:
                queue.unfinished_tasks = 0
                queue.all_tasks_done.notify_all()
    return records


# Protocol Buffers wire format: just what these messages need.

def _varint(value: int) -> bytes:
    if 0 <= value < 0x80:
        return _SMALL[value]
    value &= _MASK64
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


_SMALL = [bytes((i,)) for i in range(0x80)]
_START = _varint(3 << 3 | _VARINT)  # SpanObject.startTime
_END = _varint(4 << 3 | _VARINT)  # SpanObject.endTime
_SPAN = _varint(3 << 3 | _LENGTH)  # SegmentObject.spans
_SEGMENT = _varint(1 << 3 | _LENGTH)  # SegmentCollection.segments
_TAG_CACHE_SIZE = 4096


def _uint(number: int, value: int) -> bytes:
    if not value:
        return b""
    return _varint(number << 3 | _VARINT) + _varint(value)


def _string(number: int, text: str) -> bytes:
    if not text:
        return b""
    return _message(number, text.encode())


def _message(number: int, body: bytes) -> bytes:
    return _varint(number << 3 | _LENGTH) + _varint(len(body)) + body


def _pair(key: str, value: str) -> bytes:
    return _string(1, key) + _string(2, value)


def _tag(key: str, value: str) -> bytes:
    """A `KeyStringValuePair` in `SpanObject.tags`."""
    return _message(12, _pair(key, value))
