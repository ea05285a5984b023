"""Doubles for the Dapr sidecar, and the function the servicer tests serve."""

import asyncio

from openfunction.context import OutgoingMessage


class RecordingConnection:
    """Stands in for `DaprConnection`: records calls, answers from `responses`."""

    def __init__(self, fail: Exception | None = None):
        self.calls: list[tuple] = []
        self.fail = fail
        self.state: dict[tuple[str, str], bytes] = {}

    async def invoke_binding(self, name, operation, data, metadata):
        self.calls.append(("binding", name, operation, data, dict(metadata)))
        if self.fail:
            raise self.fail
        return b"ok:" + name.encode()

    async def publish_event(self, pubsub, topic, data, content_type, metadata):
        self.calls.append(("publish", pubsub, topic, data, content_type, dict(metadata)))
        if self.fail:
            raise self.fail

    async def get_state(self, store, key):
        return self.state.get((store, key), b"")

    async def save_state(self, store, key, value):
        self.state[(store, key)] = value

    async def delete_state(self, store, key):
        self.state.pop((store, key), None)

    async def close(self):
        pass


class RecordingSender:
    def __init__(self):
        self.sent: list[OutgoingMessage] = []

    async def send(self, message, invocation):
        self.sent.append(message)
        return None


def run(coro):
    return asyncio.run(coro)


SOURCE = """
    import asyncio
    from openfunction.dapr import Drop, Retry

    SEEN = []

    def handler(ctx, data):
        SEEN.append((ctx.input_name, data, ctx.event, dict(ctx.invocation.carrier)))
        if data == "fail":
            raise ValueError("failing on purpose")
        if data == "retry":
            return Retry("not yet")
        if data == "drop":
            return Drop("malformed")
        if data == "raise-drop":
            raise Drop("malformed too")
        if isinstance(data, dict) and "forward" in data:
            ctx.send(data["forward"], "out")
        return "done"
"""

FUNC_CONTEXT = {
    "name": "sub", "version": "v1", "runtime": "Async", "port": "8080",
    "inputs": {
        "ticks": {"componentName": "cron", "componentType": "bindings.cron"},
        "orders": {"componentName": "bus", "componentType": "pubsub.redis", "uri": "orders",
                   "metadata": {"rawPayload": "false"}},
        "audit": {"componentName": "bus", "componentType": "pubsub.redis", "uri": "audit",
                  "metadata": {"deadLetterTopic": "audit-dead"}},
    },
    "outputs": {"out": {"componentName": "bus", "componentType": "pubsub.redis", "uri": "next"}},
}
