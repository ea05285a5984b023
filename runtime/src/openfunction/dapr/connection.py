"""One gRPC connection to the Dapr sidecar, shared by every send and state call.

The connection is made on first use (`ensure`) on the running event loop and reused
until shutdown. Every wait is bounded: connecting by `DAPR_CONNECT_TIMEOUT`, each call by
`DAPR_API_TIMEOUT_SECONDS`. Callers that need the connection while it is being made share
that one attempt, each waiting at most `DAPR_CONNECT_TIMEOUT` from when it started; a failed
attempt is not remembered, the next caller tries again. A sidecar that cannot be reached raises
`DaprUnavailableError` naming `DAPR_HOST` / `DAPR_GRPC_PORT`; an error answered by the
sidecar (unknown component, bad metadata...) raises `OutputError` with its message.

Only the protobuf modules of the calls made here are imported (bindings, pub/sub,
state), not the whole Dapr client.
"""

from __future__ import annotations

import asyncio
import logging
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Mapping

from openfunction.config import DaprEndpoint
from openfunction.errors import ConfigError, DaprUnavailableError, OutputError

if TYPE_CHECKING:
    import grpc.aio

logger = logging.getLogger("openfunction.dapr")

MAX_MESSAGE_BYTES = 64 * 1024 * 1024


@dataclass(frozen=True)
class DaprSettings:
    """How to reach the sidecar: the endpoint plus timeouts and token from the environment."""

    endpoint: DaprEndpoint
    connect_timeout: float = 5.0
    """`DAPR_CONNECT_TIMEOUT`: seconds a send waits for a connection to the sidecar."""
    api_timeout: float = 60.0
    """`DAPR_API_TIMEOUT_SECONDS`: seconds one call to the sidecar may take."""
    health_timeout: float = 60.0
    """`DAPR_HEALTH_TIMEOUT`: seconds the Async runtime waits for the sidecar at start-up."""
    api_token: str = ""
    """`DAPR_API_TOKEN`: sent as `dapr-api-token` when the sidecar requires it."""

    @classmethod
    def from_env(cls, endpoint: DaprEndpoint, environ: Mapping[str, str]) -> "DaprSettings":
        def seconds(name: str, default: float) -> float:
            text = environ.get(name, "").strip()
            if not text:
                return default
            try:
                value = float(text)
            except ValueError:
                value = math.nan
            # NaN compares False with everything and inf never expires: both would make a
            # bounded wait unbounded, so only finite numbers greater than 0 are accepted
            if not math.isfinite(value) or value <= 0:
                raise ConfigError(
                    f"{name} is invalid: {text!r}",
                    "it is a finite number of seconds greater than 0 (not nan or inf).",
                    f"set {name} to e.g. {default:g}, or unset it",
                )
            return value

        return cls(
            endpoint=endpoint,
            connect_timeout=seconds("DAPR_CONNECT_TIMEOUT", cls.connect_timeout),
            api_timeout=seconds("DAPR_API_TIMEOUT_SECONDS", cls.api_timeout),
            health_timeout=seconds("DAPR_HEALTH_TIMEOUT", cls.health_timeout),
            api_token=environ.get("DAPR_API_TOKEN", ""),
        )

    def unreachable(self, title: str, detail: str) -> DaprUnavailableError:
        where = self.endpoint.grpc_address
        return DaprUnavailableError(
            title,
            f"{detail} The sidecar's gRPC API is expected at {where} "
            f"(DAPR_HOST={self.endpoint.host}, DAPR_GRPC_PORT={self.endpoint.grpc_port}).",
            "run the function with a Dapr sidecar (OpenFunction injects one when the function "
            "has inputs, outputs or states); locally start `daprd` and set DAPR_HOST and "
            "DAPR_GRPC_PORT to its address",
        )


COMPONENT_HINT = (
    "check that the component exists in the sidecar (its name and type match "
    "FUNC_CONTEXT) and that its metadata is complete; the sidecar's log says more"
)


