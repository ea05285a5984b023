"""The Dapr samples run as their READMEs say, against real daprd and Redis."""

import json
from pathlib import Path

import httpx
import pytest

from support.dapr import (
    SidecarPorts, component, function_context, function_env, input_binding, output_binding,
    redis_component, start_daprd, start_redis, topic, wait_until, write_components,
)
from support.process import free_port, run_function

pytestmark = pytest.mark.integration

SAMPLES = Path(__file__).resolve().parents[2] / "samples"


def test_async_cron_sample(tmp_path):
    with start_redis() as redis:
        resources = write_components(tmp_path / "resources", [
            component("cron", "bindings.cron", schedule="@every 1s"),
            redis_component("redis-sink", "bindings.redis", redis),
        ])
        port, ports = free_port(), SidecarPorts.free()
        ctx = function_context("python-async-cron", port, inputs={"cron": input_binding("cron")},
                               outputs={"sink": output_binding("redis-sink", key="last-tick")})
        with run_function(SAMPLES / "async-cron" / "main.py", "tick",
                          env=function_env(ctx, ports), port=port) as fn, \
                start_daprd(resources, port, ports=ports, wait="app"):
            value = wait_until(lambda: redis.cli("GET", "last-tick"), what="a tick in Redis")
            assert fn.terminate() == 0
    record = json.loads(value)
    assert record["function"] == "python-async-cron" and record["input"] == "cron"


def test_bridge_sample(tmp_path):
    with start_redis() as redis:
        resources = write_components(tmp_path / "resources", [
            redis_component("orders-bus", "pubsub.redis", redis),
            redis_component("ledger", "bindings.redis", redis),
        ])
        source = SAMPLES / "bridge" / "main.py"
        fulfil_port, fulfil_ports = free_port(), SidecarPorts.free()
        fulfil_ctx = function_context(
            "python-bridge-fulfil", fulfil_port, inputs={"orders": topic("orders-bus", "orders")},
            outputs={"ledger": output_binding("ledger", key="last-fulfilled")})
        order_port, order_ports = free_port(), SidecarPorts.free()
        order_ctx = function_context("python-bridge-order", order_port, runtime="Knative",
                                     outputs={"orders": topic("orders-bus", "orders")})
        with run_function(source, "fulfil", env=function_env(fulfil_ctx, fulfil_ports),
                          port=fulfil_port) as fulfil, \
                start_daprd(resources, fulfil_port, ports=fulfil_ports, app_id="fulfil",
                            wait="app"), \
                start_daprd(resources, None, ports=order_ports, app_id="order"), \
                run_function(source, "order", env=function_env(order_ctx, order_ports),
                             port=order_port) as order:
            bad = httpx.post(order.url, json={"quantity": 1}, timeout=10)
            assert bad.status_code == 400 and "item" in bad.json()["error"]
            ok = httpx.post(order.url, json={"item": "book", "quantity": 2}, timeout=10)
            assert ok.status_code == 200 and ok.json() == {"queued": {"item": "book", "quantity": 2}}
            value = wait_until(lambda: redis.cli("GET", "last-fulfilled"), what="the order fulfilled")
            assert json.loads(value) == {"fulfilled": "book", "quantity": 2}
            assert order.terminate() == 0 and fulfil.terminate() == 0
