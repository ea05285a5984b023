"""A SkyWalking collector for tests: the OAP server's agent-facing gRPC services on 127.0.0.1.

Built from the protocol stubs the `apache-skywalking` agent ships, so the agent under test
speaks its real reporting protocol to it. It records trace segments, instance properties
and heartbeats; meter, log and configuration-discovery calls are accepted and dropped.
"""

from __future__ import annotations

import threading
import time
from concurrent import futures
from contextlib import contextmanager
from typing import Callable, Iterator

import grpc
from skywalking.protocol.common.Command_pb2 import Commands
from skywalking.protocol.language_agent import (
    ConfigurationDiscoveryService_pb2_grpc as cds_grpc,
    Meter_pb2_grpc as meter_grpc,
    Tracing_pb2_grpc as tracing_grpc,
)
from skywalking.protocol.language_agent.Tracing_pb2 import SegmentObject, SpanObject
from skywalking.protocol.logging import Logging_pb2_grpc as logging_grpc
from skywalking.protocol.management import Management_pb2_grpc as management_grpc
from skywalking.protocol.management.Management_pb2 import InstancePingPkg, InstanceProperties


class SkyWalkingCollector:
    def __init__(self) -> None:
        self.segments: list[SegmentObject] = []
        self.instances: list[InstanceProperties] = []
        self.pings: list[InstancePingPkg] = []
        self._changed = threading.Condition()
        self._server: grpc.Server | None = None
        self.port = 0

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> None:
        server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
        tracing_grpc.add_TraceSegmentReportServiceServicer_to_server(_Segments(self), server)
        management_grpc.add_ManagementServiceServicer_to_server(_Management(self), server)
        meter_grpc.add_MeterReportServiceServicer_to_server(_Meters(), server)
        logging_grpc.add_LogReportServiceServicer_to_server(_Logs(), server)
        cds_grpc.add_ConfigurationDiscoveryServiceServicer_to_server(_Discovery(), server)
        self.port = server.add_insecure_port("127.0.0.1:0")
        server.start()
        self._server = server

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop(grace=1).wait(5)
            self._server = None

    def record(self, kind: str, item: object) -> None:
        with self._changed:
            getattr(self, kind).append(item)
            self._changed.notify_all()

    def clear(self) -> None:
        with self._changed:
            self.segments.clear()
            self.instances.clear()
            self.pings.clear()

    def wait_for(self, what: Callable[["SkyWalkingCollector"], object], timeout: float = 15.0,
                 describe: str = "the expected data") -> object:
        """Wait until `what(self)` is truthy and return it (bounded)."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                result = what(self)
                if result:
                    return result
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(
                        f"the collector did not receive {describe} within {timeout}s; "
                        f"it has {len(self.segments)} segment(s): "
                        f"{[(s.service, [sp.operationName for sp in s.spans]) for s in self.segments]}"
                    )
                self._changed.wait(left)

    def spans(self, service: str | None = None) -> list[tuple[SegmentObject, SpanObject]]:
        return [(seg, span) for seg in list(self.segments) for span in seg.spans
                if service is None or seg.service == service]

    def wait_for_segments(self, service: str, count: int = 1,
                          timeout: float = 15.0) -> list[SegmentObject]:
        def found(c: SkyWalkingCollector) -> list[SegmentObject]:
            segments = [s for s in c.segments if s.service == service]
            return segments if len(segments) >= count else []

        return self.wait_for(found, timeout, f"{count} segment(s) of service {service!r}")  # type: ignore[return-value]


class _Segments(tracing_grpc.TraceSegmentReportServiceServicer):
    def __init__(self, collector: SkyWalkingCollector) -> None:
        self.collector = collector

    def collect(self, request_iterator, context):  # type: ignore[no-untyped-def]
        for segment in request_iterator:
            self.collector.record("segments", segment)
        return Commands()

    def collectInSync(self, request, context):  # type: ignore[no-untyped-def]
        for segment in request.segments:
            self.collector.record("segments", segment)
        return Commands()


class _Management(management_grpc.ManagementServiceServicer):
    def __init__(self, collector: SkyWalkingCollector) -> None:
        self.collector = collector

    def reportInstanceProperties(self, request, context):  # type: ignore[no-untyped-def]
        self.collector.record("instances", request)
        return Commands()

    def keepAlive(self, request, context):  # type: ignore[no-untyped-def]
        self.collector.record("pings", request)
        return Commands()


class _Meters(meter_grpc.MeterReportServiceServicer):
    def collect(self, request_iterator, context):  # type: ignore[no-untyped-def]
        for _ in request_iterator:
            pass
        return Commands()

    def collectBatch(self, request_iterator, context):  # type: ignore[no-untyped-def]
        for _ in request_iterator:
            pass
        return Commands()


class _Logs(logging_grpc.LogReportServiceServicer):
    def collect(self, request_iterator, context):  # type: ignore[no-untyped-def]
        for _ in request_iterator:
            pass
        return Commands()


class _Discovery(cds_grpc.ConfigurationDiscoveryServiceServicer):
    def fetchConfigurations(self, request, context):  # type: ignore[no-untyped-def]
        return Commands()


@contextmanager
def skywalking_collector() -> Iterator[SkyWalkingCollector]:
    collector = SkyWalkingCollector()
    collector.start()
    try:
        yield collector
    finally:
        collector.stop()


def tags(span: SpanObject) -> dict[str, str]:
    return {kv.key: kv.value for kv in span.tags}