def sidecar_error(what: str, code: str, details: str) -> OutputError:
    """The `OutputError` for a call that failed with gRPC status `code` (not UNAVAILABLE or
    DEADLINE_EXCEEDED), with a hint that fits the status."""
    answered = f"the Dapr sidecar answered {code}: {details}"
    if code == "RESOURCE_EXHAUSTED" and "larger than max" in details:
        mib = MAX_MESSAGE_BYTES / (1024 * 1024)
        limit = f"{mib:g} MiB" if mib >= 1 else f"{MAX_MESSAGE_BYTES} bytes"
        if details.startswith("CLIENT:"):
            return OutputError(
                f"{what} failed: the message is too large to send",
                f"the function's gRPC client refused to send it, nothing reached the "
                f"sidecar ({details.removeprefix('CLIENT:').strip()}; this client sends "
                f"at most {limit}).",
                f"send less than {limit} at once: split the data, or store it elsewhere "
                "and send a reference to it",
            )
        return OutputError(
            f"{what} failed: the message is larger than the sidecar accepts",
            f"{answered}.",
            "send less data at once, or raise the sidecar's limit: daprd --max-body-size "
            "(the dapr.io/max-body-size annotation in Kubernetes), 4Mi by default",
        )
    if code == "INVALID_ARGUMENT" and "not found" not in details.lower():
        return OutputError(
            f"{what} failed: the sidecar refused the request's arguments",
            f"{answered}.",
            "correct what the message names: the key, the topic, the operation or the metadata "
            "passed to ctx.send / ctx.states (or set in FUNC_CONTEXT for the component)",
        )
    if code == "RESOURCE_EXHAUSTED":
        return OutputError(
            f"{what} failed: the sidecar or the component is out of a resource",
            f"{answered}.",
            "retry later, or raise the limit the message names",
        )
    if code in ("UNAUTHENTICATED", "PERMISSION_DENIED"):
        return OutputError(
            f"{what} failed: the sidecar refused the call",
            f"{answered}.",
            "set DAPR_API_TOKEN to the sidecar's API token when it requires one, and check "
            "the component's scopes and the app's access control policy",
        )
    # NOT_FOUND, INTERNAL (daprd's answer for an unknown binding or a component's own
    # error), INVALID_ARGUMENT for an unknown pub/sub or state store, ...
    return OutputError(f"{what} failed", answered, COMPONENT_HINT)


