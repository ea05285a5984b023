"""The `opentelemetry` plugin: the spans of the `skywalking` plugin, made with the OpenTelemetry SDK.

Turned on by `pluginsTracing: {enabled: true, provider: {name: opentelemetry, ...}}`. Spans are
exported over OTLP (gRPC by default) to, in this order: `provider.exporter.endpoint`,
`provider.oapServer` (SkyWalking's OAP receives OTLP too), or the standard
`OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` / `OTEL_EXPORTER_OTLP_ENDPOINT`. An endpoint without a
scheme is plain text (`http://`); write `https://` for TLS. When the process already has an SDK
`TracerProvider` (set up by `opentelemetry-instrument` or by the function's module), spans go
to it and no exporter is made.

Per invocation: a SERVER (HTTP) or CONSUMER (Dapr event) span named after the function with the
tags of `openfunction.tracing.common` as attributes (those that are the same for every span -
`func`, `instance`, `namespace`, `layer` and the configured tags - are resource attributes,
beside `service.name` and the rest, unless the provider was made elsewhere), continuing the W3C `traceparent` / `tracestate` /
`baggage` of the request headers or of the inner event's metadata; `pluginsTracing.baggage`
entries are added to the baggage. For each `ctx.send` a PRODUCER span under it, whose context
goes into the outgoing inner event's metadata. The invocation's span is the current span while
the function runs, so spans the function makes itself are its children.

The invocation's spans are started on the provider by `otel_spans.SpanStarter` (the SDK's
tracer costs several times a small request) and reach its span processors like any other;
spans are batched and exported from a background thread (`OTEL_BSP_*` tune it) by
`otlp_exporter`, which encodes them itself. A full queue drops spans, and an absent collector
never delays the function.
"""

from __future__ import annotations

import logging
import os
import re
import threading
from contextvars import ContextVar
from functools import partial
from typing import TYPE_CHECKING, Any, Callable, Mapping
from urllib.parse import unquote

from openfunction.errors import ConfigError
from openfunction.plugins.base import Plugin
from openfunction.tracing.common import (
    TraceSettings,
    event_kind,
    failure,
    host_header,
    scan_headers,
)

if TYPE_CHECKING:
    from openfunction.config import Exporter, FunctionConfig
    from openfunction.context import OutgoingMessage
    from openfunction.invocation import Invocation
    from openfunction.plugins.pipeline import PluginSet

logger = logging.getLogger("openfunction.tracing")

PROVIDER_FIELD = "FUNC_CONTEXT.pluginsTracing.provider"
ENDPOINT_ENV = ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT")
CLOSE_TIMEOUT = 3.0
"""Seconds the shutdown waits for the last spans to be exported."""
STATE_KEY = "opentelemetry"
"""Where an invocation's entry span is kept: `ctx.state[STATE_KEY]`."""


