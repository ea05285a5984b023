"""Inputs, outcomes and draining, independent of the transport."""

import asyncio

import pytest

from dapr_doubles import run
from openfunction.config import Component, FunctionConfig, Runtime
from openfunction.dapr.dispatcher import EventDispatcher, Subscriptions
from openfunction.dapr.events import decode_data
from openfunction.dapr.outcome import Drop, Outcome, Retry, SEND_FAILURES, outcome_of
from openfunction.errors import ConfigError
from openfunction.invocation import TOPIC, Invocation


def config(**inputs):
    return FunctionConfig(name="fn", runtime=Runtime.ASYNC, inputs=inputs)


def test_no_inputs_is_a_clear_error():
    with pytest.raises(ConfigError, match="no inputs") as info:
        Subscriptions.from_config(config())
    assert "spec.serving.triggers.dapr" in str(info.value)


def test_topic_input_without_topic():
    with pytest.raises(ConfigError, match="inputs.bus has no topic"):
        Subscriptions.from_config(config(bus=Component("bus", "bus", "pubsub.redis", "")))


def test_duplicate_subscriptions_are_refused():
    with pytest.raises(ConfigError, match="same topic"):
        Subscriptions.from_config(config(
            a=Component("a", "bus", "pubsub.redis", "t"), b=Component("b", "bus", "pubsub.redis", "t")))
    with pytest.raises(ConfigError, match="same binding"):
        Subscriptions.from_config(config(
            a=Component("a", "cron", "bindings.cron", "cron"),
            b=Component("b", "cron", "bindings.cron", "cron")))


@pytest.mark.parametrize("result,error,expected", [
    ("ok", None, Outcome.SUCCESS),
    (None, ValueError("x"), Outcome.RETRY),
    (Retry("later"), None, Outcome.RETRY),
    (None, Retry("later"), Outcome.RETRY),
    (Drop("bad"), None, Outcome.DROP),
    (None, Drop("bad"), Outcome.DROP),
])
def test_outcome_of(result, error, expected):
    invocation = Invocation(config(), TOPIC, result=result, error=error)
    assert outcome_of(invocation)[0] is expected


def test_drop_wins_over_a_failed_send():
    invocation = Invocation(config(), TOPIC, result=Drop("give up"))
    invocation.state[SEND_FAILURES] = [RuntimeError("x")]
    assert outcome_of(invocation)[0] is Outcome.DROP


@pytest.mark.parametrize("raw,ctype,expected", [
    (b"", "", None), (b'{"a":1}', "", {"a": 1}), (b"12", "application/json", 12),
    (b"hi", "", b"hi"), (b"hi", "text/plain; charset=utf-8", "hi"),
    (b'{"a":1}', "text/plain", '{"a":1}'), (b"\xff", "text/plain", b"\xff"),
    (b"x", "application/octet-stream", b"x"), (b'{"a":1}', "application/cloudevents+json", {"a": 1}),
])
def test_decode_data(raw, ctype, expected):
    assert decode_data(raw, ctype) == expected


class SlowRunner:
    def __init__(self):
        self.release = None
        self.calls = 0

    async def run(self, invocation):
        self.calls += 1
        await self.release.wait()


def test_drain_waits_for_in_flight_and_refuses_new_events():
    async def main():
        runner = SlowRunner()
        runner.release = asyncio.Event()
        dispatcher = EventDispatcher(
            config(cron=Component("cron", "cron", "bindings.cron", "cron")), runner)
        first = asyncio.ensure_future(dispatcher.binding_event("cron", b"1"))
        await asyncio.sleep(0.01)
        assert dispatcher.in_flight == 1
        drain = asyncio.ensure_future(dispatcher.drain(5))
        await asyncio.sleep(0.01)
        late = await dispatcher.binding_event("cron", b"2")
        assert late[0] is Outcome.RETRY and "shutting down" in late[1]
        assert not drain.done()
        runner.release.set()
        assert (await first)[0] is Outcome.SUCCESS
        assert await drain is True
        assert runner.calls == 1

    run(main())


def test_drain_times_out():
    async def main():
        runner = SlowRunner()
        runner.release = asyncio.Event()
        dispatcher = EventDispatcher(
            config(cron=Component("cron", "cron", "bindings.cron", "cron")), runner)
        task = asyncio.ensure_future(dispatcher.binding_event("cron", b"1"))
        await asyncio.sleep(0.01)
        assert await dispatcher.drain(0.05) is False
        task.cancel()

    run(main())


class BrokenRunner:
    async def run(self, invocation):
        raise RuntimeError("framework bug")


def test_a_framework_error_never_acknowledges():
    dispatcher = EventDispatcher(
        config(cron=Component("cron", "cron", "bindings.cron", "cron")), BrokenRunner())
    outcome, reason = run(dispatcher.binding_event("cron", b"1"))
    assert outcome is Outcome.RETRY and "framework bug" in reason
