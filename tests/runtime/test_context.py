import asyncio
import gc

import pytest

from openfunction.config import Component, FunctionConfig
from openfunction.context import (
    PENDING_SENDS, Context, OutgoingMessage, PayloadError, Services, encode_payload,
)
from openfunction.errors import OutputError
from openfunction.invocation import HTTP, Invocation
from openfunction.plugins import Pipeline, Plugin

OUTPUTS = {
    "a": Component("a", "comp-a", "bindings.redis", "comp-a", operation="create"),
    "b": Component("b", "comp-b", "pubsub.redis", "topic-b"),
}


class FakeSender:
    def __init__(self):
        self.sent: list[OutgoingMessage] = []

    async def send(self, message, invocation):
        self.sent.append(message)
        return b"response-" + message.output.name.encode()


def make_ctx(outputs=OUTPUTS, plugins=None):
    sender = FakeSender()
    invocation = Invocation(FunctionConfig(name="fn", outputs=outputs), HTTP)
    if plugins is not None:
        invocation.plugins = plugins
    return Context(invocation, Services(sender=sender)), sender


def test_encode_payload():
    assert encode_payload(b"x") == b"x"
    assert encode_payload("é") == "é".encode()
    assert encode_payload({"a": [1]}) == b'{"a":[1]}'


def test_send_to_one_output_returns_its_response():
    ctx, sender = make_ctx()
    assert asyncio.run(ctx.send_async({"k": 1}, "a")) == b"response-a"
    assert [(m.output.name, m.data) for m in sender.sent] == [("a", b'{"k":1}')]


def test_send_to_every_output():
    ctx, sender = make_ctx()
    assert asyncio.run(ctx.send_async("x")) == {"a": b"response-a", "b": b"response-b"}
    assert [m.output.name for m in sender.sent] == ["a", "b"]


def test_unknown_output_and_no_outputs():
    ctx, _ = make_ctx()
    with pytest.raises(OutputError, match="unknown output 'c'") as info:
        asyncio.run(ctx.send_async(1, "c"))
    assert "a, b" in str(info.value)
    empty, _ = make_ctx(outputs={})
    with pytest.raises(OutputError, match="has no outputs"):
        asyncio.run(empty.send_async(1))


def test_blocking_send_from_a_worker_thread():
    async def main():
        ctx, sender = make_ctx()
        ctx._services.loop = asyncio.get_running_loop()
        result = await asyncio.get_running_loop().run_in_executor(None, ctx.send, "hi", "b")
        return result, sender

    result, sender = asyncio.run(main())
    assert result == b"response-b" and sender.sent[0].data == b"hi"


def test_blocking_send_on_the_loop_is_refused():
    async def main():
        ctx, _ = make_ctx()
        ctx._services.loop = asyncio.get_running_loop()
        ctx.send("x", "a")

    with pytest.raises(RuntimeError, match="send_async"):
        asyncio.run(main())


def test_plugins_on_send_can_add_metadata():
    class Stamp(Plugin):
        name = "stamp"

        def on_send(self, ctx, message):
            message.metadata["sw8"] = "1-abc"

    pipeline = Pipeline([Stamp()], [])
    from openfunction.plugins import PluginSet

    ctx, sender = make_ctx(plugins=PluginSet({"stamp": Stamp()}))
    asyncio.run(ctx.send_async("x", "b"))
    assert sender.sent[0].metadata == {"sw8": "1-abc"}
    assert pipeline  # the pipeline knows the plugin


def test_states_without_stores():
    ctx, _ = make_ctx()
    with pytest.raises(OutputError, match="no state stores"):
        ctx.states


def test_per_call_metadata_travels_with_the_message():
    ctx, sender = make_ctx()
    asyncio.run(ctx.send_async("x", "a", metadata={"key": "order-42"}))
    assert sender.sent[0].request_metadata == {"key": "order-42"}
    assert sender.sent[0].metadata == {}


# ---------------------------------------------------------------- send_async: started at once


class FailingSender(FakeSender):
    async def send(self, message, invocation):
        await asyncio.sleep(0.01)
        raise OutputError("boom", "the sidecar said no.", "fix the component")


class SlowSender(FakeSender):
    async def send(self, message, invocation):
        await asyncio.sleep(0.01)
        return await super().send(message, invocation)