class OpenTelemetryTracer:
    """The process-wide side: the tracer provider and how spans are made."""

    def __init__(self, settings: TraceSettings, config: "FunctionConfig",
                 environ: Mapping[str, str]) -> None:
        from opentelemetry import baggage, propagate, trace
        from opentelemetry import context as otel_context
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.util.instrumentation import InstrumentationScope
        from opentelemetry.trace import SpanKind, Status, StatusCode

        from openfunction import __version__
        from openfunction.tracing.otel_spans import SpanStarter

        self.settings = settings
        self._trace = trace
        self._baggage = baggage
        self._propagate = propagate
        self._context = otel_context
        self._no_parent = otel_context.Context()  # immutable: one serves every root span
        self._SpanKind = SpanKind
        self._Status = Status
        self._StatusCode = StatusCode
        current = trace.get_tracer_provider()
        self._owned: Any = None
        if isinstance(current, TracerProvider):
            provider = current
            self.destination = "the process's TracerProvider"
        else:
            provider, self.destination = _make_provider(settings, config, environ)
            trace.set_tracer_provider(provider)
            self._owned = provider
        self._tracer = provider.get_tracer("openfunction", __version__)
        starter = SpanStarter.for_provider(
            provider, InstrumentationScope("openfunction", __version__))
        self._start = starter.start if starter is not None else self._start_with_sdk
        # The propagators' header names, when they read exactly those (W3C and B3 do);
        # others (Jaeger's `uberctx-*` baggage, ...) are given every header.
        self._fields: frozenset[str] | None = None
        self._header_fields: frozenset[bytes] | None = None
        if _exact_propagators(environ):
            self._fields = frozenset(propagate.get_global_textmap().fields)
            self._header_fields = frozenset(f.encode("latin-1") for f in self._fields)
        # The same for every span: on the resource of a provider made here (encoded once per
        # export batch), on each span of a provider someone else made.
        self._static = {} if self._owned is not None else dict(settings.tags)

    def describe(self, invocation: "Invocation", host: bytes, kind: str) -> dict[str, Any]:
        """An entry span's attributes (`host`: the request's `Host` header; `kind`: its
        `event_kind`)."""
        request = invocation.request
        if request is not None:
            scope = request.scope
            attributes: dict[str, Any] = {
                "http.method": scope.get("method", ""),
                "url": f"{host_header(host, scope)}{scope.get('path', '')}",
                "runtime": self.settings.runtime,
            }
        else:
            attributes = {"runtime": self.settings.runtime}
        if kind:
            attributes["component.type"] = kind
        if self._static:
            attributes.update(self._static)
        return attributes

    def enter(self, invocation: "Invocation") -> "_Entry":
        # one pass over the request headers for the url's host and the caller's context
        request = invocation.request
        incoming: Mapping[str, str] | None = None
        host = b""
        if request is not None:
            host, incoming = scan_headers(request.scope, self._header_fields)
        kind = event_kind(invocation)
        carrier = invocation.carrier
        if carrier:  # an inner event's metadata: the caller's context, whatever the headers
            incoming = carrier if self._fields is None or not self._fields.isdisjoint(
                carrier) else None
        parent = self._propagate.extract(incoming) if incoming else self._no_parent
        for key, value in self.settings.baggage.items():
            parent = self._baggage.set_baggage(key, value, context=parent)
        # the attributes are made only for a span that records (see `SpanStarter.start`)
        span = self._start(self.settings.service, parent,
                           self._SpanKind.CONSUMER if kind else self._SpanKind.SERVER,
                           partial(self.describe, invocation, host, kind))
        context = self._trace.set_span_in_context(span, parent)
        return _Entry(span, context, self._context.attach(context))

    def leave(self, entry: "_Entry", invocation: "Invocation") -> None:
        try:
            self._context.detach(entry.token)
        except Exception:  # noqa: BLE001 - detached elsewhere: nothing to restore
            pass
        span = entry.span
        reason = failure(invocation)
        if reason is not None:
            if invocation.error is not None:
                span.record_exception(invocation.error)
            span.set_status(self._Status(self._StatusCode.ERROR, reason))
        span.end()

    def send(self, entry: "_Entry", message: "OutgoingMessage") -> None:
        output = message.output
        target = output.target or output.name
        span = self._start(self.settings.service, entry.context, self._SpanKind.PRODUCER,
                           {**self._static, "peer": target,
                            "component.type": output.building_block})
        self._propagate.inject(message.metadata, context=self._trace.set_span_in_context(
            span, entry.context))
        span.end()

    def _start_with_sdk(self, name: str, parent: Any, kind: Any,
                        attributes: "dict[str, Any] | Callable[[], dict[str, Any]]") -> Any:
        if callable(attributes):
            attributes = attributes()
        return self._tracer.start_span(name, context=parent, kind=kind, attributes=attributes)

    def stop(self) -> None:
        provider = self._owned
        if provider is None:
            return
        self._owned = None
        done = threading.Thread(target=provider.shutdown, name="otel-shutdown", daemon=True)
        done.start()
        done.join(CLOSE_TIMEOUT)
        if done.is_alive():
            logger.warning("OpenTelemetry: %s did not take the last spans within %ss",
                           self.destination, CLOSE_TIMEOUT)


EXACT_PROPAGATORS = frozenset({"tracecontext", "baggage", "b3", "b3multi", "none"})
"""`OTEL_PROPAGATORS` entries whose propagators read only the header names they list."""


def _exact_propagators(environ: Mapping[str, str]) -> bool:
    names = environ.get("OTEL_PROPAGATORS", "tracecontext,baggage")
    return {name.strip().lower() for name in names.split(",") if name.strip()} <= EXACT_PROPAGATORS


