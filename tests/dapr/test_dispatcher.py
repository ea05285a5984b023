"""Inputs, outcomes and draining, independent of the transport."""

import asyncio
import gc
import logging

import pytest

from dapr_doubles import run
from openfunction.config import Component, FunctionConfig, Runtime
from openfunction.dapr.dispatcher import EventDispatcher, Subscriptions, topic_matches
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


# ---------------------------------------------------------------- MQTT wildcard topics


@pytest.mark.parametrize("topic_filter,topic,expected", [
    ("sensors/+", "sensors/a", True),
    ("sensors/+", "sensors/a/b", False),
    ("sensors/+", "sensors", False),
    ("sensors/+", "sensors/", True),            # an empty level is a level
    ("sensors/#", "sensors", True),             # "#" also matches the parent level
    ("sensors/#", "sensors/a/b/c", True),
    ("sensors/#", "sensorsX/a", False),
    ("+/temp", "kitchen/temp", True),
    ("+/temp", "kitchen/humidity", False),
    ("+/+/#", "a/b", True),
    ("#", "anything/at/all", True),
    ("#", "$SYS/broker", False),                # $-topics are not matched by a leading wildcard
    ("$SYS/#", "$SYS/broker", True),
    ("sensors/#/x", "sensors/a/x", False),      # "#" only last: not a valid filter
])
def test_mqtt_topic_filters(topic_filter, topic, expected):
    assert topic_matches(topic_filter, topic) is expected


def test_a_topic_reaches_its_exact_subscription_first_then_a_matching_wildcard_one():
    subs = Subscriptions.from_config(config(
        any=Component("any", "mq", "pubsub.mqtt3", "sensors/#"),
        one=Component("one", "mq", "pubsub.mqtt3", "sensors/+"),
        kitchen=Component("kitchen", "mq", "pubsub.mqtt3", "sensors/kitchen"),
        other=Component("other", "bus", "pubsub.redis", "orders")))
    assert subs.topic_input("mq", "sensors/kitchen").name == "kitchen"
    assert subs.topic_input("mq", "sensors/a").name == "any"   # the first declared that matches
    assert subs.topic_input("mq", "sensors/a/b").name == "any"
    assert subs.topic_input("bus", "sensors/a") is None         # another component's topic
    assert subs.topic_input("mq", "orders") is None
    assert subs.topic_input_named("one").topic == "sensors/+"


class RecordingRunner:
    def __init__(self, fail=None):
        self.invocations = []
        self.fail = fail

    async def run(self, invocation):
        self.invocations.append(invocation)
        if self.fail is not None:
            raise self.fail


def test_a_message_on_a_wildcard_subscription_is_delivered_with_its_own_topic(caplog):
    runner = RecordingRunner()
    dispatcher = EventDispatcher(
        config(sensors=Component("sensors", "mq", "pubsub.mqtt3", "sensors/+")), runner)
    outcome, _ = run(dispatcher.topic_event("mq", "sensors/a", b'{"t":21}', id="m1"))
    assert outcome is Outcome.SUCCESS
    invocation = runner.invocations[0]
    assert invocation.input.name == "sensors" and invocation.data == {"t": 21}
    assert invocation.event.topic == "sensors/a"
    with caplog.at_level(logging.ERROR, "openfunction.dapr"):
        outcome, reason = run(dispatcher.topic_event("mq", "other/a", b"x"))
    assert outcome is Outcome.DROP
    assert "topic 'other/a' of 'mq'" in reason and "sensors (topic 'sensors/+' of 'mq')" in reason
    assert reason in caplog.text


# ---------------------------------------------------------------- cancellation


class CancellingRunner:
    """The function raises a CancelledError of its own (a future it cancelled), and the
    runner lets it through, as runners that do not tell the two apart do."""

    async def run(self, invocation):
        future = asyncio.get_running_loop().create_future()
        future.cancel()
        await future


def cron_dispatcher(runner, ctype="bindings.cron"):
    return EventDispatcher(config(ticks=Component("ticks", "cron", ctype, "")), runner)


def test_a_cancelled_error_the_function_raised_itself_is_its_failure(caplog):
    dispatcher = cron_dispatcher(CancellingRunner())

    async def main():
        return await asyncio.wait_for(dispatcher.binding_event("cron", b"1"), 5)

    with caplog.at_level(logging.WARNING, "openfunction.dapr"):
        outcome, reason = run(main())
    assert outcome is Outcome.RETRY and "CancelledError" in reason
    assert dispatcher.cancelled == 0 and dispatcher.in_flight == 0
    failure = next(r for r in caplog.records if r.levelno == logging.ERROR)
    assert "input 'ticks'" in failure.getMessage()
    assert "await future" in failure.getMessage()  # the function's traceback


def test_a_real_function_raising_cancelled_error_is_answered_retry(make_function):
    fn = make_function("""
        import asyncio

        async def handler(ctx, data):
            task = asyncio.ensure_future(asyncio.sleep(10))
            await asyncio.sleep(0)
            task.cancel()
            await task
    """, {"name": "f", "runtime": "Async", "port": "8080",
          "inputs": {"ticks": {"componentName": "cron", "componentType": "bindings.cron"}}})
    dispatcher = EventDispatcher(fn.config, fn.runner)
    try:
        outcome, reason = run(asyncio.wait_for(dispatcher.binding_event("cron", b"1"), 5))
    finally:
        fn.runner.close()
    assert outcome is Outcome.RETRY and "CancelledError" in reason
    assert dispatcher.cancelled == 0


