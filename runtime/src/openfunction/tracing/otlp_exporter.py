"""The OTLP/gRPC span exporter the `opentelemetry` plugin makes: the SDK's, with our encoding.

`OTLPSpanExporter` of `opentelemetry-exporter-otlp-proto-grpc` keeps everything it does -
endpoint, TLS and `OTEL_EXPORTER_OTLP_*` settings, headers, compression, timeouts, retries
with back-off, reconnection - except how a batch becomes bytes: here `SpanEncoder` writes
the request, and the gRPC method sends those bytes as they are.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse
from opentelemetry.sdk.trace import ReadableSpan

from openfunction.tracing.otlp_encoding import SpanEncoder

logger = logging.getLogger("openfunction.tracing")

EXPORT_METHOD = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"


class _BytesTraceStub:
    """The trace service's Export method, taking the request already serialised."""

    def __init__(self, channel: Any) -> None:
        self.Export = channel.unary_unary(
            EXPORT_METHOD,
            request_serializer=bytes,  # the request is already bytes: passed through
            response_deserializer=ExportTraceServiceResponse.FromString,
        )


class FastOTLPSpanExporter(OTLPSpanExporter):
    """`OTLPSpanExporter`, encoding batches with `SpanEncoder`."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._encoder = SpanEncoder()
        super().__init__(*args, **kwargs)
        self._use_bytes_stub()
        if not isinstance(getattr(self, "_client", None), _BytesTraceStub):
            raise TypeError("this version of the OTLP exporter keeps its gRPC stub elsewhere")

    def _initialize_channel_and_stub(self) -> None:
        super()._initialize_channel_and_stub()  # type: ignore[misc]
        self._use_bytes_stub()

    def _use_bytes_stub(self) -> None:
        channel = getattr(self, "_channel", None)
        if channel is not None and not isinstance(self._client, _BytesTraceStub):
            self._client = _BytesTraceStub(channel)  # type: ignore[assignment]

    def _translate_data(self, data: Sequence[ReadableSpan]) -> Any:
        return self._encoder.encode_request(data)


def make_grpc_exporter(**options: Any) -> Any:
    """`FastOTLPSpanExporter(**options)`, or the SDK's own exporter where the installed
    version cannot take pre-encoded requests."""
    try:
        return FastOTLPSpanExporter(**options)
    except TypeError as error:
        logger.debug("OpenTelemetry: exporting with the SDK's encoder (%s)", error)
        return OTLPSpanExporter(**options)
