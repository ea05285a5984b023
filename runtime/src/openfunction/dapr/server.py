"""Serve an Async function: Dapr's app callbacks on `FUNC_CONTEXT.port`.

`APP_PROTOCOL` selects the protocol as in OpenFunction's Go framework: `grpc` (the
default, a `grpc.aio` server) or `http` (uvicorn). Start-up:

1. check the inputs (a clear error for none, or for two inputs on one topic/binding);
2. listen on the port, so that daprd, which waits for it, can go on;
3. wait for the sidecar's components (`/v1.0/healthz/outbound`, bounded by
   `DAPR_HEALTH_TIMEOUT`) and connect to its gRPC API for outputs and state.

On SIGTERM (or SIGINT) new events are answered RETRY, events in flight get the grace
period to finish (their sends included), and the process exits 0. Events still running
after the grace period are cancelled, so Dapr delivers them again, and the exit code is 1.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import os
import signal
import socket
from typing import TYPE_CHECKING, Mapping

from openfunction.dapr.connection import DaprConnection, DaprSettings, wait_for_sidecar
from openfunction.dapr.dispatcher import EventDispatcher
from openfunction.dapr.services import dapr_connection
from openfunction.dapr.sidecar_check import check_sidecar
from openfunction.errors import ConfigError, FrameworkError, ServeError

if TYPE_CHECKING:
    from openfunction.cli import Function
    from openfunction.config import FunctionConfig

logger = logging.getLogger("openfunction")

PROTOCOLS = ("grpc", "http")
MAX_MESSAGE_BYTES = 64 * 1024 * 1024


def app_protocol(environ: Mapping[str, str]) -> str:
    text = environ.get("APP_PROTOCOL", "").strip().lower() or "grpc"
    if text not in PROTOCOLS:
        raise ConfigError(
            f"APP_PROTOCOL is invalid: {environ['APP_PROTOCOL']!r}",
            "the Async runtime serves Dapr's app callbacks over grpc (the default) or http.",
            "set APP_PROTOCOL=grpc or APP_PROTOCOL=http (as daprd's --app-protocol), or unset it",
        )
    return text


def check_port(host: str, port: int) -> None:
    """Fail clearly when the port cannot be had, without ever listening on it.

    (daprd waits for the app's port to accept connections, then asks once for the
    subscriptions: a port that listened for a moment would make it ask too early.)
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise ServeError(
                    f"port {port} is already in use",
                    f"another process listens on {host}:{port}.",
                    "stop it, or choose another port (FUNC_CONTEXT.port, --port / PORT)",
                ) from None
            raise ServeError(f"cannot listen on {host}:{port}", str(exc),
                             "check --host / HOST and the port (FUNC_CONTEXT.port, --port)") from None


def check_async(fn: "Function", environ: Mapping[str, str]) -> None:
    """What `serve_async` checks before serving, for `--dry-run`: raises `FrameworkError`."""
    app_protocol(environ)
    EventDispatcher(fn.config, fn.runner)


def serve_async(fn: "Function", *, host: str, grace_period: float,
                environ: Mapping[str, str] | None = None) -> None:
    """Serve `fn` until SIGTERM; raises `FrameworkError` for start-up problems."""
    env = os.environ if environ is None else environ
    protocol = app_protocol(env)
    dispatcher = EventDispatcher(fn.config, fn.runner)
    connection = dapr_connection(fn.services)
    if connection is None:
        raise ServeError(
            "the Async runtime needs the Dapr client",
            "the Dapr packages could not be imported.",
            "install openfunction-functions-framework[dapr] (the buildpack does)",
        )
    check_port(host, fn.config.port)
    for line in dispatcher.describe():
        logger.info(line)
    if protocol == "http":
        # uvicorn cancels requests only when its grace period ran out
        drained = _serve_http(fn, dispatcher, connection, host, grace_period) and (
            dispatcher.cancelled == 0)
    else:
        drained = asyncio.run(_serve_grpc(fn, dispatcher, connection, host, grace_period))
    if not drained:
        # worker threads may still run user code: do not wait for them at exit
        logger.error("exiting with event(s) unfinished; Dapr delivers them again")
        logging.shutdown()
        os._exit(1)


# ---------------------------------------------------------------- gRPC