class DaprConnection:
    """A lazily opened `grpc.aio` channel to the sidecar's Dapr API.

    Used on one event loop only (`def` functions reach it through
    `asyncio.run_coroutine_threadsafe`), so no thread lock is needed.
    """

    def __init__(self, settings: DaprSettings) -> None:
        self.settings = settings
        self._channel: "grpc.aio.Channel | None" = None
        self._calls: dict[str, Any] = {}
        self._attempt: "asyncio.Task[None] | None" = None
        """The connection attempt in progress, shared by every caller waiting for it."""
        self._attempt_deadline = 0.0
        """When `_attempt` gives up (event loop time): after it, nobody joins it."""
        self._metadata: tuple[tuple[str, str], ...] = (
            (("dapr-api-token", settings.api_token),) if settings.api_token else ()
        )
        self._pb: dict[str, Any] = {}

    @property
    def connected(self) -> bool:
        return self._channel is not None

    async def ensure(self) -> None:
        """Open the channel and wait (bounded) until the sidecar accepts connections.

        Concurrent callers join the attempt in progress instead of queueing for attempts
        of their own; each waits at most `DAPR_CONNECT_TIMEOUT` from its call.
        """
        if self._channel is not None:
            return
        loop = asyncio.get_running_loop()
        timeout = self.settings.connect_timeout
        attempt = self._attempt
        if (attempt is None or attempt.done() or attempt.get_loop() is not loop
                or loop.time() >= self._attempt_deadline):
            # none in progress, or one failing right now: a new caller tries again
            _grpc_aio()  # the first import takes a while: done before the clock starts
            deadline = loop.time() + timeout
            attempt = loop.create_task(self._connect(deadline), name="dapr-connect")
            attempt.add_done_callback(self._attempt_done)
            self._attempt, self._attempt_deadline = attempt, deadline
        # asyncio.wait neither cancels the attempt when this caller gives up or is cancelled
        # (the others still wait for it) nor raises the attempt's own cancellation
        done, _ = await asyncio.wait({attempt}, timeout=timeout)
        if not done:
            raise self._not_answered()
        if attempt.cancelled():
            raise self.settings.unreachable(
                "the connection to the Dapr sidecar was closed",
                "it was closed (the function is shutting down) before the sidecar answered.",
            )
        error = attempt.exception()
        if isinstance(error, DaprUnavailableError):
            # a copy per waiter: raising the shared one would grow its traceback each time
            raise DaprUnavailableError(error.title, error.detail, error.hint)
        if error is not None:
            raise error

    async def _connect(self, deadline: float) -> None:
        """One connection attempt, ending by `deadline` (event loop time)."""
        channel = _grpc_aio().insecure_channel(
            self.settings.endpoint.grpc_address,
            options=[
                ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
                ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
                # a subchannel of its own: one shared with the channel of a failed attempt
                # would still be backing off, and this attempt would not really try again
                ("grpc.use_local_subchannel_pool", 1),
            ],
        )
        remaining = deadline - asyncio.get_running_loop().time()
        try:
            await asyncio.wait_for(channel.channel_ready(), max(remaining, 0.0))
            if self._channel is not None:
                # an attempt begun once this one was past its deadline connected first
                await channel.close()
                return
            self._bind(channel)
        except asyncio.TimeoutError:
            await channel.close()
            raise self._not_answered() from None
        except BaseException:  # cancelled by close(), or the Dapr protobufs failed to load
            await channel.close()
            raise
        self._channel = channel
        logger.debug("connected to the Dapr sidecar at %s", self.settings.endpoint.grpc_address)

    def _attempt_done(self, attempt: "asyncio.Task[None]") -> None:
        if self._attempt is attempt:
            self._attempt = None  # a failed attempt is not cached: the next caller retries
        if not attempt.cancelled():
            attempt.exception()  # retrieved here even when every waiter gave up first

    def _not_answered(self) -> DaprUnavailableError:
        return self.settings.unreachable(
            "no Dapr sidecar is reachable",
            f"nothing answered within {self.settings.connect_timeout:g}s (DAPR_CONNECT_TIMEOUT).",
        )

    def _bind(self, channel: "grpc.aio.Channel") -> None:
        from dapr.proto.runtime.v1 import binding_pb2, pubsub_pb2, state_pb2
        from google.protobuf import empty_pb2

        def method(name: str, request: Any, response: Any) -> Any:
            return channel.unary_unary(
                f"/dapr.proto.runtime.v1.Dapr/{name}",
                request_serializer=request.SerializeToString,
                response_deserializer=response.FromString,
            )

        empty = empty_pb2.Empty
        self._pb = {"binding": binding_pb2, "pubsub": pubsub_pb2, "state": state_pb2}
        self._calls = {
            "InvokeBinding": method(
                "InvokeBinding", binding_pb2.InvokeBindingRequest, binding_pb2.InvokeBindingResponse),
            "PublishEvent": method("PublishEvent", pubsub_pb2.PublishEventRequest, empty),
            "GetState": method("GetState", state_pb2.GetStateRequest, state_pb2.GetStateResponse),
            "SaveState": method("SaveState", state_pb2.SaveStateRequest, empty),
            "DeleteState": method("DeleteState", state_pb2.DeleteStateRequest, empty),
        }

    async def _call(self, name: str, request: Any, what: str) -> Any:
        import grpc

        try:
            return await self._calls[name](
                request, timeout=self.settings.api_timeout, metadata=self._metadata
            )
        except grpc.aio.AioRpcError as exc:
            code = exc.code()
            if code is grpc.StatusCode.UNAVAILABLE:
                raise self.settings.unreachable(
                    f"{what} failed: the Dapr sidecar is unavailable", f"{exc.details()}."
                ) from None
            if code is grpc.StatusCode.DEADLINE_EXCEEDED:
                raise self.settings.unreachable(
                    f"{what} timed out",
                    f"the sidecar did not answer within {self.settings.api_timeout:g}s "
                    "(DAPR_API_TIMEOUT_SECONDS).",
                ) from None
            raise sidecar_error(what, code.name, exc.details() or "") from None

    # -------------------------------------------------------------- calls

    async def invoke_binding(
        self, name: str, operation: str, data: bytes, metadata: Mapping[str, str]
    ) -> bytes:
        await self.ensure()
        request = self._pb["binding"].InvokeBindingRequest(
            name=name, operation=operation, data=data, metadata=dict(metadata)
        )
        response = await self._call("InvokeBinding", request, f"invoking binding {name!r}")
        return bytes(response.data)

    async def publish_event(
        self, pubsub: str, topic: str, data: bytes, content_type: str, metadata: Mapping[str, str]
    ) -> None:
        await self.ensure()
        request = self._pb["pubsub"].PublishEventRequest(
            pubsub_name=pubsub, topic=topic, data=data, data_content_type=content_type,
            metadata=dict(metadata),
        )
        await self._call("PublishEvent", request, f"publishing to topic {topic!r} of {pubsub!r}")

    async def get_state(self, store: str, key: str) -> bytes:
        await self.ensure()
        request = self._pb["state"].GetStateRequest(store_name=store, key=key)
        response = await self._call("GetState", request, f"reading key {key!r} of store {store!r}")
        return bytes(response.data)

    async def save_state(self, store: str, key: str, value: bytes) -> None:
        await self.ensure()
        from dapr.proto.common.v1 import common_pb2

        request = self._pb["state"].SaveStateRequest(
            store_name=store, states=[common_pb2.StateItem(key=key, value=value)]
        )
        await self._call("SaveState", request, f"saving key {key!r} in store {store!r}")

    async def delete_state(self, store: str, key: str) -> None:
        await self.ensure()
        request = self._pb["state"].DeleteStateRequest(store_name=store, key=key)
        await self._call("DeleteState", request, f"deleting key {key!r} of store {store!r}")

    async def close(self) -> None:
        attempt, self._attempt = self._attempt, None
        if (attempt is not None and not attempt.done()
                and attempt.get_loop() is asyncio.get_running_loop()):
            attempt.cancel()  # it closes its channel; a channel it opened is closed below
            await asyncio.wait({attempt})
        channel, self._channel = self._channel, None
        if channel is not None:
            await channel.close()


