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

Each invocation's segment is made from what that invocation left on its own `ctx`, never from
the agent's "active span", so concurrent invocations, `def` functions running in worker
threads and sends made from them all get the right parents. The agent starts with the
first invocation; the records are queued (at most `SW_AGENT_TRACE_REPORTER_MAX_BUFFER_SIZE`,
then dropped) and a reporter thread sends them in batches over the agent's channel
(`skywalking_report`): a slow or absent collector never delays a function.
"""

from __future__ import annotations

import itertools
import json
import logging
import os
import threading
import time
import uuid
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any, Mapping

from openfunction.errors import ConfigError
from openfunction.plugins.base import Plugin
from openfunction.tracing.common import TraceSettings, host_header, trigger_kind
from openfunction.tracing.common import failure as failure_reason
from openfunction.tracing.skywalking_report import (
    Ref,
    SegmentEncoder,
    SegmentRecord,
    SegmentReporter,
    channel_protocol,
    now_ms,
)

if TYPE_CHECKING:
    from openfunction.config import FunctionConfig
    from openfunction.context import OutgoingMessage
    from openfunction.invocation import Invocation
    from openfunction.plugins.pipeline import PluginSet

logger = logging.getLogger("openfunction.tracing")
_time = time.time

OAP_SERVER_FIELD = "FUNC_CONTEXT.pluginsTracing.provider.oapServer"
BACKEND_ENV = "SW_AGENT_COLLECTOR_BACKEND_SERVICES"
STATE_KEY = "skywalking"
"""Where a running invocation's segment is kept once made: `ctx.state[STATE_KEY]`."""
COMPONENT_OPENFUNCTION = 5013
"""SkyWalking's component id for OpenFunction (component-libraries.yml)."""

CLOSE_TIMEOUT = 3.0
"""Seconds the shutdown waits for the last segments to be reported."""


