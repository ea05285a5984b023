"""Reporting the function's trace segments to the OAP server, in batches.

A function's segment is always the same shape: one entry span and an exit span per send,
most tags the same on every invocation. So an invocation only appends what its segment is
made from to a bounded in-memory queue; `SegmentReporter`'s thread reports what has
gathered every `REPORT_INTERVAL` seconds, or as soon as `MAX_BATCH` segments wait. It
encodes them by hand in the protocol's wire format (`SegmentObject` of skywalking/v3
Tracing.proto, everything constant encoded once at start-up, the per-endpoint tags once per
endpoint) and sends them with `TraceSegmentReportService/collectInSync`: one RPC per batch
of at most `MAX_BATCH` segments. The RPC goes over the agent's own gRPC channel (TLS and
authentication as the agent is configured); the agent keeps the instance registration and
heartbeats.

Nothing here ever blocks an invocation: a full queue drops the segment (counted and
logged), a failing collector costs the batch in flight and the reporter backs off.
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Sequence

logger = logging.getLogger("openfunction.tracing")

MAX_BATCH = 2000
ENCODE_CHUNK = 100
REPORT_INTERVAL = 1.0
WAKE_INTERVAL = 0.1
REPORT_TIMEOUT = 10.0
MAX_BACKOFF = 30.0
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

    def __init__(self, trace_id: str, segment_id: str, start: int,
                 tags: tuple[tuple[str, str], ...], ref: Ref | None = None,
                 correlation: dict[str, str] | None = None, end: int = 0,
                 error: list[tuple[str, str]] | None = None, error_time: int = 0,
                 exits: list[tuple[int, int, int, str]] | None = None) -> None:
        self.trace_id = trace_id
        self.segment_id = segment_id
        self.start = start
        self.tags = tags
        """The entry span's tags that depend on the invocation (the rest are constant)."""
        self.ref = ref
        self.correlation = correlation
        self.end = end
        self.error = error
        self.error_time = error_time
        self.exits = exits
        """(span id, start, end, peer) of each exit span, or None before the first."""

    def next_span_id(self) -> int:
        return len(self.exits) + 1 if self.exits else 1


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
        self._tags: dict[tuple[tuple[str, str], ...], bytes] = {}
        self._starts: dict[int, bytes] = {}
        self._ends: dict[int, bytes] = {}

    def times(self, start: int, end: int) -> tuple[bytes, bytes]:
        """`SpanObject.startTime` and `endTime` fields (invocations share milliseconds)."""
        starts, ends = self._starts, self._ends
        if len(starts) >= _CACHE_SIZE:
            starts.clear()
            ends.clear()
        started = starts.get(start)
        if started is None:
            started = starts[start] = _START + _varint(start)
        ended = ends.get(end)
        if ended is None:
            ended = ends[end] = _END + _varint(end)
        return started, ended

    def segment(self, record: SegmentRecord) -> bytes:
        start, end = self.times(record.start, record.end)
        tags = self._tags.get(record.tags)
        if tags is None:
            if len(self._tags) >= _CACHE_SIZE:
                self._tags.clear()
            tags = self._tags[record.tags] = b"".join(_tag(k, v) for k, v in record.tags)
        entry = [self._entry, start, end, tags]
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
        trace_id, segment_id = record.trace_id.encode(), record.segment_id.encode()
        parts = [_TRACE_ID, _varint(len(trace_id)), trace_id,
                 _SEGMENT_ID, _varint(len(segment_id)), segment_id,
                 _SPAN, _varint(len(body)), body]
        for span_id, started, ended, peer in record.exits or ():
            body = b"".join((self._exit, _uint(1, span_id), _START, _varint(started), _END,
                             _varint(ended), _string(7, peer)))
            parts += (_SPAN, _varint(len(body)), body)
        parts.append(self._tail)
        return b"".join(parts)

    def plain_template(self, trace_prefix: bytes, segment_prefix: bytes,
                       tags: tuple[tuple[str, str], ...], times_length: int) -> bytes:
        """A `SegmentCollection.segments` field for a segment of one entry span with `tags`
        and no caller, error or exit span (most of them), as a template to fill with
        `% (seq, seq, started, ended)`: the ids are the prefixes followed by the segment's
        number in 16 hex digits, `started` and `ended` come from `times` (`times_length`
        bytes together)."""
        def literal(data: bytes) -> bytes:
            return data.replace(b"%", b"%%")

        entry_span = self._entry + b"".join(_tag(k, v) for k, v in tags)
        span_length = times_length + len(entry_span)
        trace_length, segment_length = len(trace_prefix) + 16, len(segment_prefix) + 16
        parts = [
            (_TRACE_ID + _varint(trace_length), trace_prefix, 16),
            (_SEGMENT_ID + _varint(segment_length), segment_prefix, 16),
            (_SPAN + _varint(span_length), b"", times_length),
            (entry_span + self._tail, b"", 0),
        ]
        length = sum(len(head) + len(prefix) + size for head, prefix, size in parts)
        return b"".join((
            _SEGMENT, _varint(length),
            literal(parts[0][0] + trace_prefix), b"%016x",
            literal(parts[1][0] + segment_prefix), b"%016x",
            literal(parts[2][0]), b"%b%b",
            literal(parts[3][0]),
        ))

    def entry(self, segment: bytes) -> bytes:
        """`segment` (an encoded `SegmentObject`) as a `SegmentCollection.segments` field."""
        return _SEGMENT + _varint(len(segment)) + segment

    def collection(self, segments: Iterable[bytes]) -> bytes:
        """A `SegmentCollection` of encoded segments."""
        return b"".join(self.entry(segment) for segment in segments)


Send = Callable[[bytes], Any]
Encode = Callable[[Any], bytes]


