"""The `skywalking` plugin: Apache SkyWalking tracing, as OpenFunction's Go framework does it.

Turned on by `pluginsTracing: {enabled: true, provider: {name: skywalking, oapServer: host:11800}}`.
The Python agent (`apache-skywalking`) reports over gRPC to the OAP server as service
`<function name>`, instance `POD_NAME` (with `pod` and `namespace` instance properties),
layer FAAS.

Per invocation:

* an entry span named after the function (layer FAAS, component 5013 "OpenFunction", the tags
  of `openfunction.tracing.common`), continuing the trace of the caller's `sw8` header (HTTP)
  or of the inner event's metadata (Dapr events); `pluginsTracing.baggage` becomes correlation
  context (`sw8-correlation`); the span is marked as an error when the function raised or
  answered 5xx;
* for every `ctx.send`, an exit span under it (peer = the output's topic or component) whose
  `sw8` / `sw8-correlation` go into the outgoing inner event's metadata.

Spans are built on the invocation's own span context, never on the agent's "active span"
(a context variable), so concurrent invocations, `def` functions running in worker threads
and sends made from them all get the right parents. The agent starts with the first
invocation, queues segments (at most `SW_AGENT_TRACE_REPORTER_MAX_BUFFER_SIZE`, then drops
them) and reports from its own threads: a slow or absent collector never delays a function.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any, Mapping

from openfunction.errors import ConfigError
from openfunction.plugins.base import Plugin
from openfunction.tracing.common import TraceSettings, failure, incoming_carrier

if TYPE_CHECKING:
    from openfunction.config import FunctionConfig
    from openfunction.context import OutgoingMessage
    from openfunction.invocation import Invocation
    from openfunction.plugins.pipeline import PluginSet

logger = logging.getLogger("openfunction.tracing")

OAP_SERVER_FIELD = "FUNC_CONTEXT.pluginsTracing.provider.oapServer"
BACKEND_ENV = "SW_AGENT_COLLECTOR_BACKEND_SERVICES"
COMPONENT_OPENFUNCTION = 5013
"""SkyWalking's component id for OpenFunction (component-libraries.yml)."""

# The agent's enums lack both; its reporter reads only `layer.name` and `component.value`.
FAAS_LAYER = SimpleNamespace(name="FAAS", value=6)
OPENFUNCTION_COMPONENT = SimpleNamespace(name="OpenFunction", value=COMPONENT_OPENFUNCTION)

CLOSE_TIMEOUT = 3.0
"""Seconds the shutdown waits for the last segments to be reported."""


def parse_oap_server(value: str, environ: Mapping[str, str] | None = None) -> str:
    """The `host:port` of the OAP server's gRPC receiver, or a ConfigError saying what is wrong."""
    env = os.environ if environ is None else environ
    text = value.strip() or env.get(BACKEND_ENV, "").strip()
    if not text:
        raise ConfigError(
            f"{OAP_SERVER_FIELD} is missing",
            "SkyWalking tracing is enabled, and the agent needs the address of the OAP "
            "server's gRPC receiver to report to.",
            'add "oapServer": "skywalking-oap.skywalking:11800" to the provider',
        )
    host, sep, port = text.rpartition(":")
    problem = ""
    if "://" in text:
        problem = "it is host:port, without a scheme."
    elif "," in text:
        problem = "the agent reports to one address; give one host:port."
    elif not sep or not host or any(c.isspace() or c == "/" for c in host):
        problem = "it is host:port, e.g. skywalking-oap.skywalking:11800."
    elif not port.isdigit() or not 0 < int(port) < 65536:
        problem = "the port must be a number from 1 to 65535 (the OAP's gRPC port is 11800)."
    if problem:
        raise ConfigError(
            f"{OAP_SERVER_FIELD} is invalid: {text!r}",
            problem,
            'set "oapServer" to the OAP server\'s gRPC address, e.g. "oap:11800"',
        )
    return text