def never_retrieved(caplog):
    gc.collect()  # a task whose exception nobody retrieved complains when collected
    return [r for r in caplog.records if "never retrieved" in r.getMessage()]


def test_send_async_is_registered_before_it_returns_and_runs_unawaited():
    async def main():
        ctx, sender = make_ctx()
        ctx._services.sender = sender = SlowSender()
        ctx.send_async({"k": 1}, "a")  # never awaited
        pending = set(ctx.invocation.state[PENDING_SENDS])
        assert len(pending) == 1 and not sender.sent
        await asyncio.wait(pending)  # what the Async runtime does before answering
        assert [m.data for m in sender.sent] == [b'{"k":1}']
        assert not ctx.invocation.state[PENDING_SENDS]

    asyncio.run(main())


def test_an_unawaited_failed_send_is_logged_once_not_left_to_asyncio(caplog):
    async def main():
        ctx, _ = make_ctx()
        ctx._services.sender = FailingSender()
        kept = asyncio.ensure_future(ctx.send_async({"x": 1}, "a"))
        ctx.send_async({"x": 2}, "a")
        await asyncio.wait(set(ctx.invocation.state[PENDING_SENDS]))
        await asyncio.sleep(0)
        assert kept.done()
        del kept
        assert never_retrieved(caplog) == []

    asyncio.run(main())
    failures = [r for r in caplog.records if "ctx.send_async() to output 'a' failed" in r.getMessage()]
    assert len(failures) == 2
    assert "fix: fix the component" in failures[0].getMessage()
    assert failures[0].exc_info is None  # a FrameworkError: its message, no traceback
    assert never_retrieved(caplog) == []


def test_await_send_async_works_as_before():
    async def main():
        ctx, _ = make_ctx()
        assert await ctx.send_async("x", "a") == b"response-a"
        assert await ctx.send_async("x") == {"a": b"response-a", "b": b"response-b"}
        ctx._services.sender = FailingSender()
        with pytest.raises(OutputError, match="boom"):
            await ctx.send_async("x", "a")

    asyncio.run(main())


def test_an_awaited_failure_is_the_functions_and_not_logged(caplog):
    async def main():
        ctx, _ = make_ctx()
        ctx._services.sender = FailingSender()
        with pytest.raises(OutputError):
            await ctx.send_async("x", "a")

    asyncio.run(main())
    assert not [r for r in caplog.records if "failed" in r.getMessage()]


def test_send_async_in_create_task_ensure_future_gather_and_wait_for():
    async def main():
        ctx, sender = make_ctx()
        assert await asyncio.create_task(ctx.send_async(1, "a")) == b"response-a"
        assert await asyncio.ensure_future(ctx.send_async(2, "b")) == b"response-b"
        assert await asyncio.gather(ctx.send_async(3, "a"), ctx.send_async(4, "b")) == [
            b"response-a", b"response-b"]
        assert await asyncio.wait_for(ctx.send_async(5, "a"), 5) == b"response-a"
        assert [m.data for m in sender.sent] == [b"1", b"2", b"3", b"4", b"5"]

    asyncio.run(main())


def test_cancelling_the_task_that_runs_a_send_cancels_the_send():
    async def main():
        ctx, _ = make_ctx()
        ctx._services.sender = SlowSender()
        driver = asyncio.ensure_future(ctx.send_async("x", "a"))
        (send,) = ctx.invocation.state[PENDING_SENDS]
        driver.cancel()
        await asyncio.wait({driver, send})
        assert driver.cancelled() and send.cancelled()
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(ctx.send_async("y", "a"), 0.001)
        await asyncio.sleep(0.05)
        assert ctx._services.sender.sent == []

    asyncio.run(main())


def test_argument_mistakes_raise_when_send_async_is_called():
    async def main():
        ctx, sender = make_ctx()
        with pytest.raises(OutputError, match="unknown output 'c'"):
            ctx.send_async(1, "c")  # not awaited: raises all the same
        with pytest.raises(TypeError, match="output must be the name of an output"):
            ctx.send_async(1, 5)
        assert ctx.invocation.state.get(PENDING_SENDS, set()) == set()
        assert sender.sent == []

    asyncio.run(main())


# ---------------------------------------------------------------- data that cannot be sent


def deeply_nested(depth=100_000):
    value = []
    for _ in range(depth):
        value = [value]
    return value


