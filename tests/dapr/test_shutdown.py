"""SIGTERM on a real Async function process; the test plays daprd over gRPC."""

import json
import signal
import textwrap
import threading
import time

import grpc
import httpx
import pytest
from dapr.proto.runtime.v1 import appcallback_pb2 as pb
from dapr.proto.runtime.v1 import appcallback_pb2_grpc as pb_grpc

from support.dapr import (
    SidecarPorts, function_context, function_env, start_daprd, topic, wait_until,
    write_components,
)
from support.process import free_port, run_function

pytestmark = pytest.mark.integration

Status = pb.TopicEventResponse.TopicEventResponseStatus

SOURCE = """
    import asyncio, time

    async def slow(ctx, data):
        print(f"started {data}", flush=True)
        await asyncio.sleep(data)
        print(f"finished {data}", flush=True)

    def blocking(ctx, data):
        print(f"started {data}", flush=True)
        time.sleep(data)
        print(f"finished {data}", flush=True)
"""


def deliver(port: int, seconds: float, results: list) -> threading.Thread:
    def call():
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = pb_grpc.AppCallbackStub(channel)
            try:
                response = stub.OnTopicEvent(pb.TopicEventRequest(
                    pubsub_name="bus", topic="jobs", data=json.dumps(seconds).encode(),
                    data_content_type="application/json"), timeout=30)
                results.append(response.status)
            except grpc.RpcError as exc:
                results.append(exc.code())

    thread = threading.Thread(target=call)
    thread.start()
    return thread


def start(tmp_path, target, grace):
    path = tmp_path / "main.py"
    path.write_text(textwrap.dedent(SOURCE))
    port, ports = free_port(), SidecarPorts.free()  # no sidecar: it is still awaited
    ctx = function_context("jobs", port, inputs={"jobs": topic("bus", "jobs")})
    env = function_env(ctx, ports, GRACEFUL_SHUTDOWN_TIMEOUT=str(grace),
                       DAPR_HEALTH_TIMEOUT="60")
    return run_function(path, target, env=env, port=port), port


@pytest.mark.parametrize("target", ["slow", "blocking"])
def test_sigterm_finishes_in_flight_events_and_exits_0(tmp_path, target):
    runner, port = start(tmp_path, target, grace=10)
    with runner as fn:
        results: list = []
        thread = deliver(port, 1.0, results)
        wait_until(lambda: "started 1.0" in fn.log, timeout=10, what="the event to start")
        fn.proc.send_signal(signal.SIGTERM)
        late: list = []
        deliver(port, 0.1, late).join(10)
        thread.join(15)
        assert fn.proc.wait(timeout=15) == 0
    assert results == [Status.SUCCESS]
    assert late in ([Status.RETRY], [grpc.StatusCode.UNAVAILABLE])  # refused, never lost
    assert "finished 1.0" in fn.log and "started 0.1" not in fn.log


def test_events_past_the_grace_period_are_cancelled_for_redelivery(tmp_path):
    runner, port = start(tmp_path, "blocking", grace=0.5)
    with runner as fn:
        results: list = []
        thread = deliver(port, 20.0, results)
        wait_until(lambda: "started 20.0" in fn.log, timeout=10, what="the event to start")
        started = time.monotonic()
        fn.proc.send_signal(signal.SIGTERM)
        assert fn.proc.wait(timeout=10) == 1
        assert time.monotonic() - started < 5  # the stuck worker thread does not hold the exit
        thread.join(10)
    assert results and results[0] != Status.SUCCESS  # daprd would deliver it again
    assert "still running after 0.5s" in fn.log


def test_http_protocol_grace_period(tmp_path):
    """Over HTTP uvicorn drains and cancels; the outcome is the same."""
    path = tmp_path / "main.py"
    path.write_text(textwrap.dedent(SOURCE))
    resources = write_components(tmp_path / "resources", [])
    port, ports = free_port(), SidecarPorts.free()
    ctx = function_context("jobs", port, inputs={"jobs": topic("bus", "jobs")})
    env = function_env(ctx, ports, GRACEFUL_SHUTDOWN_TIMEOUT="0.5", APP_PROTOCOL="http")
    # a sidecar for readiness only: without an app port it never calls the function
    with start_daprd(resources, None, ports=ports), \
            run_function(path, "blocking", env=env, port=port) as fn:
        wait_until(lambda: "Application startup complete" in fn.log, timeout=15,
                   what="the HTTP app to start")
        results: list = []

        def post(seconds, into):
            try:
                into.append(httpx.post(f"{fn.url}/topics/jobs", json=seconds, timeout=30))
            except httpx.HTTPError as exc:
                into.append(exc)

        finished = threading.Thread(target=post, args=(0.5, results))
        stuck = threading.Thread(target=post, args=(20.0, results))
        finished.start(), stuck.start()
        wait_until(lambda: "started 20.0" in fn.log and "started 0.5" in fn.log, timeout=10,
                   what="both events to start")
        started = time.monotonic()
        fn.proc.send_signal(signal.SIGTERM)
        assert fn.proc.wait(timeout=10) == 1
        assert time.monotonic() - started < 5
        finished.join(10), stuck.join(10)
    answers = [r.json()["status"] if isinstance(r, httpx.Response) and r.status_code == 200
               else "error" for r in results]
    assert sorted(answers) == ["SUCCESS", "error"]  # the stuck one is not acknowledged
    assert "finished 0.5" in fn.log and "unfinished" in fn.log
