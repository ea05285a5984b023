"""Async functions against a real daprd, Redis and Mosquitto (all on 127.0.0.1).

Each scenario runs its own daprd (standalone: no placement, scheduler or Kubernetes).
The function starts first: daprd asks a gRPC app for its bindings once it can connect.
"""

import json
import signal
import textwrap
import time
from pathlib import Path

import httpx
import pytest

from support.dapr import (
    SidecarPorts, component, function_context, function_env, input_binding, mqtt_component,
    output_binding, redis_component, resiliency, start_daprd, start_mosquitto, start_redis,
    topic, wait_until, write_components,
)
from support.process import free_port, run_function

pytestmark = pytest.mark.integration

FIXTURES = Path(__file__).parent / "fixtures"


def source(tmp_path, text: str, name: str = "main.py"):
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


CRON_SOURCE = """
    import json

    def handler(ctx, data):
        count = int(ctx.states.get_blocking("counter", "ticks") or 0) + 1
        ctx.states.save_blocking("counter", "ticks", count)
        scheduled = any(k.lower() == "readtimeutc" for k in ctx.event.metadata)
        ctx.send({"tick": count, "input": ctx.input_name, "scheduled": scheduled}, "sink")
"""


@pytest.mark.parametrize("protocol", ["grpc", "http"])
def test_cron_to_redis_output_with_state(tmp_path, protocol):
    with start_redis() as redis:
        resources = write_components(tmp_path / "resources", [
            component("cron", "bindings.cron", schedule="@every 1s"),
            redis_component("sink", "bindings.redis", redis),
            redis_component("counter", "state.redis", redis),
        ])
        port, ports = free_port(), SidecarPorts.free()
        ctx = function_context(
            "ticker", port, inputs={"cron": input_binding("cron")},
            outputs={"sink": output_binding("sink", key="ticks")},
            states={"counter": {"componentName": "counter", "componentType": "state.redis"}})
        env = function_env(ctx, ports, APP_PROTOCOL=protocol)
        with run_function(source(tmp_path, CRON_SOURCE), "handler", env=env, port=port) as fn, \
                start_daprd(resources, port, ports=ports, app_protocol=protocol, wait="app") as daprd:
            def second_tick():
                value = redis.cli("GET", "ticks")
                return value and json.loads(value)["tick"] >= 2 and json.loads(value)

            tick = wait_until(second_tick, timeout=20, what="two cron ticks in Redis")
            assert tick["input"] == "cron" and tick["scheduled"] is True
            assert int(daprd.get_state("counter", "ticks")) >= 2
            assert fn.terminate() == 0
        assert f"Dapr app callbacks ({'gRPC' if protocol == 'grpc' else 'HTTP'})" in fn.log
        assert "Traceback" not in fn.log and "has not loaded" not in fn.log


def test_an_input_the_sidecar_lacks_and_a_protocol_mismatch_are_named(tmp_path):
    resources = write_components(tmp_path / "resources", [
        component("cron", "bindings.cron", schedule="@every 1s")])
    port, ports = free_port(), SidecarPorts.free()
    ctx = function_context("ticker", port, inputs={"ticks": input_binding("crn")})
    env = function_env(ctx, ports, APP_PROTOCOL="http")
    with run_function(source(tmp_path, CRON_SOURCE), "handler", env=env, port=port) as fn, \
            start_daprd(resources, port, ports=ports, app_protocol="grpc", wait="outbound"):
        wait_until(lambda: "Dapr sidecar ready" in fn.log, timeout=20, what="the sidecar")
        wait_until(lambda: "FUNC_CONTEXT.inputs.ticks" in fn.log, timeout=10, what="the check")
    assert ("FUNC_CONTEXT.inputs.ticks names the component 'crn', which the Dapr sidecar has "
            "not loaded (it has: cron)") in fn.log
    assert "the sidecar calls the app over grpc: set APP_PROTOCOL=grpc" in fn.log


TOPIC_SOURCE = """
    def handler(ctx, data):
        ctx.send({"data": data, "carrier": ctx.invocation.carrier,
                  "topic": ctx.event.topic}, "mqtt")
"""


def test_topic_to_mqtt_output(tmp_path):
    with start_redis() as redis, start_mosquitto() as broker:
        resources = write_components(tmp_path / "resources", [
            redis_component("bus", "pubsub.redis", redis),
            mqtt_component("mqtt", "pubsub.mqtt3", broker),
        ])
        port, ports = free_port(), SidecarPorts.free()
        ctx = function_context(
            "relay", port, inputs={"orders": topic("bus", "orders")},
            outputs={"mqtt": {**topic("mqtt", "relay/out", "pubsub.mqtt3"),
                              "metadata": {"rawPayload": "true"}}})
        with run_function(source(tmp_path, TOPIC_SOURCE), "handler",
                          env=function_env(ctx, ports), port=port) as fn, \
                start_daprd(resources, port, ports=ports, wait="app") as daprd, \
                broker.subscribe("relay/out") as mqtt:
            daprd.publish("bus", "orders", {"order": 1})
            # an inner event as the Go framework publishes it: unwrapped on arrival
            daprd.publish("bus", "orders",
                          (FIXTURES / "go-inner-event-kubernetes.json").read_bytes())
            messages = [json.loads(m) for m in mqtt.wait_for(2)]
            assert fn.terminate() == 0
        plain = next(m for m in messages if m["data"] == {"order": 1})
        assert plain == {"data": {"order": 1}, "carrier": {}, "topic": "orders"}
        inner = next(m for m in messages if m["data"] == {"order": 42})
        assert inner["carrier"]["traceparent"].startswith("00-4bf92f35")


