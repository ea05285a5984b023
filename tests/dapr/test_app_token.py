"""Dapr's app API token (`APP_API_TOKEN`): against a real daprd, and the pieces in-process."""

from __future__ import annotations

import logging
import textwrap

import grpc
import httpx
import pytest
from dapr.proto.runtime.v1 import appcallback_pb2, appcallback_pb2_grpc

from openfunction.dapr.app_token import AppToken
from support.dapr import (
    SidecarPorts, component, function_context, function_env, input_binding, start_daprd,
    wait_until, write_components,
)
from support.process import free_port, run_function

TICKS = """
    import os

    def handler(ctx, data):
        with open(os.environ["TICKS"], "a") as out:
            out.write("tick\\n")
"""


def ticker(tmp_path, protocol: str, app_token: str):
    """A function fed by a cron binding every second, with `APP_API_TOKEN=app_token`: its
    daprd's resources, source, env, port, sidecar ports and the file it counts ticks in."""
    resources = write_components(tmp_path / "resources", [
        component("cron", "bindings.cron", schedule="@every 1s")])
    source = tmp_path / "main.py"
    source.write_text(textwrap.dedent(TICKS))
    ticks = tmp_path / "ticks.txt"
    port, ports = free_port(), SidecarPorts.free()
    ctx = function_context("ticker", port, inputs={"cron": input_binding("cron")})
    env = function_env(ctx, ports, APP_PROTOCOL=protocol, APP_API_TOKEN=app_token,
                       TICKS=str(ticks))
    return resources, source, env, port, ports, ticks


def forged_event(protocol: str, port: int):
    """A cron event sent to the function's port without going through daprd: the answer."""
    if protocol == "http":
        return httpx.post(f"http://127.0.0.1:{port}/cron", content=b"", timeout=5).status_code
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = appcallback_pb2_grpc.AppCallbackStub(channel)
        try:
            stub.OnBindingEvent(appcallback_pb2.BindingEventRequest(name="cron"), timeout=5)
        except grpc.RpcError as error:
            return error.code()
        return grpc.StatusCode.OK


@pytest.mark.integration
@pytest.mark.parametrize("protocol", ["grpc", "http"])
def test_a_daprd_with_the_same_token_feeds_the_function_and_nobody_else_can(tmp_path, protocol):
    resources, source, env, port, ports, ticks = ticker(tmp_path, protocol, "s3cret")
    with run_function(source, "handler", env=env, port=port) as fn, \
            start_daprd(resources, port, ports=ports, app_protocol=protocol, wait="app",
                        env={"APP_API_TOKEN": "s3cret"}):
        wait_until(lambda: ticks.exists() and len(ticks.read_text().split()) >= 2,
                   timeout=20, what="two cron events through the token-checking function")
        before = len(ticks.read_text().split())
        assert forged_event(protocol, port) in (401, grpc.StatusCode.UNAUTHENTICATED)
        assert fn.terminate() == 0
    assert "rejected an event without the app API token (no dapr-api-token, 1 so far)" in fn.log
    assert before >= 2 and "Traceback" not in fn.log


@pytest.mark.integration
@pytest.mark.parametrize("protocol", ["grpc", "http"])
def test_a_daprd_with_another_token_is_turned_away_with_a_clear_error(tmp_path, protocol):
    resources, source, env, port, ports, ticks = ticker(tmp_path, protocol, "s3cret")
    with run_function(source, "handler", env=env, port=port) as fn, \
            start_daprd(resources, port, ports=ports, app_protocol=protocol, wait="outbound",
                        env={"APP_API_TOKEN": "other"}):
        wait_until(lambda: "a different dapr-api-token" in fn.log, timeout=20,
                   what="the function to turn daprd's call away")
    assert not ticks.exists()
    assert "Give the sidecar the same token" in fn.log


def test_the_token_is_compared_exactly_and_rejections_are_logged_sparingly(caplog):
    token = AppToken("s3cret")
    with caplog.at_level(logging.ERROR, "openfunction.dapr"):
        assert token.accepts("s3cret") and token.accepts(b"s3cret")
        assert not token.accepts(None)
        assert not token.accepts("s3cret ")
        assert not token.accepts("")
    assert token.rejected == 3 and len(caplog.records) == 1  # one line a minute at most
    assert "APP_API_TOKEN" in caplog.records[0].getMessage()
    assert AppToken.from_environ({}) is None
    assert AppToken.from_environ({"APP_API_TOKEN": ""}) is None