class SkyWalkingTracer:
    """The process-wide side: the agent, and how spans are made. Shared by all invocations."""

    def __init__(self, settings: TraceSettings, address: str, environ: Mapping[str, str]) -> None:
        from skywalking import Log, LogItem, config, sampling
        from skywalking.agent import agent
        from skywalking.trace.carrier import Carrier
        from skywalking.trace.context import SpanContext
        from skywalking.trace.span import EntrySpan, ExitSpan
        from skywalking.trace.tags import Tag

        # what the agent would otherwise import on the first invocation (about 30 ms)
        import skywalking.agent.protocol.grpc  # noqa: F401

        self.settings = settings
        self.address = address
        self._agent = agent
        self._sampling = sampling
        self._Carrier = Carrier
        self._SpanContext = SpanContext
        self._EntrySpan = EntrySpan
        self._ExitSpan = ExitSpan
        self._Log = Log
        self._LogItem = LogItem
        self._tags = [_make_tag(Tag, key, value) for key, value in settings.tags]
        self._Tag = Tag
        self._started = False
        self._lock = threading.Lock()
        _configure_agent(config, settings, address, environ)

    # the agent
    def start(self) -> None:
        """Start the agent's reporter threads (once per process)."""
        if self._started:
            return
        with self._lock:
            if self._started:
                return
            _report_faas_layer()
            self._agent.start()
            _route_agent_logs()
            self._started = True
            logger.info(
                "SkyWalking tracing: reporting to %s as service %r, instance %r",
                self.address, self.settings.service, self.settings.instance,
            )

    def stop(self) -> None:
        """Report what is queued and stop, waiting at most CLOSE_TIMEOUT seconds."""
        if not self._started:
            return
        self._started = False
        done = threading.Thread(target=self._stop_agent, name="skywalking-stop", daemon=True)
        done.start()
        done.join(CLOSE_TIMEOUT)
        if done.is_alive():
            logger.warning("SkyWalking: the collector at %s did not take the last segments "
                           "within %ss", self.address, CLOSE_TIMEOUT)

    def _stop_agent(self) -> None:
        try:
            self._agent.stop()
        except Exception as exc:  # noqa: BLE001 - the collector is gone: nothing to do
            logger.warning("SkyWalking: the last segments could not be reported to %s (%s)",
                           self.address, getattr(exc, "code", lambda: type(exc).__name__)())

    # spans
    def enter(self, invocation: "Invocation") -> Any:
        """Open the entry span of `invocation`; None when the segment would be dropped."""
        self.start()
        if self._agent.is_segment_queue_full():
            return None
        carrier = self._Carrier()
        headers = incoming_carrier(invocation)
        for item in carrier:
            value = headers.get(item.key)
            if value:
                item.val = value
        continued = carrier.is_valid
        service = self._sampling.sampling_service
        if not continued and service is not None and not service.try_sampling():
            return None
        context = self._SpanContext()
        span = context.new_span(None, self._EntrySpan, op=self.settings.service)
        span.start()  # resets layer, component and tags: set them after
        if continued:
            span.extract(carrier)
        span.layer = FAAS_LAYER
        span.component = OPENFUNCTION_COMPONENT
        tags = span.tags
        for key, value in self.settings.invocation_tags(invocation):
            tags[key] = _make_tag(self._Tag, key, value)
        for tag in self._tags:
            tags[tag.key] = tag
        for key, value in self.settings.baggage.items():
            context.put_correlation(key, value)
        return span

    def leave(self, span: Any, invocation: "Invocation") -> None:
        """Close the entry span, marking it as an error when the invocation failed."""
        reason = failure(invocation)
        if reason is not None:
            span.error_occurred = True
            items = [self._LogItem("event", "error"), self._LogItem("message", reason)]
            if invocation.error is not None:
                items.insert(1, self._LogItem("error.kind", type(invocation.error).__name__))
            span.logs.append(self._Log(timestamp=time.time(), items=items))
        span.stop()

    def send(self, entry: Any, message: "OutgoingMessage") -> None:
        """An exit span for one `ctx.send`; its context goes into the message's metadata."""
        span = entry.context.new_span(
            entry, self._ExitSpan, op=self.settings.service,
            peer=message.output.target or message.output.name,
            component=OPENFUNCTION_COMPONENT,
        )
        span.start()
        span.layer = FAAS_LAYER
        span.component = OPENFUNCTION_COMPONENT
        for item in span.inject():
            value = item.val
            if value:
                message.metadata[item.key] = value
        span.stop()


