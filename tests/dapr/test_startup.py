"""Start-up settings and checks: protocol, timeouts, sidecar readiness, port."""

import asyncio
import socket
import time

import pytest

from dapr_doubles import run
from openfunction.config import Component, DaprEndpoint, FunctionConfig
from openfunction.dapr.connection import DaprSettings, wait_for_sidecar
from openfunction.dapr.server import app_protocol, check_port
from openfunction.dapr.services import dapr_connection, dapr_services
from openfunction.errors import ConfigError, DaprUnavailableError, ServeError
from support.process import free_port


def test_app_protocol():
    assert app_protocol({}) == "grpc"
    assert app_protocol({"APP_PROTOCOL": "HTTP"}) == "http"
    with pytest.raises(ConfigError, match="APP_PROTOCOL is invalid"):
        app_protocol({"APP_PROTOCOL": "grpcs"})


def test_settings_from_env():
    settings = DaprSettings.from_env(DaprEndpoint(), {
        "DAPR_CONNECT_TIMEOUT": "2", "DAPR_API_TIMEOUT_SECONDS": "9.5",
        "DAPR_HEALTH_TIMEOUT": "30", "DAPR_API_TOKEN": "t"})
    assert (settings.connect_timeout, settings.api_timeout, settings.health_timeout,
            settings.api_token) == (2, 9.5, 30, "t")
    with pytest.raises(ConfigError, match="DAPR_HEALTH_TIMEOUT is invalid"):
        DaprSettings.from_env(DaprEndpoint(), {"DAPR_HEALTH_TIMEOUT": "soon"})


def test_services_connect_lazily():
    config = FunctionConfig(name="fn", outputs={"o": Component("o", "o", "bindings.redis")},
                            states={"s": Component("s", "s", "state.redis")})
    services = dapr_services(config, {})
    connection = dapr_connection(services)
    assert connection is not None and not connection.connected
    assert services.states is not None


def test_sidecar_never_ready_is_bounded_and_clear():
    port = free_port()
    settings = DaprSettings(DaprEndpoint("127.0.0.1", free_port(), port), health_timeout=0.5)
    started = time.monotonic()
    with pytest.raises(DaprUnavailableError) as info:
        run(wait_for_sidecar(settings))
    assert time.monotonic() - started < 3
    text = str(info.value)
    assert f"127.0.0.1:{port}/v1.0/healthz/outbound" in text and "DAPR_HEALTH_TIMEOUT" in text


def test_sidecar_ready():
    async def main():
        async def answer(reader, writer):
            await reader.readline()
            writer.write(b"HTTP/1.1 204 No Content\r\n\r\n")
            await writer.drain()
            writer.close()

        server = await asyncio.start_server(answer, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        async with server:
            settings = DaprSettings(DaprEndpoint("127.0.0.1", 1, port), health_timeout=2)
            assert await wait_for_sidecar(settings) < 1

    run(main())


def test_check_port_in_use():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        with pytest.raises(ServeError, match="already in use"):
            check_port("127.0.0.1", sock.getsockname()[1])
    check_port("127.0.0.1", free_port())
