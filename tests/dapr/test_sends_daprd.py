"""Sends and state against a real daprd: what reaches the sidecar, and how refusals read.

An unawaited `ctx.send_async` that fails keeps its event unacknowledged; arguments the
sidecar would take silently or refuse are caught first; the sidecar's own refusals get
a hint that fits them (all on 127.0.0.1).
"""

import asyncio
import textwrap

import pytest

from openfunction.config import Component, DaprEndpoint, FunctionConfig
from openfunction.dapr.connection import DaprConnection, DaprSettings
from openfunction.dapr.states import DaprStateStores
from openfunction.errors import OutputError
from support.dapr import (
    SidecarPorts, function_context, function_env, output_binding, redis_component, resiliency,
    start_daprd, start_redis, topic, wait_until, write_components,
)
from support.process import free_port, run_function

pytestmark = pytest.mark.integration

UNAWAITED_SOURCE = """
    import asyncio

    async def handler(ctx, data):
        key = f"deliveries-{data['id']}"
        deliveries = int(await ctx.states.get("st", key) or 0) + 1
        await ctx.states.save("st", key, deliveries)
        # never awaited; the first one goes to a binding the sidecar does not have
        output = "missing" if deliveries == 1 else "done"
        asyncio.ensure_future(ctx.send_async({"id": data["id"], "deliveries": deliveries}, output))
"""


def test_an_unawaited_send_that_fails_has_the_event_delivered_again(tmp_path):
    with start_redis() as redis:
        resources = write_components(tmp_path / "resources", [
            redis_component("bus", "pubsub.redis", redis),
            redis_component("st", "state.redis", redis),
            resiliency("retry-inbound", "bus", retries=20, interval="200ms"),
        ])
        port, ports = free_port(), SidecarPorts.free()
        ctx = function_context(
            "unawaited", port, inputs={"jobs": topic("bus", "jobs")},
            outputs={"done": topic("bus", "done"), "missing": output_binding("badbinding")},
            states={"st": {"componentName": "st", "componentType": "state.redis"}})
        path = tmp_path / "main.py"
        path.write_text(textwrap.dedent(UNAWAITED_SOURCE))
        with run_function(path, "handler", env=function_env(ctx, ports), port=port) as fn, \
                start_daprd(resources, port, ports=ports, wait="app") as daprd:
            daprd.publish("bus", "jobs", {"id": 7})
            done = wait_until(lambda: redis.stream("done"), timeout=20,
                              what="the event processed again after the failed send")
            assert [e["data"] for e in done] == [{"id": 7, "deliveries": 2}]
            assert fn.terminate() == 0
    assert "couldn't find output binding badbinding" in fn.log
    assert "1 send(s) to outputs failed" in fn.log
    assert "never retrieved" not in fn.log and "Traceback" not in fn.log


async def _refusals(grpc_port: int) -> dict[str, BaseException]:
    settings = DaprSettings(DaprEndpoint("127.0.0.1", grpc_port, 1), api_timeout=30.0)
    connection = DaprConnection(settings)
    config = FunctionConfig(name="fn", states={"st": Component("st", "st", "state.redis")})
    stores = DaprStateStores(config, connection)
    calls = {
        "over the sidecar's limit": connection.invoke_binding(
            "sink", "create", b"x" * (5 * 1024 * 1024), {"key": "k"}),
        "over the client's limit": connection.invoke_binding(
            "sink", "create", b"x" * (70 * 1000 * 1000), {"key": "k"}),
        "bad key": connection.get_state("st", "a||b"),
        "unknown pub/sub": connection.publish_event("nope", "t", b"x", "text/plain", {}),
        "empty key": stores.save("st", "", "v"),
        "key None": stores.delete("st", None),
    }
    errors = {}
    try:
        for name, call in calls.items():
            try:
                await call
            except Exception as exc:  # noqa: BLE001 - each is looked at below
                errors[name] = exc
    finally:
        await connection.close()
    return errors


def test_refusals_are_caught_first_or_explained(tmp_path):
    with start_redis() as redis:
        resources = write_components(tmp_path / "resources", [
            redis_component("sink", "bindings.redis", redis),
            redis_component("st", "state.redis", redis),
        ])
        with start_daprd(resources, None, ports=SidecarPorts.free()) as daprd:
            errors = asyncio.run(_refusals(daprd.grpc_port))
    sidecar = errors["over the sidecar's limit"]
    assert isinstance(sidecar, OutputError)
    assert sidecar.title.endswith("failed: the message is larger than the sidecar accepts")
    assert "RESOURCE_EXHAUSTED" in sidecar.detail and "--max-body-size" in sidecar.hint
    client = errors["over the client's limit"]
    assert client.title.endswith("failed: the message is too large to send")
    assert "client refused to send it" in client.detail and "answered" not in client.detail
    bad_key = errors["bad key"]
    assert "INVALID_ARGUMENT" in bad_key.detail and "component exists" not in bad_key.hint
    assert "component exists" in errors["unknown pub/sub"].hint
    assert isinstance(errors["empty key"], ValueError)
    assert "ctx.states.save(): key is empty" in str(errors["empty key"])
    assert isinstance(errors["key None"], TypeError)
    assert "ctx.states.delete(): key must be a non-empty str" in str(errors["key None"])
