"""From a Dapr event to one invocation of the function, and back to an outcome.

Shared by the gRPC and the HTTP app protocol: the transport decodes what daprd sent,
the dispatcher finds the input, unwraps an inner event, runs the function through the
runner (plugins included) and says what to answer: SUCCESS, RETRY or DROP.

It also counts events in flight so that shutdown can wait for them, and refuses new
events once shutdown began (they are answered RETRY: Dapr delivers them again later).
Events still running when the grace period ran out are cancelled and answered RETRY.

A message reaches the input subscribed to its topic; when there is none, an input whose
topic is an MQTT topic filter matching it (`sensors/+`, `sensors/#`: daprd delivers a
wildcard subscription's messages with their own topic).
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
from openfunction.loader import user_traceback
from openfunction.runner import being_cancelled

if TYPE_CHECKING:
    from openfunction.runner import FunctionRunner

logger = logging.getLogger("openfunction.dapr")

SEND_DRAIN_TIMEOUT = 60.0
STOP_ANSWER_TIMEOUT = 1.0
"""Seconds `drain` waits, once the grace period ran out, for the events it cancelled to be
answered RETRY (before the server closes the calls)."""

NO_REDELIVERY_BINDINGS = frozenset({"bindings.cron"})
"""Input bindings that ignore an error answer: the event is not delivered again."""

SINGLE_LEVEL, MULTI_LEVEL = "+", "#"


def is_topic_filter(topic: str) -> bool:
    """Whether `topic` has MQTT wildcards (`+` one level, `#` all the levels below)."""
    return SINGLE_LEVEL in topic or MULTI_LEVEL in topic


def topic_matches(topic_filter: str, topic: str) -> bool:
    """Whether the MQTT topic filter `topic_filter` matches `topic` (MQTT 3.1.1, 4.7)."""
    if topic.startswith("$") and topic_filter[:1] in (SINGLE_LEVEL, MULTI_LEVEL):
        return False  # $SYS/... is not matched by a filter starting with a wildcard
    levels = topic.split("/")
    pattern = topic_filter.split("/")
    for index, part in enumerate(pattern):
        if part == MULTI_LEVEL:
            return index == len(pattern) - 1  # "a/#" matches "a" and everything below
        if index >= len(levels):
            return False
        if part != SINGLE_LEVEL and part != levels[index]:
            return False
    return len(levels) == len(pattern)


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

    def topic_input(self, pubsub: str, topic: str) -> Component | None:
        """The input reading `topic` of `pubsub`: the one subscribed to that topic, else the
        first (in FUNC_CONTEXT order) whose topic is an MQTT filter matching it."""
        exact = self.topics.get((pubsub, topic))
        if exact is not None:
            return exact
        for (name, subscribed), component in self.topics.items():
            if name == pubsub and is_topic_filter(subscribed) and topic_matches(subscribed, topic):
                return component
        return None

    def topic_input_named(self, input_name: str) -> Component | None:
        """The topic input called `input_name` in FUNC_CONTEXT.inputs."""
        for component in self.topics.values():
            if component.name == input_name:
                return component
        return None


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


def _describe_input(component: Component) -> str:
    if component.is_pubsub:
        return f"{component.name} (topic {component.topic!r} of {component.component_name!r})"
    return f"{component.name} (binding {component.component_name!r})"


def _redelivery(input_: Component) -> str:
    """What becomes of an event of `input_` that was not acknowledged (see daprd: an error
    answer to a binding event goes back to the binding component, which may ignore it)."""
    if input_.is_pubsub:
        return "Dapr delivers it again"
    policy = f"a resiliency inbound retry policy on {input_.component_name!r}"
    if input_.component_type in NO_REDELIVERY_BINDINGS:
        return (f"the {input_.component_type} binding ignores the error: the event is not "
                f"delivered again (unless {policy} calls the function again)")
    return (f"the {input_.component_type} binding delivers the event again if it redelivers "
            f"failed events ({policy} also calls the function again)")


def _uncancel(task: "asyncio.Task[Any]") -> None:
    uncancel = getattr(task, "uncancel", None)  # Python 3.11+
    if uncancel is not None:
        uncancel()


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
        self._running: set[asyncio.Task[Any]] = set()
        """The tasks running an event (one event at a time each)."""
        self._stopped: set[asyncio.Task[Any]] = set()
        """Tasks `drain` cancelled: their event is answered RETRY."""
        self._unfinished = 0
        """Events `drain` cancelled that were answered RETRY."""
        self._ids = itertools.count(1)
        self._id_prefix = f"{os.getpid():x}-"

    @property
    def in_flight(self) -> int:
        """Events the function has not finished: running, or cancelled by `drain` once the
        grace period ran out (answered RETRY; a `def` function may still run in its thread)."""
        return self._in_flight + self._unfinished

    # -------------------------------------------------------------- events

    async def binding_event(
        self, component: str, data: bytes, metadata: Mapping[str, str] | None = None
    ) -> tuple[Outcome, str]:
        """Run the function for an input binding's event."""
        source = self.subscriptions.bindings.get(component)
        if source is None:
            return self._unknown(f"binding {component!r}", self.subscriptions.bindings.values())
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
        input_name: str = "",
    ) -> tuple[Outcome, str]:
        """Run the function for a topic's message.

        `input_name`: the input the transport already knows the message is for (the HTTP
        route of its subscription); else it is the input reading `topic` of `pubsub`.
        """
        if input_name:
            input_ = self.subscriptions.topic_input_named(input_name)
            what = f"input {input_name!r}"
        else:
            input_ = self.subscriptions.topic_input(pubsub, topic)
            what = f"topic {topic!r} of {pubsub!r}"
        if input_ is None:
            return self._unknown(what, self.subscriptions.topics.values())
        event = TopicEvent(
            input=input_.name, pubsub=pubsub, topic=topic, data=bytes(data), id=id,
            source=source, type=type, spec_version=spec_version,
            data_content_type=data_content_type, path=path,
            extensions=MappingProxyType(dict(extensions or {})), metadata=_str_map(metadata),
        )
        return await self._dispatch(TOPIC, input_, event, event.data, data_content_type,
                                    id or f"{self._id_prefix}{next(self._ids)}")

    def _unknown(self, what: str, known: Iterable[Component]) -> tuple[Outcome, str]:
        inputs = ", ".join(sorted(_describe_input(c) for c in known)) or "none"
        reason = f"no input of this function reads {what} (inputs: {inputs})"
        logger.error("event dropped: %s", reason)
        return Outcome.DROP, reason

    async def _dispatch(self, trigger: str, input_: Component, event: Any, raw: bytes,
                        content_type: str, request_id: str) -> tuple[Outcome, str]:
        if self.closing:
            return Outcome.RETRY, "the function is shutting down"
        task = asyncio.current_task()
        self._in_flight += 1
        if task is not None:
            self._running.add(task)
        try:
            invocation = self.invocation(trigger, input_, event, raw, content_type, request_id)
            await self.runner.run(invocation)
            await self._finish_sends(invocation)
            outcome, reason = outcome_of(invocation)
        except asyncio.CancelledError as exc:
            if task is not None and task in self._stopped:
                # cancelled by `drain`: answered, so that daprd is told before the server stops
                self._stopped.discard(task)
                _uncancel(task)
                self.cancelled += 1
                self._unfinished += 1
                outcome = Outcome.RETRY
                reason = "cancelled: still running when the grace period ran out"
            elif being_cancelled(task):
                # daprd gave up on the call (a resiliency timeout, its shutdown) or the server stops
                self.cancelled += 1
                logger.warning("event %s from input %r cancelled before the function finished "
                               "(daprd gave up on the call, or the server is stopping): not "
                               "acknowledged; %s", request_id, input_.name, _redelivery(input_))
                raise
            else:  # raised by user code the runner does not catch itself (a plugin's hook)
                logger.error("event %s from input %r: CancelledError raised although the event "
                             "was not cancelled\n%s", request_id, input_.name,
                             user_traceback(exc))
                outcome, reason = Outcome.RETRY, "CancelledError raised, the event was not cancelled"
        except Exception as exc:  # noqa: BLE001 - never lose an event to a framework bug
            logger.exception("event %s from input %r could not be handled", request_id, input_.name)
            outcome, reason = Outcome.RETRY, f"internal error: {type(exc).__name__}: {exc}"
        finally:
            self._in_flight -= 1
            if task is not None:
                self._running.discard(task)
                self._stopped.discard(task)
            if self._in_flight == 0 and self._idle is not None:
                self._idle.set()
        if outcome is Outcome.RETRY:
            if input_.is_pubsub:
                logger.warning("event %s from input %r will be delivered again: %s",
                               request_id, input_.name, reason)
            else:
                logger.warning("event %s from input %r failed: %s; answered with an error: %s",
                               request_id, input_.name, reason, _redelivery(input_))
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
        """The inner event `raw` carries, if any. JSON nested too deeply to decode
        (RecursionError) is malformed like invalid JSON: the payload is taken as it is."""
        if isinstance(event, TopicEvent) and innerevent.is_inner_event_type(event.type):
            # published as a CloudEvent itself: Dapr kept it as the envelope
            try:
                payload = json.loads(raw) if raw else None
                return innerevent.from_envelope_data(payload, {"id": event.id, "type": event.type,
                                                               "source": event.source})
            except (ValueError, UnicodeDecodeError, RecursionError):
                return innerevent.InnerEvent(raw, {}, {})
        try:
            return innerevent.unwrap(raw)
        except RecursionError:
            return None

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
            await self._stop_running()
            return False
        return True

    async def _stop_running(self) -> None:
        """Cancel the events still running and wait (`STOP_ANSWER_TIMEOUT`) for each to be
        answered RETRY (not acknowledged): daprd is told before the server closes the calls,
        and no call is left for the loop to cancel as it ends."""
        stopped = [task for task in self._running if not task.done()]
        for task in stopped:
            self._stopped.add(task)
            task.cancel()
        if stopped:
            await asyncio.wait(stopped, timeout=STOP_ANSWER_TIMEOUT)

    def describe(self) -> Iterable[str]:
        for name, component in self.subscriptions.bindings.items():
            yield f"input {component.name!r}: binding {name} ({component.component_type})"
        for (pubsub, topic), component in self.subscriptions.topics.items():
            yield f"input {component.name!r}: topic {topic!r} of {pubsub} ({component.component_type})"