def parse_oap_server(value: str, environ: Mapping[str, str] | None = None,
                     field: str = OAP_SERVER_FIELD) -> str:
    """The `host:port` of the OAP server's gRPC receiver, or a ConfigError saying what is
    wrong (naming `field`)."""
    env = os.environ if environ is None else environ
    text = value.strip() or env.get(BACKEND_ENV, "").strip()
    if not text:
        raise ConfigError(
            f"{field} is missing",
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
    elif not (port.isascii() and port.isdigit()) or not 0 < int(port) < 65536:
        problem = "the port must be a number from 1 to 65535 (the OAP's gRPC port is 11800)."
    if problem:
        raise ConfigError(
            f"{field} is invalid: {text!r}",
            problem,
            'set "oapServer" to the OAP server\'s gRPC address, e.g. "oap:11800"',
        )
    return text


class SkyWalkingTracer:
    """The process-wide side: the agent, and how segments are made. Shared by all invocations."""

    def __init__(self, settings: TraceSettings, address: str, environ: Mapping[str, str]) -> None:
        from skywalking import config, sampling
        from skywalking.agent import agent
        from skywalking.agent.protocol import grpc as agent_grpc
        from skywalking.trace.carrier import Carrier

        self.settings = settings
        self.address = address
        self._agent = agent
        self._config = config
        self._sampling = sampling
        self._Carrier = Carrier
        self._ids = _Ids()
        self._encoder = SegmentEncoder(settings.service, settings.instance, settings.service,
                                       COMPONENT_OPENFUNCTION, settings.tags)
        self._runtime_tag = ("runtime", settings.runtime)
        self._event_tags: dict[str, tuple[tuple[str, str], ...]] = {}
        self._http_tags: dict[tuple[str, str, str], tuple[tuple[str, str], ...]] = {}
        self._agent_grpc = agent_grpc
        self._started = False
        self._lock = threading.Lock()
        _configure_agent(config, settings, address, environ)
        self.reporter = SegmentReporter(self._encoder, config.agent_trace_reporter_max_buffer_size,
                                        address, encode=self.encode)
        self._templates: dict[object, bytes] = {}
        self._pending = self.reporter.pending
        self._max_pending = self.reporter.max_pending
        self._next_seq = itertools.count(1).__next__
        self._sampler: Any = None

    # the agent
    def start(self) -> None:
        """Start the agent's reporter threads (once per process)."""
        if self._started:
            return
        with self._lock:
            if self._started:
                return
            _report_faas_layer()
            protocol = self._agent_grpc.GrpcProtocol
            if getattr(protocol, "shares_channel", False):
                protocol.reporter = self.reporter
            else:  # what the agent instantiates when it starts
                self._agent_grpc.GrpcProtocol = channel_protocol(protocol, self.reporter)
            _route_agent_logs()  # before the agent's threads can log (a first failed heartbeat)
            self._agent.start()
            self._sampler = self._sampling.sampling_service
            self.reporter.start()
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
        self.reporter.stop(CLOSE_TIMEOUT)
        try:
            self._agent.stop()
        except Exception as exc:  # noqa: BLE001 - the collector is gone: nothing to do
            code = getattr(exc, "code", None)  # a gRPC error's status
            logger.warning("SkyWalking: the last segments could not be reported to %s (%s)",
                           self.address, code() if callable(code) else type(exc).__name__)

    # segments
    def enter(self, invocation: "Invocation") -> None:
        """Mark `invocation` as traced; nothing of its segment is made yet.

        The segment is made from what the invocation leaves (its start and end times, the
        request's scope or the event's metadata, its outcome) by `leave` and, off the
        request path, by the reporter thread. Only a send or a `get` during the invocation
        makes its ids early (`capture`).
        """
        if not self._started:
            self.start()
        _current.set(invocation)
        sampler = self._sampler
        if sampler is not None:  # SW_SAMPLE_N_PER_3_SECS; a continued trace is always kept
            request = invocation.request
            if self._read(request.scope if request is not None else None,
                          invocation.carrier, invocation.trigger)[0]:
                sampler.force_sampled()
            elif not sampler.try_sampling():
                invocation.state[STATE_KEY] = _UNSAMPLED

    def capture(self, invocation: "Invocation") -> "Capture | None":
        """The segment of a running invocation (None when not sampled), made at the first
        send or `get` that needs its ids; `leave` reports this one."""
        state = invocation.state
        capture = state.get(STATE_KEY)
        if capture is None:
            request = invocation.request
            capture = state[STATE_KEY] = Capture(
                self._next_seq(), invocation.started_at,
                request.scope if request is not None else None,
                invocation.carrier, invocation.trigger)
        elif capture is _UNSAMPLED:
            return None
        return capture

    def leave(self, invocation: "Invocation") -> None:
        """End the entry span (an error when the invocation failed) and queue the segment.

        Most invocations made no send and asked for no id: they leave a plain tuple,
        `(seq, start, end, scope, carrier, trigger, failure)`, the cheapest thing to queue.
        """
        captured = invocation.state.get(STATE_KEY)
        if captured is _UNSAMPLED:
            return
        failure: tuple[str, str] | None = None
        if invocation.error is not None or invocation.status_code >= 500:
            error = invocation.error
            failure = (failure_reason(invocation) or "",
                       type(error).__name__ if error is not None else "")
        end = invocation.ended_at or _time()
        item: "Capture | tuple[Any, ...]"
        if captured is None:
            request = invocation.request
            item = (self._next_seq(), invocation.started_at, end,
                    request.scope if request is not None else None,
                    invocation.carrier, invocation.trigger, failure)
        else:
            captured.end, captured.failure = end, failure
            item = captured
        pending = self._pending
        if len(pending) < self._max_pending:
            pending.append(item)
        else:
            self.reporter.submit(item)  # counts and logs the drop

    def record(self, capture: "Capture") -> SegmentRecord:
        """The segment of `capture` (made once; the same record every time after)."""
        record = capture.record
        if record is None:
            sw8, correlation_header, tags = self._read(capture.scope, capture.carrier,
                                                       capture.trigger)
            ref: Ref | None = None
            correlation: dict[str, str] | None = None
            if sw8:
                ref, correlation = self._extract(sw8, correlation_header)
            if self.settings.baggage:
                correlation = dict(correlation or {})
                for key, value in self.settings.baggage.items():
                    self._correlate(correlation, key, value)
            segment_id = self._ids.segment(capture.seq)
            trace_id = ref.trace_id if ref else self._ids.trace(capture.seq)
            record = capture.record = SegmentRecord(
                trace_id, segment_id, int(capture.start * 1000), tags, ref, correlation)
        return record

    def finished(self, capture: "Capture") -> SegmentRecord:
        """The finished segment of `capture`, for the reporter thread."""
        record = self.record(capture)
        record.end = int(capture.end * 1000)
        if capture.failure is not None:
            reason, kind = capture.failure
            record.error_time = record.end
            record.error = [("event", "error"), ("message", reason)]
            if kind:
                record.error.insert(1, ("error.kind", kind))
        return record

    def encode(self, item: "Capture | tuple[Any, ...]") -> bytes:
        """One queued segment as a `SegmentCollection.segments` field (on the reporter thread).

        A plain segment (no caller's context, no baggage, no error, no send) is one entry
        span whose bytes depend only on the endpoint (method, host and path, or the kind of
        event), the invocation's number and its times: it is made by filling in a template
        kept per endpoint. Any other goes through a `SegmentRecord`.
        """
        encoder = self._encoder
        if type(item) is tuple:
            seq, start, end, scope, carrier, trigger, failure = item
            if failure is None and not self.settings.baggage:
                key = self._plain_key(scope, carrier, trigger)
                if key is not None:
                    started, ended = encoder.times(int(start * 1000), int(end * 1000))
                    template_key = (key, len(started) + len(ended))
                    template = self._templates.get(template_key)
                    if template is None:
                        if len(self._templates) >= 4096:
                            self._templates.clear()
                        template = self._templates[template_key] = encoder.plain_template(
                            self._ids.trace_prefix, self._ids.segment_prefix,
                            self._read(scope, carrier, trigger)[2], template_key[1])
                    return template % (seq, seq, started, ended)
            capture = Capture(seq, start, scope, carrier, trigger)
            capture.end, capture.failure = end, failure
        else:
            capture = item  # type: ignore[assignment]  # not a tuple: a Capture
        return encoder.entry(encoder.segment(self.finished(capture)))

    @staticmethod
    def _plain_key(scope: Mapping[str, Any] | None, carrier: Mapping[str, str],
                   trigger: str) -> object:
        """What the entry span's tags depend on, or None when the caller sent its context."""
        if carrier and "sw8" in carrier:
            return None
        if scope is None:
            return trigger
        host = b""
        for name, value in scope["headers"]:
            if name == b"host":
                host = value
            elif name == b"sw8":
                return None
        return (scope.get("method", ""), host, scope.get("path", ""))

    def _read(self, scope: Mapping[str, Any] | None, carrier: Mapping[str, str], trigger: str
              ) -> tuple[str | None, str | None, tuple[tuple[str, str], ...]]:
        """The caller's `sw8` and `sw8-correlation`, and the entry span's invocation tags."""
        if scope is None:
            kind = trigger_kind(trigger)
            tags = self._event_tags.get(kind)
            if tags is None:
                tags = self._event_tags[kind] = (
                    (self._runtime_tag, ("component.type", kind)) if kind else (self._runtime_tag,))
            return carrier.get("sw8"), carrier.get("sw8-correlation"), tags
        sw8 = correlation = None
        host = b""
        for name, value in scope["headers"]:
            if name == b"host":
                host = value
            elif name[:3] == b"sw8":
                if name == b"sw8":
                    sw8 = value.decode("latin-1")
                elif name == b"sw8-correlation":
                    correlation = value.decode("latin-1")
        if carrier:
            sw8, correlation = carrier.get("sw8"), carrier.get("sw8-correlation")
        key = (scope.get("method", ""), host, scope.get("path", ""))
        tags = self._http_tags.get(key)  # type: ignore[arg-type]
        if tags is None:
            if len(self._http_tags) >= 4096:
                self._http_tags.clear()
            url = f"{host_header(host, scope)}{key[2]}"
            tags = (("http.method", key[0]), ("url", url), self._runtime_tag)
            self._http_tags[key] = tags  # type: ignore[index]
        return sw8, correlation, tags

    def send(self, capture: "Capture", message: "OutgoingMessage") -> None:
        """An exit span for one `ctx.send`; its context goes into the message's metadata."""
        record = self.record(capture)
        peer = message.output.target or message.output.name
        span_id = record.next_span_id()
        started = now_ms()
        carrier = self._Carrier(
            trace_id=record.trace_id, segment_id=record.segment_id, span_id=str(span_id),
            service=self.settings.service, service_instance=self.settings.instance,
            endpoint=self.settings.service, client_address=peer,
            correlation=dict(record.correlation or {}),
        )
        for item in carrier:
            value = item.val
            if value:
                message.metadata[item.key] = value
        if record.exits is None:
            record.exits = []
        record.exits.append((span_id, started, now_ms(), peer))

    def _extract(self, sw8: str | None, correlation_header: str | None
                 ) -> tuple[Ref | None, dict[str, str]]:
        if not sw8:
            return None, {}
        carrier = self._Carrier()
        try:
            carrier.val = sw8
            if correlation_header:
                carrier.correlation_carrier.val = correlation_header
            if not carrier.is_valid:
                return None, {}
            ref = Ref(carrier.trace_id, carrier.segment_id, int(carrier.span_id),
                      carrier.service, carrier.service_instance, carrier.endpoint,
                      carrier.client_address)
        except (ValueError, TypeError, IndexError, UnicodeDecodeError) as exc:
            # a caller's malformed header: this invocation starts a trace of its own
            logger.debug("SkyWalking: ignoring a malformed sw8 header %r (%s)", sw8[:80], exc)
            return None, {}
        return ref, dict(carrier.correlation_carrier.correlation)

    def _correlate(self, correlation: dict[str, str], key: str, value: str) -> None:
        """Add a correlation entry within the agent's limits (as the agent itself does)."""
        if len(value) > self._config.correlation_value_max_length:
            return
        if key not in correlation and len(correlation) >= self._config.correlation_element_max_number:
            return
        correlation[key] = value


_current: "ContextVar[Invocation | None]" = ContextVar("openfunction_skywalking", default=None)
"""The traced invocation running in this context, for `get` (which has no ctx)."""
_UNSAMPLED = object()
"""`ctx.state[STATE_KEY]` of an invocation that sampling leaves out."""


class SkyWalkingPlugin(Plugin):
    """One instance serves every invocation: what a segment is made of lives on its
    invocation (`ctx`, and `ctx.state["skywalking"]` once a send or `get` made its ids),
    never on `self`."""

    name = "skywalking"
    version = "v1"
    per_invocation = False

    tracer: SkyWalkingTracer | None = None

    def setup(self, config: "FunctionConfig") -> None:
        provider = config.tracing.provider if config.tracing else None
        field = config.tracing.where("provider.oapServer") if config.tracing else OAP_SERVER_FIELD
        address = parse_oap_server(provider.oap_server if provider else "", field=field)
        self.tracer = SkyWalkingTracer(TraceSettings.from_config(config), address, os.environ)

    def exec_pre_hook(self, ctx: "Invocation", plugins: "PluginSet") -> None:
        if self.tracer is not None:
            self.tracer.enter(ctx)

    def exec_post_hook(self, ctx: "Invocation", plugins: "PluginSet") -> None:
        if self.tracer is not None:
            self.tracer.leave(ctx)

    def on_send(self, ctx: "Invocation", message: "OutgoingMessage") -> None:
        tracer = self.tracer
        if tracer is not None:
            capture = tracer.capture(ctx)
            if capture is not None:
                tracer.send(capture, message)

    def get(self, key: str) -> Any:
        """`trace_id` or `segment_id` of the invocation running in the caller's context."""
        invocation = _current.get()
        tracer = self.tracer
        if invocation is None or tracer is None or key not in ("trace_id", "segment_id"):
            return None
        capture = tracer.capture(invocation)
        if capture is None:
            return None
        record = tracer.record(capture)
        return record.trace_id if key == "trace_id" else record.segment_id

    def close(self) -> None:
        if self.tracer is not None:
            self.tracer.stop()


class Capture:
    """A segment whose ids were needed while its invocation ran (a send, a `get`)."""

    __slots__ = ("seq", "start", "scope", "carrier", "trigger", "end", "failure", "record")

    def __init__(self, seq: int, start: float, scope: Mapping[str, Any] | None,
                 carrier: Mapping[str, str], trigger: str) -> None:
        self.seq = seq
        self.start = start
        self.scope = scope
        """The HTTP request's ASGI scope (its headers, method, path); None for Dapr events."""
        self.carrier = carrier
        """The inner event's metadata (Dapr events, CloudEvents carrying one)."""
        self.trigger = trigger
        self.end = 0.0
        self.failure: tuple[str, str] | None = None
        """(reason, exception type name) when the invocation failed."""
        self.record: SegmentRecord | None = None


class _Ids:
    """Trace and segment ids: a random per-process prefix and the invocation's number.

    (The agent's own ids come from `uuid.uuid1()`, 20-40 µs each with libuuid's time-safe
    generation; these are as unique and cost well under a microsecond.)
    """

    def __init__(self) -> None:
        self.segment_prefix = uuid.uuid4().hex[:16].encode()
        self.trace_prefix = uuid.uuid4().hex[:16].encode()

    def segment(self, seq: int) -> str:
        return f"{self.segment_prefix.decode()}{seq:016x}"

    def trace(self, seq: int) -> str:
        """The id of a new trace started by segment number `seq` (unique as that one is)."""
        return f"{self.trace_prefix.decode()}{seq:016x}"


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