FLAKY_SOURCE = """
    from openfunction.dapr import Drop, Retry

    async def handler(ctx, data):
        if data.get("poison"):
            return Drop("this one can never be processed")
        key = f"attempts-{data['id']}"
        attempts = int(await ctx.states.get("attempts", key) or 0) + 1
        await ctx.states.save("attempts", key, attempts)
        if attempts == 1:
            raise RuntimeError(f"event {data['id']}: first delivery fails")
        if attempts == 2:
            return Retry("second delivery asks for a retry")
        await ctx.send_async({"id": data["id"], "attempts": attempts}, "done")
"""


def test_failed_deliveries_are_retried_and_processed_once_and_drops_dead_letter(tmp_path):
    with start_redis() as redis:
        resources = write_components(tmp_path / "resources", [
            redis_component("bus", "pubsub.redis", redis),
            redis_component("attempts", "state.redis", redis),
            resiliency("retry-inbound", "bus", retries=20, interval="200ms"),
        ])
        port, ports = free_port(), SidecarPorts.free()
        ctx = function_context(
            "flaky", port, inputs={"jobs": topic("bus", "jobs", deadLetterTopic="jobs-dead")},
            outputs={"done": topic("bus", "done")},
            states={"attempts": {"componentName": "attempts", "componentType": "state.redis"}})
        with run_function(source(tmp_path, FLAKY_SOURCE), "handler",
                          env=function_env(ctx, ports), port=port) as fn, \
                start_daprd(resources, port, ports=ports, wait="app") as daprd:
            for i in range(3):
                daprd.publish("bus", "jobs", {"id": i})
            daprd.publish("bus", "jobs", {"id": 99, "poison": True})
            wait_until(lambda: len(redis.stream("done")) >= 3, timeout=20,
                       what="three processed events")
            dead = wait_until(lambda: redis.stream("jobs-dead"), timeout=10,
                              what="the dropped event on the dead-letter topic")
            assert [e["data"] for e in dead] == [{"id": 99, "poison": True}]
            time.sleep(1.0)  # a duplicate would show up by now
            done = sorted((e["data"]["id"], e["data"]["attempts"]) for e in redis.stream("done"))
            assert done == [(0, 3), (1, 3), (2, 3)]
            assert [int(daprd.get_state("attempts", f"attempts-{i}")) for i in range(3)] == [3, 3, 3]
            assert fn.terminate() == 0
        assert fn.log.count("will be delivered again") == 6


SLOW_SOURCE = """
    import asyncio

    async def handler(ctx, data):
        print(f"started {data['id']}", flush=True)
        await asyncio.sleep(1.5)
        await ctx.send_async({"id": data["id"]}, "done")
        print(f"finished {data['id']}", flush=True)
"""


def test_sigterm_drains_in_flight_events_and_loses_none(tmp_path):
    with start_redis() as redis:
        resources = write_components(tmp_path / "resources", [
            redis_component("bus", "pubsub.redis", redis),
            resiliency("retry-inbound", "bus", retries=100, interval="200ms"),
        ])
        port, ports = free_port(), SidecarPorts.free()
        ctx = function_context("slow", port, inputs={"jobs": topic("bus", "jobs")},
                               outputs={"done": topic("bus", "done")})
        env = function_env(ctx, ports)
        path = source(tmp_path, SLOW_SOURCE)
        processed = lambda: sorted({e["data"]["id"] for e in redis.stream("done")})
        with run_function(path, "handler", env=env, port=port) as fn, \
                start_daprd(resources, port, ports=ports, wait="app") as daprd:
            for i in range(4):
                daprd.publish("bus", "jobs", {"id": i})
            wait_until(lambda: fn.log.count("started") == 4, timeout=15, what="4 events running")
            fn.proc.send_signal(signal.SIGTERM)
            for i in range(4, 7):  # arrive while the function stops
                daprd.publish("bus", "jobs", {"id": i})
            assert fn.proc.wait(timeout=15) == 0
            # every event that started (late ones too, if they beat the signal) finished
            assert fn.log.count("finished") == fn.log.count("started") >= 4
            assert {0, 1, 2, 3} <= set(processed())
            with run_function(path, "handler", env=env, port=port) as again:
                wait_until(lambda: processed() == list(range(7)), timeout=25,
                           what="all 7 events processed after the restart")
                assert again.terminate() == 0
        assert "stopped after finishing in-flight events" in fn.log