class SegmentReporter:
    """The queue of finished segments and the thread that reports them in batches."""

    def __init__(self, encoder: SegmentEncoder, max_pending: int, address: str,
                 encode: Encode | None = None) -> None:
        self.encoder = encoder
        self.encode: Encode = encode or (lambda record: encoder.entry(encoder.segment(record)))
        """Encodes one queued item as a `SegmentCollection.segments` field (on this thread);
        by default the item is a `SegmentRecord`."""
        self.max_pending = max_pending
        self.address = address
        self.sender: Send | None = None
        """Sends one encoded `SegmentCollection`; set once the agent's channel exists."""
        self.dropped = 0
        self.reported = 0
        self.pending: collections.deque[Any] = collections.deque()
        """Finished segments waiting to be reported (appended to by `submit`, or directly
        by a caller that checks `max_pending` itself)."""
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._failing = False
        self._warned_full = 0.0

    def submit(self, record: Any) -> None:
        """Queue a finished segment (never blocks; drops it when the queue is full)."""
        if len(self.pending) < self.max_pending:
            self.pending.append(record)
        else:
            self._drop(1)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="openfunction-skywalking",
                                        daemon=True)
        self._thread.start()

    def stop(self, timeout: float) -> bool:
        """Stop the thread and report what is queued; False when that took too long."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            return not self._thread.is_alive()
        return True

    def _run(self) -> None:
        backoff = 0.0
        last = time.monotonic()
        while not self._stop.wait(backoff or WAKE_INTERVAL):
            now = time.monotonic()
            if backoff or len(self.pending) >= MAX_BATCH or now - last >= REPORT_INTERVAL:
                last = now
                backoff = 0.0 if self.flush() else min(MAX_BACKOFF, max(0.5, backoff * 2))
        self.flush()  # what the last invocations left

    def flush(self) -> bool:
        """Report everything queued now, in batches; False when the collector failed."""
        pending, send = self.pending, self.sender
        if send is None:
            return True
        while pending:
            count = min(len(pending), MAX_BATCH)
            segments = self._encoded([pending.popleft() for _ in range(count)])
            count = len(segments)
            if not count:
                continue
            try:
                send(b"".join(segments))
            except Exception as exc:  # noqa: BLE001 - the collector's trouble, never the function's
                self._drop(count, exc)
                return False
            self.reported += count
            if self._failing:
                self._failing = False
                logger.info("SkyWalking: reporting to %s again", self.address)
        return True

    def _encoded(self, items: list[Any]) -> list[bytes]:
        """`items` encoded, `ENCODE_CHUNK` at a time, letting the event loop's thread have
        the GIL between chunks (a batch holds it for milliseconds otherwise)."""
        segments: list[bytes] = []
        for start in range(0, len(items), ENCODE_CHUNK):
            if start:
                time.sleep(0)
            segments += self._encode_chunk(items[start:start + ENCODE_CHUNK])
        return segments

    def _encode_chunk(self, items: list[Any]) -> list[bytes]:
        encode = self.encode
        try:
            return [encode(item) for item in items]
        except Exception:  # noqa: BLE001 - one bad segment must not cost the others
            segments = []
            for item in items:
                try:
                    segments.append(encode(item))
                except Exception:  # noqa: BLE001
                    self.dropped += 1
                    logger.exception("SkyWalking: a segment could not be encoded and was dropped")
            return segments

    def _drop(self, count: int, error: BaseException | None = None) -> None:
        self.dropped += count
        if error is not None:
            if not self._failing:
                self._failing = True
                logger.warning(
                    "SkyWalking: could not report %d segment(s) to %s (%s); retrying with "
                    "backoff, segments are dropped meanwhile", count, self.address,
                    _describe(error))
            return
        now = time.monotonic()
        if now - self._warned_full > 60:
            self._warned_full = now
            logger.warning(
                "SkyWalking: %d segments waiting to be reported; new ones are dropped "
                "(SW_AGENT_TRACE_REPORTER_MAX_BUFFER_SIZE)", self.max_pending)


def _describe(error: BaseException) -> str:
    """One line for a failed report: the gRPC status and details, else the exception."""
    code = getattr(error, "code", None)
    if callable(code):
        return f"{code().name}: {error.details()}"  # type: ignore[attr-defined]
    return f"{type(error).__name__}: {error}"


def channel_protocol(base: type, reporter: SegmentReporter) -> type:
    """A subclass of the agent's `GrpcProtocol` that hands its channel to `reporter`."""
    from skywalking.protocol.common.Command_pb2 import Commands

    class ChannelSharingGrpcProtocol(base):  # type: ignore[misc, valid-type]
        shares_channel = True

        def __init__(self) -> None:
            super().__init__()
            collect = self.channel.unary_unary(
                COLLECT_IN_SYNC, request_serializer=None,
                response_deserializer=Commands.FromString,
            )
            ChannelSharingGrpcProtocol.reporter.sender = (
                lambda batch: collect(batch, timeout=REPORT_TIMEOUT))

        def report_segment(self, queue: Any, block: bool = True) -> None:
            """The agent's own segment queue stays empty: `SegmentReporter` reports them."""
            return None

    ChannelSharingGrpcProtocol.reporter = reporter
    return ChannelSharingGrpcProtocol


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
_TRACE_ID = _varint(1 << 3 | _LENGTH)  # SegmentObject.traceId
_SEGMENT_ID = _varint(2 << 3 | _LENGTH)  # SegmentObject.traceSegmentId
_SPAN = _varint(3 << 3 | _LENGTH)  # SegmentObject.spans
_SEGMENT = _varint(1 << 3 | _LENGTH)  # SegmentCollection.segments
_CACHE_SIZE = 4096


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