def _grpc_aio() -> Any:
    import grpc.aio

    return grpc.aio


async def wait_for_sidecar(settings: DaprSettings, *, interval: float = 0.1) -> float:
    """Wait until the sidecar's components are ready (`GET /v1.0/healthz/outbound`).

    Bounded by `DAPR_HEALTH_TIMEOUT`; returns the seconds waited.
    """
    loop = asyncio.get_running_loop()
    started = loop.time()
    deadline = started + settings.health_timeout
    endpoint = settings.endpoint
    last = "no answer"
    while True:
        try:
            status, _ = await asyncio.wait_for(
                http_get(endpoint.host, endpoint.http_port, "/v1.0/healthz/outbound"), 2.0
            )
            if 200 <= status < 300:
                return loop.time() - started
            last = f"answered HTTP {status}"
        except (OSError, asyncio.TimeoutError, ValueError) as exc:
            last = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        if loop.time() + interval > deadline:
            raise DaprUnavailableError(
                "the Dapr sidecar did not become ready",
                f"GET http://{endpoint.host}:{endpoint.http_port}/v1.0/healthz/outbound did not "
                f"succeed within {settings.health_timeout:g}s (DAPR_HEALTH_TIMEOUT); last: {last}.",
                "check that daprd runs beside the function and that DAPR_HOST / DAPR_HTTP_PORT "
                "point at it; its log says why components fail to load",
            )
        await asyncio.sleep(interval)


async def http_get(host: str, port: int, path: str) -> tuple[int, bytes]:
    """`GET path` from the sidecar's HTTP API: the status and the body."""
    reader, writer = await asyncio.open_connection(host, port)
    try:
        writer.write(f"GET {path} HTTP/1.0\r\nHost: {host}\r\n\r\n".encode())
        await writer.drain()
        answer = await reader.read()
    finally:
        writer.close()
    head, _, body = answer.partition(b"\r\n\r\n")
    parts = head.split(b"\r\n", 1)[0].split()
    if len(parts) < 2 or not parts[1].isdigit():
        raise ValueError(f"not an HTTP answer: {head[:40]!r}")
    return int(parts[1]), body
