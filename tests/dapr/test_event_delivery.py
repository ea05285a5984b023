"""How events reach the function, against a real daprd (with Redis and Mosquitto): wildcard
topics, input names that need encoding, the app token, payloads too deep to decode, events
daprd cancels, a CancelledError of the function's own, and a failing cron event.

The function writes what it received as JSON lines to the file `SEEN`; the test reads them.
"""

from __future__ import annotations

import json
import textwrap
import time
from pathlib import Path

import pytest

from support.dapr import (
    SidecarPorts, component, function_context, function_env, input_binding, mqtt_component,
    redis_component, resiliency, start_daprd, start_mosquitto, start_redis, topic, wait_until,
    write_components,
)
from support.process import free_port, run_function

pytestmark = pytest.mark.integration

RECORDER = """
    import asyncio, json, os

    def record(ctx, data, **extra):
        event = ctx.event
        line = {"input": ctx.input_name, "topic": getattr(event, "topic", None),
                "data": data if not isinstance(data, bytes) else {"bytes": len(data)},
                "metadata": sorted(event.metadata), **extra}
        with open(os.environ["SEEN"], "a") as out:
            out.write(json.dumps(line) + "\\n")

    def handler(ctx, data):
        record(ctx, data)

    async def slow(ctx, data):
        record(ctx, data, started=True)
        await asyncio.sleep(3)

    ATTEMPTS = []

    async def cancels_itself_once(ctx, data):
        ATTEMPTS.append(data)
        if len(ATTEMPTS) == 1:
            task = asyncio.ensure_future(asyncio.sleep(10))
            await asyncio.sleep(0)
            task.cancel()
            await task  # a CancelledError of the function's own
        record(ctx, data, attempt=len(ATTEMPTS))

    def fails(ctx, data):
        record(ctx, data)
        raise RuntimeError("the tick fails")
"""


class Seen:
    def __init__(self, path: Path) -> None:
        self.path = path

    def lines(self) -> list[dict]:
        if not self.path.exists():
            return []
        return [json.loads(line) for line in self.path.read_text().splitlines() if line]


def prepare(tmp_path: Path, inputs: dict, protocol: str, **env: str):
    source = tmp_path / "main.py"
    source.write_text(textwrap.dedent(RECORDER))
    port, ports = free_port(), SidecarPorts.free()
    seen = Seen(tmp_path / "seen.jsonl")
    ctx = function_context("receiver", port, inputs=inputs)
    return source, port, ports, seen, function_env(ctx, ports, APP_PROTOCOL=protocol,
                                                   SEEN=str(seen.path), **env)


def publish_until_seen(daprd, pubsub: str, topic_name: str, seen: Seen, *, timeout: float = 20.0):
    """Publish again and again (an MQTT subscription may not be in place yet) until one is
    seen; returns the lines seen."""
    deadline = time.monotonic() + timeout
    n = 0
    while time.monotonic() < deadline:
        n += 1
        daprd.publish(pubsub, topic_name, {"n": n})
        end = time.monotonic() + 1.0
        while time.monotonic() < end:
            if seen.lines():
                return seen.lines()
            time.sleep(0.1)
    raise AssertionError(f"nothing published to {topic_name!r} reached the function")


@pytest.mark.parametrize("protocol", ["grpc", "http"])
def test_mqtt_wildcard_subscription(tmp_path, protocol):
    with start_mosquitto() as broker:
        resources = write_components(tmp_path / "resources", [
            mqtt_component("mq", "pubsub.mqtt3", broker)])
        source, port, ports, seen, env = prepare(
            tmp_path, {"sensors": topic("mq", "sensors/+", "pubsub.mqtt3")}, protocol)
        with run_function(source, "handler", env=env, port=port) as fn, \
                start_daprd(resources, port, ports=ports, app_protocol=protocol,
                            wait="app") as daprd:
            lines = publish_until_seen(daprd, "mq", "sensors/kitchen", seen)
            assert fn.terminate() == 0
    assert lines[0]["input"] == "sensors" and lines[0]["topic"] == "sensors/kitchen"
    assert "event dropped" not in fn.log and "Traceback" not in fn.log
    assert "DROP" not in daprd.log


def test_http_input_names_that_need_encoding(tmp_path):
    with start_redis() as redis:
        resources = write_components(tmp_path / "resources", [
            redis_component("bus", "pubsub.redis", redis)])
        inputs = {"my input": topic("bus", "t1"), "a/b": topic("bus", "t2"),
                  "ü": topic("bus", "t3")}
        source, port, ports, seen, env = prepare(tmp_path, inputs, "http")
        with run_function(source, "handler", env=env, port=port) as fn, \
                start_daprd(resources, port, ports=ports, app_protocol="http",
                            wait="app") as daprd:
            for name in ("t1", "t2", "t3"):
                daprd.publish("bus", name, {"to": name})
            wait_until(lambda: len(seen.lines()) >= 3, timeout=20, what="three events")
            assert fn.terminate() == 0
    assert sorted((line["input"], line["data"]["to"]) for line in seen.lines()) == [
        ("a/b", "t2"), ("my input", "t1"), ("ü", "t3")]
    assert "Traceback" not in fn.log and "event dropped" not in fn.log


