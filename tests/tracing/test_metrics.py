"""Prometheus metrics: counted around the runner, served on METRICS_PORT."""

from __future__ import annotations

import json
import subprocess

import httpx
import pytest
from prometheus_client import CollectorRegistry

from openfunction.errors import ConfigError
from openfunction.metrics import FunctionMetrics, metrics_port
from support.process import FUNCTIONS_FRAMEWORK, free_port, run_function, wait_for_port

SOURCE = """
def f(request):
    if request.args.get("fail"):
        raise RuntimeError("no")
    return "ok"
"""


def sample(registry, name, **labels):
    return registry.get_sample_value(name, {"function": "counted", "runtime": "Knative", **labels})


def test_invocations_errors_and_durations_are_counted(make_function):
    fn = make_function(SOURCE, "f", {"name": "counted", "runtime": "Knative"})
    registry = CollectorRegistry()
    FunctionMetrics(fn.config, registry).instrument(fn.runner)
    fn.client.get("/")
    fn.client.get("/?fail=1")
    fn.client.get("/")
    assert sample(registry, "openfunction_function_invocations_total") == 3
    assert sample(registry, "openfunction_function_errors_total") == 1
    assert sample(registry, "openfunction_function_duration_seconds_count") == 3
    assert sample(registry, "openfunction_function_duration_seconds_bucket", le="+Inf") == 3


def test_metrics_port_is_checked():
    assert metrics_port({}) is None and metrics_port({"METRICS_PORT": "0"}) is None
    assert metrics_port({"METRICS_PORT": "9090"}) == 9090
    with pytest.raises(ConfigError, match="METRICS_PORT is invalid"):
        metrics_port({"METRICS_PORT": "metrics"})


@pytest.mark.integration
def test_the_server_serves_metrics_on_their_own_port(tmp_path):
    (tmp_path / "main.py").write_text(SOURCE)
    port = free_port()
    ctx = {"name": "counted", "runtime": "Knative"}
    env = {"FUNC_CONTEXT": json.dumps(ctx), "CONTEXT_MODE": "self-host", "METRICS_PORT": str(port)}
    with run_function(tmp_path / "main.py", "f", env=env) as fn:
        wait_for_port(port, fn.proc, 10, fn.log_path)
        with httpx.Client() as client:
            assert client.get(fn.url + "/metrics").text == "ok"  # the function's route is the user's
            client.get(fn.url + "/?fail=1")
            text = client.get(f"http://127.0.0.1:{port}/metrics").text
    assert 'openfunction_function_invocations_total{function="counted",runtime="Knative"} 2.0' in text
    assert 'openfunction_function_errors_total{function="counted",runtime="Knative"} 1.0' in text
    assert "openfunction_function_duration_seconds_bucket" in text
    assert "process_cpu_seconds_total" in text


@pytest.mark.integration
def test_metrics_on_the_function_port_stop_start_up(tmp_path):
    (tmp_path / "main.py").write_text(SOURCE)
    port = free_port()
    out = subprocess.run(
        [FUNCTIONS_FRAMEWORK, "--source", str(tmp_path / "main.py"), "--target", "f",
         "--port", str(port), "--host", "127.0.0.1"],
        env={"METRICS_PORT": str(port), "PATH": "/usr/bin:/bin"},
        capture_output=True, text=True, timeout=30,
    )
    assert out.returncode == 2
    assert f"METRICS_PORT is the function's port ({port})" in out.stderr