async def _serve_grpc(fn: "Function", dispatcher: EventDispatcher, connection: DaprConnection,
                      host: str, grace_period: float) -> bool:
    import grpc.aio

    from openfunction.dapr.app_token import AppToken, grpc_interceptor
    from openfunction.dapr.grpc_app import AppCallbackService

    loop = asyncio.get_running_loop()
    fn.services.loop = loop
    token = AppToken.from_environ(os.environ)
    server = grpc.aio.server(interceptors=[grpc_interceptor(token)] if token else None, options=[
        ("grpc.so_reuseport", 0),
        ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
        ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
    ])
    AppCallbackService(dispatcher).register(server)
    address = f"[{host}]:{fn.config.port}" if ":" in host else f"{host}:{fn.config.port}"
    try:
        server.add_insecure_port(address)
    except RuntimeError as exc:
        raise ServeError(f"cannot listen on {address}", str(exc),
                         "check --host / HOST and the port (FUNC_CONTEXT.port, --port)") from None
    await server.start()
    logger.info("serving Dapr app callbacks (gRPC) on %s", address)

    stop = asyncio.Event()

    def on_signal() -> None:
        dispatcher.closing = True  # from now on new events are answered RETRY
        stop.set()

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, on_signal)
    try:
        try:
            ready = await _wait_for_sidecar_or_stop(connection.settings, connection, fn.config,
                                                    stop, "grpc")
        except BaseException:
            await server.stop(0)
            raise
        if ready:
            await stop.wait()
        logger.info("stopping: finishing %d event(s) in flight (grace period %gs)",
                    dispatcher.in_flight, grace_period)
        drained = await dispatcher.drain(grace_period)
        if drained:
            await server.stop(1.0)
            logger.info("stopped after finishing in-flight events")
        else:
            logger.error("%d event(s) still running after %gs: cancelled, Dapr will deliver "
                         "them again", dispatcher.in_flight, grace_period)
            await server.stop(0)
        return drained
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
        await _close(fn, connection)


async def _wait_for_sidecar_or_stop(settings: DaprSettings, connection: DaprConnection,
                                    config: "FunctionConfig", stop: asyncio.Event,
                                    protocol: str) -> bool:
    """Wait for the sidecar; False when asked to stop first. Raises when it never comes."""
    ready = asyncio.ensure_future(_connect(settings, connection, config, protocol))
    stopping = asyncio.ensure_future(stop.wait())
    await asyncio.wait({ready, stopping}, return_when=asyncio.FIRST_COMPLETED)
    if ready.done():
        stopping.cancel()
        ready.result()  # raises DaprUnavailableError when the sidecar never came
        return True
    ready.cancel()
    return False


async def _connect(settings: DaprSettings, connection: DaprConnection,
                   config: "FunctionConfig", protocol: str) -> None:
    endpoint = settings.endpoint
    logger.info("waiting up to %gs (DAPR_HEALTH_TIMEOUT) for the Dapr sidecar at %s:%s",
                settings.health_timeout, endpoint.host, endpoint.http_port)
    waited = await wait_for_sidecar(settings)
    await connection.ensure()
    logger.info("Dapr sidecar ready at %s (waited %.2fs)", settings.endpoint.grpc_address, waited)
    await check_sidecar(config, endpoint.host, endpoint.http_port, protocol)


async def _close(fn: "Function", connection: DaprConnection) -> None:
    try:
        await fn.pipeline.close()
    finally:
        fn.runner.close()
        await connection.close()


# ---------------------------------------------------------------- HTTP


def _serve_http(fn: "Function", dispatcher: EventDispatcher, connection: DaprConnection,
                host: str, grace_period: float) -> bool:
    from openfunction.dapr.app_token import AppToken
    from openfunction.dapr.http_app import DaprHttpApp
    from openfunction.server import serve

    failed: list[FrameworkError] = []

    async def start() -> None:
        loop = fn.services.loop = asyncio.get_running_loop()
        # uvicorn's signal handlers only take effect once start-up is over: SIGTERM while
        # waiting for the sidecar is watched here, then handed to them
        stop = asyncio.Event()
        handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}
        for sig in handlers:
            loop.add_signal_handler(sig, stop.set)
        try:
            ready = await _wait_for_sidecar_or_stop(connection.settings, connection, fn.config,
                                                    stop, "http")
        except FrameworkError as exc:
            failed.append(exc)  # raised once uvicorn has stopped: reported like the gRPC path's
            ready = False
        finally:
            for sig, handler in handlers.items():
                loop.remove_signal_handler(sig)
                signal.signal(sig, handler)
        if not ready:
            exit_server = handlers[signal.SIGTERM]
            if callable(exit_server):
                exit_server(signal.SIGTERM, None)  # uvicorn stops right after start-up

    async def stop() -> None:
        await dispatcher.drain(grace_period)
        await _close(fn, connection)

    app = DaprHttpApp(dispatcher, on_startup=[start], on_shutdown=[stop],
                      token=AppToken.from_environ(os.environ))
    logger.info("serving Dapr app callbacks (HTTP) on %s:%s", host, fn.config.port)
    level = logging.getLevelName(logging.getLogger("openfunction").getEffectiveLevel())
    drained = serve(app, host, fn.config.port, grace_period=grace_period,
                    log_level=level if isinstance(level, str) else "INFO")
    if failed:
        raise failed[0]
    return drained