SYNC_SOURCE = """
    import openfunction

    @openfunction.function
    def order(ctx, data):
        ctx.send({"order": data["order"], "via": "bridge"}, "orders")
        return {"accepted": data["order"]}
"""

CONSUMER_SOURCE = """
    def consume(ctx, data):
        ctx.send({"data": data, "carrier": ctx.invocation.carrier}, "sink")
"""


@pytest.mark.parametrize("tracing", [False, True], ids=["raw", "inner-event"])
def test_sync_function_sends_to_a_topic_consumed_by_an_async_function(tmp_path, tracing):
    with start_redis() as redis:
        resources = write_components(tmp_path / "resources", [
            redis_component("bus", "pubsub.redis", redis),
            redis_component("sink", "bindings.redis", redis),
        ])
        # the sync function: Knative runtime, a sidecar for its output only
        sync_port, sync_ports = free_port(), SidecarPorts.free()
        sync_tracing = None
        if tracing:
            sync_tracing = {"enabled": True, "provider": {
                "name": "opentelemetry",
                "exporter": {"name": "otlp", "endpoint": f"127.0.0.1:{free_port()}"}}}
        sync_ctx = function_context("orders-api", sync_port, runtime="Knative",
                                    outputs={"orders": topic("bus", "orders")},
                                    tracing=sync_tracing)
        # the async consumer
        port, ports = free_port(), SidecarPorts.free()
        consumer_ctx = function_context("consumer", port, inputs={"orders": topic("bus", "orders")},
                                        outputs={"sink": output_binding("sink", key="bridged")})
        with run_function(source(tmp_path, CONSUMER_SOURCE, "consumer.py"), "consume",
                          env=function_env(consumer_ctx, ports), port=port) as consumer, \
                start_daprd(resources, port, ports=ports, app_id="consumer", wait="app"), \
                start_daprd(resources, None, ports=sync_ports, app_id="orders-api"), \
                run_function(source(tmp_path, SYNC_SOURCE, "api.py"), "order",
                             env=function_env(sync_ctx, sync_ports), port=sync_port) as api:
            response = httpx.post(api.url, json={"order": 7}, timeout=10)
            assert response.status_code == 200 and response.json() == {"accepted": 7}
            value = wait_until(lambda: redis.cli("GET", "bridged"), timeout=20,
                               what="the consumer's output")
            assert api.terminate() == 0 and consumer.terminate() == 0
        received = json.loads(value)
        assert received["data"] == {"order": 7, "via": "bridge"}
        if tracing:
            assert received["carrier"]["traceparent"].startswith("00-")
        else:
            assert received["carrier"] == {}


def test_sync_function_without_sidecar_fails_fast_and_clearly(tmp_path):
    port, ports = free_port(), SidecarPorts.free()  # nothing listens on these
    ctx = function_context("orders-api", port, runtime="Knative",
                           outputs={"orders": topic("bus", "orders")})
    env = function_env(ctx, ports, DAPR_CONNECT_TIMEOUT="0.5")
    with run_function(source(tmp_path, SYNC_SOURCE), "order", env=env, port=port) as api:
        started = time.monotonic()
        response = httpx.post(api.url, json={"order": 1}, timeout=10)
        assert time.monotonic() - started < 5
        assert response.status_code == 500
        api.terminate()
    assert "no Dapr sidecar is reachable" in api.log
    assert f"DAPR_GRPC_PORT={ports.grpc}" in api.log


@pytest.mark.parametrize("protocol", ["grpc", "http"])
def test_async_function_without_sidecar_exits_with_a_clear_error(tmp_path, protocol):
    port, ports = free_port(), SidecarPorts.free()
    ctx = function_context("ticker", port, inputs={"cron": input_binding("cron")})
    env = function_env(ctx, ports, DAPR_HEALTH_TIMEOUT="1", APP_PROTOCOL=protocol)
    with run_function(source(tmp_path, CRON_SOURCE), "handler", env=env, port=port,
                      wait=False) as fn:
        assert fn.proc.wait(timeout=15) == 2
    assert fn.log.count("the Dapr sidecar did not become ready") == 1
    assert "DAPR_HEALTH_TIMEOUT" in fn.log and "Traceback" not in fn.log


@pytest.mark.parametrize("protocol", ["grpc", "http"])
def test_sigterm_while_waiting_for_the_sidecar_stops_at_once(tmp_path, protocol):
    port, ports = free_port(), SidecarPorts.free()
    ctx = function_context("ticker", port, inputs={"cron": input_binding("cron")})
    env = function_env(ctx, ports, DAPR_HEALTH_TIMEOUT="60", APP_PROTOCOL=protocol)
    with run_function(source(tmp_path, CRON_SOURCE), "handler", env=env, port=port,
                      wait=False) as fn:
        wait_until(lambda: "waiting up to 60s" in fn.log, timeout=15, what="the wait")
        started = time.monotonic()
        assert fn.terminate(timeout=10) == 0
        assert time.monotonic() - started < 5
    assert "Traceback" not in fn.log