def test_an_event_cancelled_by_daprd_is_logged_and_not_acknowledged(caplog):
    runner = SlowRunner()

    async def main():
        runner.release = asyncio.Event()
        dispatcher = EventDispatcher(
            config(jobs=Component("jobs", "bus", "pubsub.redis", "jobs")), runner)
        call = asyncio.ensure_future(dispatcher.topic_event("bus", "jobs", b"1", id="ev-7"))
        await asyncio.sleep(0.01)
        call.cancel()  # what grpc does when daprd closes the call
        with pytest.raises(asyncio.CancelledError):
            await call
        return dispatcher

    with caplog.at_level(logging.WARNING, "openfunction.dapr"):
        dispatcher = run(main())
    assert dispatcher.cancelled == 1 and dispatcher.in_flight == 0
    [line] = [r.getMessage() for r in caplog.records]
    assert "event ev-7 from input 'jobs' cancelled" in line and "delivers it again" in line


def test_events_past_the_grace_period_are_cancelled_and_answered_retry(caplog):
    async def main():
        runner = SlowRunner()
        runner.release = asyncio.Event()
        dispatcher = EventDispatcher(
            config(jobs=Component("jobs", "bus", "pubsub.redis", "jobs")), runner)
        call = asyncio.ensure_future(dispatcher.topic_event("bus", "jobs", b"1", id="ev-8"))
        await asyncio.sleep(0.01)
        assert await dispatcher.drain(0.05) is False
        assert call.done()  # answered before drain returned
        assert dispatcher.in_flight == 1  # still counted: the function did not finish
        return dispatcher, await call

    with caplog.at_level(logging.WARNING, "openfunction.dapr"):
        dispatcher, (outcome, reason) = run(main())
    assert outcome is Outcome.RETRY and "grace period" in reason
    assert dispatcher.cancelled == 1
    assert "event ev-8 from input 'jobs' will be delivered again" in caplog.text


class FailingRunner:
    async def run(self, invocation):
        invocation.error = ValueError("boom")


def test_a_failed_cron_event_is_not_said_to_be_delivered_again(caplog):
    with caplog.at_level(logging.WARNING, "openfunction.dapr"):
        run(cron_dispatcher(FailingRunner()).binding_event("cron", b"1"))
        run(cron_dispatcher(FailingRunner(), "bindings.kafka").binding_event("cron", b"1"))
    cron, kafka = [r.getMessage() for r in caplog.records]
    assert "delivered again" not in cron.replace("not delivered again", "")
    assert "failed: the function raised ValueError: boom" in cron
    assert "the bindings.cron binding ignores the error: the event is not delivered again" in cron
    assert "resiliency inbound retry policy on 'cron'" in cron
    assert "bindings.kafka binding delivers the event again if it redelivers" in kafka


# ---------------------------------------------------------------- what the function returns

@pytest.mark.parametrize("result,expected,why", [
    (Drop, Outcome.DROP, "no reason given"),
    (Retry, Outcome.RETRY, "asked for a retry"),
])
def test_the_verdict_classes_count_like_their_instances(result, expected, why):
    outcome, reason = outcome_of(Invocation(config(), TOPIC, result=result))
    assert outcome is expected and why in reason


def test_a_coroutine_returned_is_a_failure(recwarn):
    async def forgot():
        return 1

    coroutine = forgot()
    outcome, reason = outcome_of(Invocation(config(), TOPIC, result=coroutine))
    assert outcome is Outcome.RETRY
    assert reason == "the function returned a coroutine: did you forget await?"
    assert coroutine.cr_frame is None  # closed: no "never awaited" warning later
    del coroutine
    gc.collect()
    assert not [w for w in recwarn if "never awaited" in str(w.message)]


def test_a_send_returned_without_await_is_a_send_not_a_failure():
    from openfunction.context import PendingSend
    from openfunction.dapr.outcome import SEND_FAILURES

    async def deliver():
        return None

    async def returned(fails):
        invocation = Invocation(config(), TOPIC)
        invocation.result = PendingSend(invocation, deliver, "ctx.send_async() to output 'o'")
        await invocation.result
        if fails:
            invocation.state[SEND_FAILURES] = [RuntimeError("down")]
        return outcome_of(invocation)

    assert asyncio.run(returned(False)) == (Outcome.SUCCESS, "")
    outcome, reason = asyncio.run(returned(True))
    assert outcome is Outcome.RETRY and "send(s) to outputs failed" in reason


def test_an_error_without_message_is_named_cleanly():
    outcome, reason = outcome_of(Invocation(config(), TOPIC, error=asyncio.CancelledError()))
    assert (outcome, reason) == (Outcome.RETRY, "the function raised CancelledError")


# ---------------------------------------------------------------- payloads too deep to decode

DEEP = b"[" * 100_000 + b"]" * 100_000


def test_json_nested_too_deeply_is_delivered_as_bytes():
    runner = RecordingRunner()
    dispatcher = EventDispatcher(config(
        ticks=Component("ticks", "cron", "bindings.cron", ""),
        jobs=Component("jobs", "bus", "pubsub.redis", "jobs")), runner)
    envelope = b'{"specversion":"1.0","type":"io.openfunction.function.x","data":' + DEEP + b"}"
    results = [
        run(dispatcher.binding_event("cron", DEEP)),
        run(dispatcher.topic_event("bus", "jobs", DEEP, data_content_type="application/json")),
        run(dispatcher.topic_event("bus", "jobs", envelope)),  # looks like an inner event
        # an inner event published as the CloudEvent itself
        run(dispatcher.topic_event("bus", "jobs", DEEP, type="io.openfunction.function.x",
                                   data_content_type="application/json")),
    ]
    assert [outcome for outcome, _ in results] == [Outcome.SUCCESS] * 4
    assert [i.data for i in runner.invocations] == [DEEP, DEEP, envelope, DEEP]