class _Entry:
    __slots__ = ("span", "context", "token")

    def __init__(self, span: Any, context: Any, token: Any) -> None:
        self.span = span
        self.context = context
        self.token = token


_current: "ContextVar[_Entry | None]" = ContextVar("openfunction_otel_entry", default=None)
"""The entry span of the invocation running in this context, for `get` (which has no ctx)."""


class OpenTelemetryPlugin(Plugin):
    """One instance serves every invocation: a span lives in its invocation's
    `ctx.state["opentelemetry"]` (and, for `get`, in a context variable), never on `self`."""

    name = "opentelemetry"
    version = "v1"
    per_invocation = False

    tracer: OpenTelemetryTracer | None = None

    def setup(self, config: "FunctionConfig") -> None:
        self.tracer = OpenTelemetryTracer(TraceSettings.from_config(config), config, os.environ)
        logger.info("OpenTelemetry tracing: exporting to %s as service %r",
                    self.tracer.destination, config.name)

    def exec_pre_hook(self, ctx: "Invocation", plugins: "PluginSet") -> None:
        tracer = self.tracer
        if tracer is not None:
            entry = ctx.state[STATE_KEY] = tracer.enter(ctx)
            _current.set(entry)

    def exec_post_hook(self, ctx: "Invocation", plugins: "PluginSet") -> None:
        entry = ctx.state.pop(STATE_KEY, None)
        if entry is not None and self.tracer is not None:
            _current.set(None)
            self.tracer.leave(entry, ctx)

    def on_send(self, ctx: "Invocation", message: "OutgoingMessage") -> None:
        entry = ctx.state.get(STATE_KEY)
        if entry is not None and self.tracer is not None:
            self.tracer.send(entry, message)

    def get(self, key: str) -> Any:
        """`span` or `trace_id` of the invocation running in the caller's context."""
        entry = _current.get()
        if entry is None:
            return None
        if key == "span":
            return entry.span
        if key == "trace_id":
            return format(entry.span.get_span_context().trace_id, "032x")
        return None

    def close(self) -> None:
        if self.tracer is not None:
            self.tracer.stop()


def _make_provider(settings: TraceSettings, config: "FunctionConfig",
                   environ: Mapping[str, str]) -> tuple[Any, str]:
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    provider_config = config.tracing.provider if config.tracing else None
    exporter_config = provider_config.exporter if provider_config else None
    exporter, destination = make_exporter(
        exporter_config, provider_config.oap_server if provider_config else "", environ,
        config.tracing.where("provider") if config.tracing else PROVIDER_FIELD,
    )
    attributes = {
        **dict(settings.tags),
        "service.name": settings.service,
        "service.instance.id": settings.instance,
        "faas.name": settings.service,
        "openfunction.runtime": settings.runtime,
    }
    if config.version:
        attributes["service.version"] = config.version
    if config.pod_name:
        attributes["k8s.pod.name"] = config.pod_name
    if settings.namespace:
        attributes["k8s.namespace.name"] = settings.namespace
    provider = TracerProvider(resource=Resource.create(attributes), shutdown_on_exit=False)
    provider.add_span_processor(BatchSpanProcessor(exporter))
    return provider, destination


