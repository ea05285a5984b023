"""`ctx`: what an OpenFunction-signature function `def f(ctx, data)` receives.

    def handler(ctx, data):
        ctx.send({"seen": data}, "sink")          # from a def function (runs in a thread)
        return "ok"

    async def handler(ctx, data):
        await ctx.send_async({"seen": data})      # to every output
        return "ok"

Outputs are the Dapr components named in `FUNC_CONTEXT.outputs`. Delivery goes through
an `OutputSender` (the Dapr one in `openfunction.dapr`), chosen once at start-up.
"""

from __future__ import annotations

import asyncio
import json
import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Mapping, Protocol

from openfunction.config import Component, FunctionConfig, Runtime
from openfunction.errors import DaprUnavailableError, OutputError

if TYPE_CHECKING:
    from starlette.requests import Request

    from openfunction.invocation import Invocation


@dataclass
class OutgoingMessage:
    """A payload on its way to an output. Plugins may add `metadata` (trace context)."""

    output: Component
    data: bytes
    metadata: dict[str, str] = field(default_factory=dict)
    raw: bool = False
    """Send `data` as it is, never wrapped in an inner event."""
    request_metadata: dict[str, str] = field(default_factory=dict)
    """Metadata for this one Dapr request (e.g. a Redis binding's `key`), over the output's."""


class OutputSender(Protocol):
    async def send(self, message: OutgoingMessage, invocation: "Invocation") -> bytes | None:
        """Deliver `message`; return the binding's response data, if any."""


class StateStores(Protocol):
    async def get(self, store: str, key: str) -> bytes | None: ...

    async def save(self, store: str, key: str, value: Any) -> None: ...

    async def delete(self, store: str, key: str) -> None: ...


class NoSidecarSender:
    """The sender used when outputs exist but no Dapr client can be made."""

    def __init__(self, reason: str, hint: str) -> None:
        self.reason = reason
        self.hint = hint

    async def send(self, message: OutgoingMessage, invocation: "Invocation") -> bytes | None:
        raise DaprUnavailableError(
            f"cannot send to output {message.output.name!r}: no Dapr sidecar is reachable",
            self.reason,
            self.hint,
        )


@dataclass
class Services:
    """Process-wide services shared by all invocations."""

    sender: OutputSender
    states: StateStores | None = None
    loop: asyncio.AbstractEventLoop | None = None


def encode_payload(data: Any) -> bytes:
    if isinstance(data, (bytes, bytearray, memoryview)):
        return bytes(data)
    if isinstance(data, str):
        return data.encode()
    return json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode()


class Context:
    """The OpenFunction context of one invocation."""

    __slots__ = ("_invocation", "_services", "_loop_thread")

    def __init__(self, invocation: "Invocation", services: Services) -> None:
        self._invocation = invocation
        self._services = services
        self._loop_thread = threading.get_ident()

    # what the function is and what started it
    @property
    def name(self) -> str:
        return self._invocation.config.name

    @property
    def config(self) -> FunctionConfig:
        return self._invocation.config

    @property
    def runtime(self) -> Runtime:
        return self._invocation.config.runtime

    @property
    def input_name(self) -> str:
        return self._invocation.input_name

    @property
    def event(self) -> Any:
        """The raw event: a Dapr binding/topic event, a CloudEvent, or None for plain HTTP."""
        return self._invocation.event

    @property
    def request(self) -> "Request | None":
        return self._invocation.request

    @property
    def outputs(self) -> Mapping[str, Component]:
        return self._invocation.config.outputs

    @property
    def invocation(self) -> "Invocation":
        return self._invocation

    # outputs
    async def send_async(
        self,
        data: Any,
        output: str | None = None,
        *,
        raw: bool = False,
        metadata: Mapping[str, str] | None = None,
    ) -> Any:
        """Send `data` to the output named `output`, or to every output.

        `metadata` is added to this request's metadata, over the output's own (for
        example `{"key": "order-42"}` for a `bindings.redis` output). Returns the binding's
        response data for one output, or a dict of output name to response data when sending
        to all of them.
        """
        targets = self._targets(output)
        payload = encode_payload(data)
        results: dict[str, bytes | None] = {}
        for component in targets:
            message = OutgoingMessage(
                output=component, data=payload, raw=raw, request_metadata=dict(metadata or {})
            )
            plugins = self._invocation.plugins
            if plugins is not None:
                await plugins.on_send(self._invocation, message)
            results[component.name] = await self._services.sender.send(message, self._invocation)
        return results[targets[0].name] if output is not None else results

    def send(
        self,
        data: Any,
        output: str | None = None,
        *,
        raw: bool = False,
        metadata: Mapping[str, str] | None = None,
    ) -> Any:
        """Blocking `send_async`, for `def` functions (they run in a worker thread)."""
        loop = self._services.loop
        if loop is None or threading.get_ident() == self._loop_thread:
            raise RuntimeError(
                "ctx.send() blocks and cannot run on the event loop; "
                "in an async function use `await ctx.send_async(...)`"
            )
        future = asyncio.run_coroutine_threadsafe(
            self.send_async(data, output, raw=raw, metadata=metadata), loop
        )
        return future.result()

    def _targets(self, output: str | None) -> list[Component]:
        outputs = self._invocation.config.outputs
        if not outputs:
            raise OutputError(
                f"function {self.name!r} has no outputs to send to",
                "FUNC_CONTEXT lists no outputs.",
                "declare an output in the Function CR (spec.serving.outputs) "
                "or in FUNC_CONTEXT.outputs",
            )
        if output is None:
            return list(outputs.values())
        if output not in outputs:
            raise OutputError(
                f"unknown output {output!r}",
                f"the outputs of {self.name!r} are: {', '.join(sorted(outputs))}.",
                "pass one of these names to ctx.send",
            )
        return [outputs[output]]

    # state
    @property
    def states(self) -> StateStores:
        stores = self._services.states
        if stores is None or not self._invocation.config.states:
            raise OutputError(
                f"function {self.name!r} has no state stores",
                "FUNC_CONTEXT lists no states.",
                "declare a state store in the Function CR (spec.serving.states)",
            )
        return stores
