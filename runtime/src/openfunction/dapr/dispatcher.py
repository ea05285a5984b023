"""From a Dapr event to one invocation of the function, and back to an outcome.

Shared by the gRPC and the HTTP app protocol: the transport decodes what daprd sent,
the dispatcher finds the input, unwraps an inner event, runs the function through the
runner (plugins included) and says what to answer: SUCCESS, RETRY or DROP.

It also counts events in flight so that shutdown can wait for them, and refuses new
events once shutdown began (they are answered RETRY: Dapr delivers them again later).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import os
from dataclasses import dataclass
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Iterable, Mapping

from openfunction.config import Component, FunctionConfig
from openfunction.dapr import innerevent
from openfunction.dapr.events import BindingEvent, TopicEvent, decode_data
from openfunction.dapr.outcome import Outcome, outcome_of
from openfunction.dapr.sender import PENDING_SENDS
from openfunction.errors import ConfigError
from openfunction.invocation import BINDING, TOPIC, Invocation

if TYPE_CHECKING:
    from openfunction.runner import FunctionRunner

logger = logging.getLogger("openfunction.dapr")

SEND_DRAIN_TIMEOUT = 60.0


@dataclass(frozen=True)
class Subscriptions:
    """The inputs of the function, indexed as daprd names them."""

    bindings: Mapping[str, Component]
    """binding component name -> input"""
    topics: Mapping[tuple[str, str], Component]
    """(pub/sub component name, topic) -> input"""

    @classmethod
    def from_config(cls, config: FunctionConfig) -> "Subscriptions":
        bindings: dict[str, Component] = {}
        topics: dict[tuple[str, str], Component] = {}
        for name, component in config.inputs.items():
            where = f"FUNC_CONTEXT.inputs.{name}"
            if component.is_binding:
                other = bindings.get(component.component_name)
                if other is not None:
                    raise ConfigError(
                        f"inputs {other.name!r} and {name!r} read the same binding "
                        f"{component.component_name!r}",
                        "Dapr delivers a binding's events to one handler.",
                        "keep one of the two inputs",
                    )
                bindings[component.component_name] = component
            elif component.is_pubsub:
                if not component.topic:
                    raise ConfigError(
                        f"{where} has no topic",
                        f"it is a {component.component_type} input; a subscription needs a topic.",
                        f"set {where}.uri (or topic) to the topic name",
                    )
                key = (component.component_name, component.topic)
                other = topics.get(key)
                if other is not None:
                    raise ConfigError(
                        f"inputs {other.name!r} and {name!r} subscribe to the same topic "
                        f"{component.topic!r} of {component.component_name!r}",
                        "Dapr allows one subscription per topic and pub/sub component.",
                        "keep one of the two inputs",
                    )
                topics[key] = component
            else:
                raise ConfigError(
                    f"{where}.componentType is invalid: {component.component_type!r}",
                    "an input is a binding (bindings.*) or a pub/sub topic (pubsub.*).",
                    "use the Dapr component's type",
                )
        if not bindings and not topics:
            raise ConfigError(
                "the Async runtime has no inputs to serve",
                "FUNC_CONTEXT.inputs is empty, so no event could ever reach the function.",
                "declare an input (spec.serving.triggers.dapr in the Function CR), "
                'or run it as a sync function ("runtime": "Knative")',
            )
        return cls(MappingProxyType(bindings), MappingProxyType(topics))


DEAD_LETTER_KEY = "deadLetterTopic"


def subscription_of(component: Component) -> tuple[dict[str, str], str]:
    """(subscription metadata, dead-letter topic) of a topic input.

    The input's metadata becomes the subscription's (`rawPayload`, ...), except
    `deadLetterTopic`, which names the topic dropped messages go to.
    """
    metadata = dict(component.metadata)
    return metadata, metadata.pop(DEAD_LETTER_KEY, "")


def _str_map(value: Mapping[str, Any] | None) -> Mapping[str, str]:
    return MappingProxyType({str(k): str(v) for k, v in (value or {}).items()})


class EventDispatcher:
    def __init__(self, config: FunctionConfig, runner: "FunctionRunner",
                 subscriptions: Subscriptions | None = None) -> None:
        self.config = config
        self.runner = runner
        self.subscriptions = subscriptions or Subscriptions.from_config(config)
        self.closing = False
        self.cancelled = 0
        """Events cancelled unfinished (by daprd, or by shutdown past the grace period)."""
        self._in_flight = 0
        self._idle: asyncio.Event | None = None
        self._ids = itertools.count(1)
        self._id_prefix = f"{os.getpid():x}-"

    @property
    def in_flight(self) -> int:
        return self._in_flight

    # -------------------------------------------------------------- events

    async def binding_event(
        self, component: str, data: bytes, metadata: Mapping[str, str] | None = None
    ) -> tuple[Outcome, str]:
        """Run the function for an input binding's event."""
        source = self.subscriptions.bindings.get(component)
        if source is None:
            return self._unknown(f"binding {component!r}", self.subscriptions.bindings)
        event = BindingEvent(source.name, component, bytes(data), _str_map(metadata))
        return await self._dispatch(BINDING, source, event, event.data, event.content_type,
                                    f"{self._id_prefix}{next(self._ids)}")

    async def topic_event(
        self,
        pubsub: str,
        topic: str,
        data: bytes,
        *,
        id: str = "",
        source: str = "",
        type: str = "",
        spec_version: str = "",
        data_content_type: str = "",
        path: str = "",
        extensions: Mapping[str, Any] | None = None,
        metadata: Mapping[str, str] | None = None,
    ) -> tuple[Outcome, str]:
        """Run the function for a topic's message."""
        input_ = self.subscriptions.topics.get((pubsub, topic))
        if input_ is None:
            return self._unknown(f"topic {topic!r} of {pubsub!r}",
                                 {f"{p}/{t}": c for (p, t), c in self.subscriptions.topics.items()})
        event = TopicEvent(
            input=input_.name, pubsub=pubsub, topic=topic, data=bytes(data), id=id,
            source=source, type=type, spec_version=spec_version,
            data_content_type=data_content_type, path=path,
            extensions=MappingProxyType(dict(extensions or {})), metadata=_str_map(metadata),
        )
        return await self._dispatch(TOPIC, input_, event, event.data, data_content_type,
                                    id or f"{self._id_prefix}{next(self._ids)}")

    def _unknown(self, what: str, known: Mapping[str, Component]) -> tuple[Outcome, str]:
        reason = (f"no input of this function reads {what} (inputs: "
                  f"{', '.join(sorted(c.name for c in known.values())) or 'none'})")
        logger.error("event dropped: %s", reason)
        return Outcome.DROP, reason

    async def _dispatch(self, trigger: str, input_: Component, event: Any, raw: bytes,
                        content_type: str, request_id: str) -> tuple[Outcome, str]:
        if self.closing:
            return Outcome.RETRY, "the function is shutting down"
        self._in_flight += 1
        try:
            invocation = self.invocation(trigger, input_, event, raw, content_type, request_id)
            await self.runner.run(invocation)
            await self._finish_sends(invocation)
            outcome, reason = outcome_of(invocation)
        except asyncio.CancelledError:
            # not acknowledged, so Dapr delivers it again
            self.cancelled += 1
            raise
        except Exception as exc:  # noqa: BLE001 - never lose an event to a framework bug
            logger.exception("event %s from input %r could not be handled", request_id, input_.name)
            outcome, reason = Outcome.RETRY, f"internal error: {type(exc).__name__}: {exc}"
        finally:
            self._in_flight -= 1
            if self._in_flight == 0 and self._idle is not None:
                self._idle.set()
        if outcome is Outcome.RETRY:
            logger.warning("event %s from input %r will be delivered again: %s",
                           request_id, input_.name, reason)
        elif outcome is Outcome.DROP:
            logger.warning("event %s from input %r dropped: %s", request_id, input_.name, reason)
        return outcome, reason

    def invocation(self, trigger: str, input_: Component, event: Any, raw: bytes,
                   content_type: str, request_id: str) -> Invocation:
        inner = self._inner_event(event, raw)
        if inner is not None:
            data = decode_data(inner.user_data)
            carrier = dict(inner.metadata)
        else:
            data = decode_data(raw, content_type)
            carrier = {}
        return Invocation(self.config, trigger, event=event, data=data, input=input_,
                          carrier=carrier, request_id=request_id)

    @staticmethod
    def _inner_event(event: Any, raw: bytes) -> innerevent.InnerEvent | None:
        if isinstance(event, TopicEvent) and innerevent.is_inner_event_type(event.type):
            # published as a CloudEvent itself: Dapr kept it as the envelope
            try:
                payload = json.loads(raw) if raw else None
            except (ValueError, UnicodeDecodeError):
                return innerevent.InnerEvent(raw, {}, {})
            return innerevent.from_envelope_data(payload, {"id": event.id, "type": event.type,
                                                           "source": event.source})
        return innerevent.unwrap(raw)

    async def _finish_sends(self, invocation: Invocation) -> None:
        pending = invocation.state.get(PENDING_SENDS)
        if pending:
            await asyncio.wait(list(pending), timeout=SEND_DRAIN_TIMEOUT)

    # -------------------------------------------------------------- shutdown

    async def drain(self, timeout: float) -> bool:
        """Refuse new events and wait for those in flight; True when none is left."""
        self.closing = True
        if self._in_flight == 0:
            return True
        self._idle = asyncio.Event()
        if self._in_flight == 0:
            return True
        try:
            await asyncio.wait_for(self._idle.wait(), timeout)
        except asyncio.TimeoutError:
            return False
        return True

    def describe(self) -> Iterable[str]:
        for name, component in self.subscriptions.bindings.items():
            yield f"input {component.name!r}: binding {name} ({component.component_type})"
        for (pubsub, topic), component in self.subscriptions.topics.items():
            yield f"input {component.name!r}: topic {topic!r} of {pubsub} ({component.component_type})"