class SkyWalkingPlugin(Plugin):
    name = "skywalking"
    version = "v1"

    tracer: SkyWalkingTracer | None = None
    span: Any = None
    """The entry span of this invocation (set on the per-invocation copy only)."""

    def setup(self, config: "FunctionConfig") -> None:
        provider = config.tracing.provider if config.tracing else None
        address = parse_oap_server(provider.oap_server if provider else "")
        self.tracer = SkyWalkingTracer(TraceSettings.from_config(config), address, os.environ)

    def exec_pre_hook(self, ctx: "Invocation", plugins: "PluginSet") -> None:
        if self.tracer is not None:
            self.span = self.tracer.enter(ctx)

    def exec_post_hook(self, ctx: "Invocation", plugins: "PluginSet") -> None:
        span = self.span
        if span is not None and self.tracer is not None:
            self.span = None
            self.tracer.leave(span, ctx)

    def on_send(self, ctx: "Invocation", message: "OutgoingMessage") -> None:
        span = self.span
        if span is not None and self.tracer is not None:
            self.tracer.send(span, message)

    def get(self, key: str) -> Any:
        span = self.span
        if span is None:
            return None
        if key == "span":
            return span
        if key == "trace_id":
            return str(span.context.segment.related_traces[0])
        if key == "segment_id":
            return str(span.context.segment.segment_id)
        return None

    def close(self) -> None:
        if self.tracer is not None:
            self.tracer.stop()


def _make_tag(tag_class: Any, key: str, value: str) -> Any:
    tag = tag_class(value)
    tag.key = key
    return tag


def _configure_agent(
    config: Any, settings: TraceSettings, address: str, environ: Mapping[str, str]
) -> None:
    properties = {"pod": settings.instance}
    if settings.namespace:
        properties["namespace"] = settings.namespace
    options: dict[str, Any] = {
        "agent_name": settings.service,
        "agent_instance_name": settings.instance,
        "agent_namespace": "",  # it would rename the service to "<name>|<namespace>"
        "agent_collector_backend_services": address,
        "agent_protocol": "grpc",
        "agent_instance_properties_json": json.dumps(properties),
        "agent_meter_reporter_active": False,
        "agent_pvm_meter_reporter_active": False,
        "agent_log_reporter_active": False,
        "agent_profile_active": False,
    }
    if not environ.get("SW_AGENT_DISABLE_PLUGINS"):
        # No auto-instrumentation: the gRPC plugin would wrap every Dapr callback in its
        # own entry span, and the function's span could no longer continue the caller's trace.
        options["agent_disable_plugins"] = [".*"]
    if not environ.get("SW_AGENT_LOGGING_LEVEL"):
        options["agent_logging_level"] = "WARNING"
    config.init(**options)


def _report_faas_layer() -> None:
    """Report the service's layer as FAAS in the instance properties and heartbeats."""
    import functools

    from skywalking.client import grpc as client

    for name in ("InstanceProperties", "InstancePingPkg"):
        message = getattr(client, name, None)
        fields = getattr(getattr(message, "DESCRIPTOR", None), "fields_by_name", {})
        if message is not None and "layer" in fields:
            setattr(client, name, functools.partial(message, layer="FAAS"))


def _route_agent_logs() -> None:
    """Send the agent's log records through the runtime's log format, failures in one line."""
    agent_logger = logging.getLogger("skywalking")
    for handler in list(agent_logger.handlers):
        agent_logger.removeHandler(handler)
    agent_logger.propagate = True
    if not any(isinstance(f, _OneLineRpcErrors) for f in agent_logger.filters):
        agent_logger.addFilter(_OneLineRpcErrors())


class _OneLineRpcErrors(logging.Filter):
    """The agent logs a full traceback each time the collector cannot be reached; a line will do."""

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        code = getattr(error, "code", None)
        if error is not None and callable(code):
            details = getattr(error, "details", lambda: "")() or ""
            record.msg = f"{record.getMessage()}: {code()} {details}".rstrip()
            record.args = None
            record.exc_info = None
            record.exc_text = None
            record.levelno, record.levelname = logging.WARNING, "WARNING"
        return True
