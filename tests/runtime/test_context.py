import asyncio
import threading

import pytest

from openfunction.config import Component, FunctionConfig
from openfunction.context import Context, OutgoingMessage, Services, encode_payload
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
