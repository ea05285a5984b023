import asyncio
import json
import textwrap

import pytest

from openfunction.cli import load, parse_options
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


@pytest.fixture
def make_function(tmp_path):
    """Load a real function (loader, plugins, runner) from source text and a FUNC_CONTEXT."""

    def factory(source, func_context, target="handler", env=None):
        path = tmp_path / "main.py"
        path.write_text(textwrap.dedent(source))
        environ = {"CONTEXT_MODE": "self-host", "FUNC_CONTEXT": json.dumps(func_context),
                   **(env or {})}
        options = parse_options(["--source", str(path), "--target", target], environ)
        return load(options, environ)

    return factory


def run(coro):
    return asyncio.run(coro)
