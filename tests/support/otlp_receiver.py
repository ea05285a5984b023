"""An OTLP/gRPC trace receiver for tests, built from the `opentelemetry-proto` stubs.

It implements `TraceService/Export` on 127.0.0.1 and keeps every span it receives, with the
resource attributes of its batch, so a test can check what the SDK's exporter really sent.
"""

from __future__ import annotations

import threading
import time
from concurrent import futures
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Iterator

import grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc


@dataclass
class ReceivedSpan:
    resource: dict[str, Any]
    span: Any  # opentelemetry.proto.trace.v1.trace_pb2.Span

    @property
    def name(self) -> str:
        return self.span.name

    @property
    def trace_id(self) -> str:
        return self.span.trace_id.hex()

    @property
    def span_id(self) -> str:
        return self.span.span_id.hex()

    @property
    def parent_span_id(self) -> str:
        return self.span.parent_span_id.hex()

    @property
    def attributes(self) -> dict[str, Any]:
        return attributes(self.span.attributes)


def attributes(pairs: Any) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for kv in pairs:
        value = kv.value
        kind = value.WhichOneof("value")
        result[kv.key] = getattr(value, kind) if kind else None
    return result


class OTLPReceiver(trace_service_pb2_grpc.TraceServiceServicer):
    def __init__(self) -> None:
        self.spans: list[ReceivedSpan] = []
        self.requests = 0
        self.metadata: list[dict[str, str]] = []
        """The gRPC metadata (headers) of each request."""
        self._changed = threading.Condition()
        self._server: grpc.Server | None = None
        self.port = 0

    @property
    def endpoint(self) -> str:
        return f"127.0.0.1:{self.port}"

    def Export(self, request, context):  # type: ignore[no-untyped-def]  # noqa: N802
        with self._changed:
            self.requests += 1
            self.metadata.append(dict(context.invocation_metadata()))
            for resource_spans in request.resource_spans:
                resource = attributes(resource_spans.resource.attributes)
                for scope_spans in resource_spans.scope_spans:
                    for span in scope_spans.spans:
                        self.spans.append(ReceivedSpan(resource, span))
            self._changed.notify_all()
        return trace_service_pb2.ExportTraceServiceResponse()

    def start(self) -> None:
        server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        trace_service_pb2_grpc.add_TraceServiceServicer_to_server(self, server)
        self.port = server.add_insecure_port("127.0.0.1:0")
        server.start()
        self._server = server

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop(grace=1).wait(5)
            self._server = None

    def wait_for_spans(self, count: int, timeout: float = 15.0) -> list[ReceivedSpan]:
        deadline = time.monotonic() + timeout
        with self._changed:
            while len(self.spans) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(
                        f"the OTLP receiver got {len(self.spans)} span(s), not {count}, "
                        f"within {timeout}s: {[s.name for s in self.spans]}"
                    )
                self._changed.wait(left)
            return list(self.spans)


@contextmanager
def otlp_receiver() -> Iterator[OTLPReceiver]:
    receiver = OTLPReceiver()
    receiver.start()
    try:
        yield receiver
    finally:
        receiver.stop()