def circular():
    value = {}
    value["self"] = value
    return value


@pytest.mark.parametrize("data,how,reason", [
    ({1, 2}, "as JSON", "Object of type set is not JSON serializable"),
    ({"v": float("nan")}, "as JSON", "Out of range float values are not JSON compliant"),
    ({"w": float("inf")}, "as JSON", "Out of range float values are not JSON compliant"),
    ([float("-inf")], "as JSON", "Out of range float values are not JSON compliant"),
    ({"t": "a\ud800b"}, "as JSON", r"a str in it contains '\ud800', a lone surrogate"),
    ("a\ud800b", "as UTF-8 text", r"it contains '\ud800', a lone surrogate"),
    (deeply_nested(), "as JSON", "nested too deeply"),
    (circular(), "as JSON", "Circular reference detected"),
    ({(1, 2): "tuple key"}, "as JSON", "keys must be str, int, float, bool or None"),
], ids=["set", "nan", "inf", "-inf", "surrogate-in-json", "surrogate-str", "deep", "cycle",
        "tuple-key"])
def test_data_that_cannot_be_sent_is_a_clear_error(data, how, reason):
    with pytest.raises(PayloadError) as info:
        encode_payload(data, "output 'sink'")
    error = info.value
    assert error.title == f"the data for output 'sink' cannot be sent {how}"
    assert reason in error.detail
    assert "dict, list, str, int, finite float, bool or None" in error.hint
    assert "bytes or a str to send as they are" in error.hint
    # an OutputError for the framework, a TypeError / ValueError as json.dumps raised
    assert isinstance(error, OutputError) and isinstance(error, TypeError)
    assert isinstance(error, ValueError)
    # no json/encoder frames chained to it
    assert error.__cause__ is None and error.__suppress_context__


def test_nan_is_never_published_as_invalid_json():
    ctx, sender = make_ctx()
    with pytest.raises(PayloadError, match="output 'a' cannot be sent as JSON"):
        asyncio.run(ctx.send_async({"v": float("nan"), "w": float("inf")}, "a"))
    with pytest.raises(PayloadError, match=r"every output \('a', 'b'\)"):
        asyncio.run(ctx.send_async({1, 2}))
    assert sender.sent == []
    assert encode_payload({"f": 1.5, "n": None, "b": True}) == b'{"f":1.5,"n":null,"b":true}'


# ---------------------------------------------------------------- per-call metadata


@pytest.mark.parametrize("metadata,message", [
    ({"key": 5}, r"ctx.send_async\(\): metadata\['key'\] must be a str, not int \(5\)"),
    ({"key": None}, r"metadata\['key'\] must be a str, not NoneType"),
    ({5: "v"}, r"the metadata keys must be str, not int \(5\)"),
    ([("key", "v")], r"metadata must be a mapping of str to str, not list"),
    ("key=v", r"metadata must be a mapping of str to str, not str"),
])
def test_metadata_must_map_str_to_str(metadata, message):
    ctx, sender = make_ctx()
    with pytest.raises(TypeError, match=message):
        asyncio.run(ctx.send_async("x", "a", metadata=metadata))
    assert sender.sent == []


def test_blocking_send_checks_its_arguments_in_the_calling_thread():
    async def main():
        ctx, sender = make_ctx()
        ctx._services.loop = asyncio.get_running_loop()

        def worker():
            with pytest.raises(TypeError, match=r"ctx.send\(\): metadata\['key'\]"):
                ctx.send("x", "a", metadata={"key": 5})
            with pytest.raises(PayloadError, match="output 'a'"):
                ctx.send({1}, "a")
            return ctx.send("x", "a", metadata={"key": "order-42"})

        assert await asyncio.get_running_loop().run_in_executor(None, worker) == b"response-a"
        assert [m.request_metadata for m in sender.sent] == [{"key": "order-42"}]

    asyncio.run(main())


def test_send_async_from_a_def_functions_thread_says_to_use_send():
    async def main():
        ctx, sender = make_ctx()
        ctx._services.loop = asyncio.get_running_loop()

        def worker():
            with pytest.raises(RuntimeError, match=r"in a def function use `ctx.send\(...\)`"):
                ctx.send_async("x", "a")  # would otherwise never be sent

        await asyncio.get_running_loop().run_in_executor(None, worker)
        assert sender.sent == []

    asyncio.run(main())