@pytest.mark.parametrize("protocol", ["grpc", "http"])
def test_the_app_token_is_not_in_binding_metadata(tmp_path, protocol):
    resources = write_components(tmp_path / "resources", [
        component("cron", "bindings.cron", schedule="@every 1s")])
    source, port, ports, seen, env = prepare(
        tmp_path, {"cron": input_binding("cron")}, protocol, APP_API_TOKEN="s3cret")
    with run_function(source, "handler", env=env, port=port) as fn, \
            start_daprd(resources, port, ports=ports, app_protocol=protocol, wait="app",
                        env={"APP_API_TOKEN": "s3cret"}):
        wait_until(seen.lines, timeout=20, what="a cron event")
        assert fn.terminate() == 0
    metadata = [key.lower() for key in seen.lines()[0]["metadata"]]
    assert "readtimeutc" in metadata and "dapr-api-token" not in metadata


@pytest.mark.parametrize("protocol", ["grpc", "http"])
def test_json_nested_too_deeply_is_delivered_as_bytes(tmp_path, protocol):
    deep = "[" * 3000 + "]" * 3000  # deeper than Python's JSON decoder goes
    with start_redis() as redis:
        resources = write_components(tmp_path / "resources", [
            redis_component("bus", "pubsub.redis", redis)])
        source, port, ports, seen, env = prepare(tmp_path, {"jobs": topic("bus", "jobs")},
                                                 protocol)
        with run_function(source, "handler", env=env, port=port) as fn, \
                start_daprd(resources, port, ports=ports, app_protocol=protocol,
                            wait="app") as daprd:
            daprd.publish("bus", "jobs", deep)
            daprd.publish("bus", "jobs", {"after": 1})
            wait_until(lambda: len(seen.lines()) >= 2, timeout=20, what="both events")
            assert fn.terminate() == 0
    deep_event, after = sorted(seen.lines(), key=lambda line: "after" in line["data"])
    assert after["data"] == {"after": 1}
    if protocol == "grpc":  # daprd hands over the data
        assert deep_event["data"] == {"bytes": len(deep)}
    else:  # the CloudEvent itself cannot be decoded: the body as it came
        assert deep_event["data"]["bytes"] > len(deep)
        assert "nests JSON more deeply than Python decodes" in fn.log
    assert "Traceback" not in fn.log and "will be delivered again" not in fn.log


def timeout_policy(name: str, component_name: str, timeout: str) -> dict:
    """A Resiliency resource giving daprd's calls to the app for `component_name` a timeout."""
    return {
        "apiVersion": "dapr.io/v1alpha1", "kind": "Resiliency", "metadata": {"name": name},
        "spec": {"policies": {"timeouts": {"short": timeout}},
                 "targets": {"components": {component_name: {"inbound": {"timeout": "short"}}}}},
    }


def test_an_event_daprd_cancels_is_logged_once_without_traceback(tmp_path):
    with start_redis() as redis:
        resources = write_components(tmp_path / "resources", [
            redis_component("bus", "pubsub.redis", redis),
            timeout_policy("short-inbound", "bus", "500ms"),
        ])
        source, port, ports, seen, env = prepare(tmp_path, {"jobs": topic("bus", "jobs")}, "grpc",
                                                 GRACEFUL_SHUTDOWN_TIMEOUT="0.5")
        with run_function(source, "slow", env=env, port=port) as fn, \
                start_daprd(resources, port, ports=ports, wait="app") as daprd:
            daprd.publish("bus", "jobs", {"id": 1})
            wait_until(lambda: "cancelled before the function finished" in fn.log, timeout=20,
                       what="the cancellation to be logged")
            fn.terminate()
    line = next(x for x in fn.log.splitlines() if "cancelled before the function finished" in x)
    assert "WARNING" in line and "from input 'jobs'" in line and "Dapr delivers it again" in line
    assert "Traceback" not in fn.log and "Exception not handled" not in fn.log


@pytest.mark.parametrize("protocol", ["grpc", "http"])
def test_a_cancelled_error_of_the_function_is_retried_and_shutdown_stays_clean(tmp_path,
                                                                               protocol):
    with start_redis() as redis:
        resources = write_components(tmp_path / "resources", [
            redis_component("bus", "pubsub.redis", redis),
            resiliency("retry-inbound", "bus", retries=10, interval="200ms"),
        ])
        source, port, ports, seen, env = prepare(tmp_path, {"jobs": topic("bus", "jobs")},
                                                 protocol)
        with run_function(source, "cancels_itself_once", env=env, port=port) as fn, \
                start_daprd(resources, port, ports=ports, app_protocol=protocol,
                            wait="app") as daprd:
            daprd.publish("bus", "jobs", {"id": 1})
            wait_until(seen.lines, timeout=20, what="the event, delivered again")
            assert fn.terminate() == 0  # exits 0: nothing was cancelled
    assert [line["attempt"] for line in seen.lines()] == [2]
    assert "will be delivered again: the function raised CancelledError" in fn.log
    assert "Exception in ASGI application" not in fn.log


def test_a_failed_cron_event_is_not_said_to_be_delivered_again(tmp_path):
    resources = write_components(tmp_path / "resources", [
        component("cron", "bindings.cron", schedule="@every 1s")])
    source, port, ports, seen, env = prepare(tmp_path, {"ticks": input_binding("cron")}, "grpc")
    with run_function(source, "fails", env=env, port=port) as fn, \
            start_daprd(resources, port, ports=ports, wait="app"):
        wait_until(lambda: "answered with an error" in fn.log, timeout=20, what="a failed tick")
        assert fn.terminate() == 0
    line = next(x for x in fn.log.splitlines() if "answered with an error" in x)
    assert "from input 'ticks' failed: the function raised RuntimeError: the tick fails" in line
    assert "the bindings.cron binding ignores the error: the event is not delivered again" in line
    assert "will be delivered again" not in fn.log
