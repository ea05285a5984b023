"""`ctx.send` over Dapr: bindings through `InvokeBinding`, topics through `PublishEvent`.

    binding output:  InvokeBinding(name=componentName, operation=operation or "create",
                                   data=payload, metadata=output metadata)
    topic output:    PublishEvent(pubsub_name=componentName, topic=uri, data=payload,
                                  metadata=output metadata)

With tracing on, a payload for a pub/sub or queue-like binding is wrapped in an inner
event carrying the trace context (`openfunction.dapr.innerevent`); otherwise it is sent
as it is. Used by both runtimes: events of an Async function and requests of a Knative
function (the sync-to-async bridge) share one connection per process.
"""

from __future__ import annotations

import asyncio
import json
from typing import TYPE_CHECKING

from openfunction.config import FunctionConfig
from openfunction.context import PENDING_SENDS, OutgoingMessage
from openfunction.dapr import innerevent
from openfunction.dapr.connection import DaprConnection
from openfunction.dapr.outcome import SEND_FAILURES
from openfunction.errors import OutputError
from openfunction.invocation import BINDING, TOPIC

if TYPE_CHECKING:
    from openfunction.invocation import Invocation

DEFAULT_OPERATION = "create"
# PENDING_SENDS (from openfunction.context): what the dispatcher waits for before answering


def content_type_of(payload: bytes) -> str:
    """The content type a raw payload is published with."""
    if not payload:
        return "text/plain"
    if payload[:1] in b'{["-0123456789tfn' or payload[:1].isspace():
        try:
            json.loads(payload)
            return "application/json"
        except (ValueError, UnicodeDecodeError, RecursionError):
            pass  # not JSON, or nested deeper than Python's parser goes: labelled as text
    try:
        payload.decode()
        return "text/plain"
    except UnicodeDecodeError:
        return "application/octet-stream"


class DaprSender:
    """The `OutputSender` of functions that have a Dapr sidecar."""

    def __init__(self, config: FunctionConfig, connection: DaprConnection) -> None:
        self.config = config
        self.connection = connection

    def wraps(self, message: OutgoingMessage) -> bool:
        return (not message.raw and self.config.tracing_enabled
                and innerevent.traceable(message.output))

    def payload(self, message: OutgoingMessage, invocation: "Invocation") -> tuple[bytes, bool]:
        """The bytes to send, and whether they are an inner event."""
        if not self.wraps(message):
            return message.data, False
        metadata: dict[str, str] = {}
        if invocation.trigger in (BINDING, TOPIC):
            # the incoming inner event's metadata, as the Go framework merges it
            metadata.update(invocation.carrier)
        metadata.update(message.metadata)
        return innerevent.wrap(self.config, message.data, metadata), True

    async def send(self, message: OutgoingMessage, invocation: "Invocation") -> bytes | None:
        # `ctx.send_async` registered its task already; this covers the blocking `ctx.send`
        pending = invocation.state.setdefault(PENDING_SENDS, set())
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        pending.add(done)
        try:
            return await self._deliver(message, invocation)
        except BaseException as exc:
            invocation.state.setdefault(SEND_FAILURES, []).append(exc)
            raise
        finally:
            pending.discard(done)
            done.set_result(None)

    async def _deliver(self, message: OutgoingMessage, invocation: "Invocation") -> bytes | None:
        output = message.output
        payload, wrapped = self.payload(message, invocation)
        metadata = dict(output.metadata)
        if not wrapped:
            metadata.update(message.metadata)
        metadata.update(message.request_metadata)
        if output.is_binding:
            return await self.connection.invoke_binding(
                output.component_name, output.operation or DEFAULT_OPERATION, payload, metadata
            )
        if output.is_pubsub:
            if not output.topic:
                raise OutputError(
                    f"output {output.name!r} has no topic",
                    f"it is a {output.component_type} output without a topic.",
                    f"set FUNC_CONTEXT.outputs.{output.name}.uri (or topic) to the topic name",
                )
            content_type = "application/json" if wrapped else content_type_of(payload)
            await self.connection.publish_event(
                output.component_name, output.topic, payload, content_type, metadata
            )
            return None
        raise OutputError(
            f"output {output.name!r} has an unsupported type {output.component_type!r}",
            "outputs are Dapr bindings (bindings.*) or pub/sub components (pubsub.*).",
            f"fix FUNC_CONTEXT.outputs.{output.name}.componentType",
        )