def make_exporter(exporter: "Exporter | None", oap_server: str, environ: Mapping[str, str],
                  provider_field: str = PROVIDER_FIELD) -> tuple[Any, str]:
    """The OTLP span exporter `pluginsTracing.provider` describes, and where it exports to
    (errors name the fields under `provider_field`)."""
    field = f"{provider_field}.exporter"
    name = (exporter.name if exporter else "").strip().lower()
    if name not in ("", "otlp"):
        raise ConfigError(
            f"{field}.name is invalid: {exporter.name!r}",  # type: ignore[union-attr]
            "the opentelemetry provider exports over OTLP; Jaeger, Zipkin and most backends "
            "receive OTLP directly.",
            f'set "{field}.name": "otlp" (or leave it out)',
        )
    endpoint = (exporter.endpoint if exporter else "").strip() or oap_server.strip()
    env_endpoint = next((environ[k] for k in ENDPOINT_ENV if environ.get(k)), "")
    if not endpoint and not env_endpoint:
        raise ConfigError(
            f"{field}.endpoint is missing",
            "OpenTelemetry tracing is enabled and no OTLP endpoint is given: neither "
            f"{field}.endpoint, {provider_field}.oapServer nor OTEL_EXPORTER_OTLP_ENDPOINT "
            "is set.",
            f'set "{field}": {{"endpoint": "otel-collector:4317"}}',
        )
    scheme = endpoint.partition("://")[0].lower() if "://" in endpoint else ""
    if scheme and scheme not in ("http", "https"):
        where = f"{field}.endpoint" if exporter and exporter.endpoint.strip() else (
            f"{provider_field}.oapServer")
        raise ConfigError(
            f"{where} is invalid: {endpoint!r}",
            "an OTLP endpoint is host:port, http://host:port (plain text) or https://host:port "
            "(TLS).",
            f'set "{where}": "otel-collector:4317"',
        )
    protocol = (exporter.protocol if exporter else "").strip().lower() or environ.get(
        "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", environ.get("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")
    ).lower()
    options: dict[str, Any] = {}
    if exporter and exporter.headers.strip():
        options["headers"] = _headers(exporter.headers, f"{field}.headers")
    if exporter and exporter.timeout.strip():
        options["timeout"] = _seconds(exporter.timeout, f"{field}.timeout")
    compression = (exporter.compression if exporter else "").strip().lower()
    if compression and compression not in ("gzip", "deflate", "none"):
        raise ConfigError(
            f"{field}.compression is invalid: {exporter.compression!r}",  # type: ignore[union-attr]
            "OTLP compresses with gzip (or deflate over gRPC), or not at all.",
            f'set "{field}.compression": "gzip" or "none"',
        )

    if protocol == "grpc":
        from openfunction.tracing.otlp_exporter import make_grpc_exporter

        if endpoint and "://" not in endpoint:
            endpoint = f"http://{endpoint}"
        if compression:
            import grpc

            options["compression"] = {
                "gzip": grpc.Compression.Gzip, "deflate": grpc.Compression.Deflate,
                "none": grpc.Compression.NoCompression,
            }[compression]
        made = make_grpc_exporter(endpoint=endpoint or None, **options)
        return made, f"OTLP/gRPC {endpoint or env_endpoint}"
    if protocol in ("http/protobuf", "http"):
        try:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import (
                OTLPSpanExporter as HTTPSpanExporter,
            )
        except ImportError:
            raise ConfigError(
                f"{field}.protocol {protocol!r} needs the OTLP/HTTP exporter",
                "the package opentelemetry-exporter-otlp-proto-http is not installed.",
                "add opentelemetry-exporter-otlp-proto-http to the function's requirements, "
                'or use "protocol": "grpc"',
            ) from None
        if endpoint and "://" not in endpoint:
            endpoint = f"http://{endpoint}"
        if endpoint and not endpoint.rstrip("/").endswith("/v1/traces"):
            endpoint = endpoint.rstrip("/") + "/v1/traces"
        if compression:
            from opentelemetry.exporter.otlp.proto.http import Compression

            options["compression"] = Compression(compression)
        made = HTTPSpanExporter(endpoint=endpoint or None, **options)
        return made, f"OTLP/HTTP {endpoint or env_endpoint}"
    raise ConfigError(
        f"{field}.protocol is invalid: {protocol!r}",
        "OTLP is sent over 'grpc' (port 4317) or 'http/protobuf' (port 4318).",
        f'set "{field}.protocol": "grpc"',
    )


def _headers(text: str, where: str) -> dict[str, str]:
    headers: dict[str, str] = {}
    for item in text.split(","):
        if not item.strip():
            continue
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(
                f"{where} is invalid: {text!r}",
                "headers are written key=value,key2=value2.",
                f'set "{where}": "authorization=Bearer%20token"',
            )
        headers[unquote(key.strip()).lower()] = unquote(value.strip())
    return headers


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m)?\s*$")


def _seconds(text: str, where: str) -> float:
    match = _DURATION.match(text)
    if not match:
        raise ConfigError(
            f"{where} is invalid: {text!r}",
            "a timeout is a number of seconds, or a duration such as 500ms, 10s or 1m.",
            f'set "{where}": "10s"',
        )
    value = float(match.group(1))
    return value * {"ms": 0.001, "s": 1.0, "m": 60.0, None: 1.0}[match.group(2)]
