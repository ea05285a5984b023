"""`DaprConnection`: bounded, shared connection attempts; `DaprSettings` timeouts."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Iterator

import pytest

from dapr_doubles import run
from openfunction.config import DaprEndpoint
from openfunction.dapr import connection as connection_module
from openfunction.dapr.connection import DaprConnection, DaprSettings, sidecar_error
from openfunction.errors import ConfigError, DaprUnavailableError, OutputError
from support.process import free_port

SENDS = 6
TIMEOUT = 1.0
# the old code took SENDS x TIMEOUT for the last waiter; every waiter must now be done in
# about TIMEOUT: the bound is generous for a busy 2-CPU machine and far below SENDS x TIMEOUT
BOUND = 2.5 * TIMEOUT


def settings_for(grpc_port: int, connect_timeout: float = TIMEOUT) -> DaprSettings:
    return DaprSettings(DaprEndpoint("127.0.0.1", grpc_port, free_port()),
                        connect_timeout=connect_timeout, api_timeout=5.0)


@contextmanager
def silent_socket() -> Iterator[int]:
    """A port on 127.0.0.1 that accepts TCP connections (backlog) and never answers."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(16)
        yield sock.getsockname()[1]


@contextmanager
def loop_in_thread() -> Iterator[asyncio.AbstractEventLoop]:
    """An event loop in its own thread, as the runtimes run it beside `def` workers."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    try:
        yield loop
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()


async def grpc_server(port: int = 0):
    """A gRPC server with no services: channels get READY, calls answer UNIMPLEMENTED."""
    import grpc.aio

    server = grpc.aio.server()
    bound = server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    return server, bound


def timed_ensures(connection: DaprConnection, loop: asyncio.AbstractEventLoop,
                  count: int) -> list[tuple[float, BaseException | None]]:
    """`count` worker threads each block on `connection.ensure()`, as `ctx.send` does."""

    def one() -> tuple[float, BaseException | None]:
        started = time.monotonic()
        try:
            asyncio.run_coroutine_threadsafe(connection.ensure(), loop).result(30)
            error = None
        except BaseException as exc:  # noqa: BLE001 - recorded for the assertions
            error = exc
        return time.monotonic() - started, error

    with ThreadPoolExecutor(count) as pool:
        return list(pool.map(lambda _: one(), range(count)))


# ---------------------------------------------------------------- outages


@pytest.mark.parametrize("outage", ["refused", "silent"])
def test_concurrent_sends_from_worker_threads_each_wait_about_the_connect_timeout(outage):
    with silent_socket() as silent_port, loop_in_thread() as loop:
        port = free_port() if outage == "refused" else silent_port
        connection = DaprConnection(settings_for(port))
        try:
            results = timed_ensures(connection, loop, SENDS)
        finally:
            asyncio.run_coroutine_threadsafe(connection.close(), loop).result(10)
    for elapsed, error in results:
        assert isinstance(error, DaprUnavailableError), error
        assert f"DAPR_GRPC_PORT={port}" in str(error) and "DAPR_CONNECT_TIMEOUT" in str(error)
    waits = sorted(elapsed for elapsed, _ in results)
    assert waits[-1] < BOUND, waits
    assert not connection.connected


def test_concurrent_awaits_on_the_loop_share_one_attempt():
    async def main():
        with silent_socket() as port:
            connection = DaprConnection(settings_for(port))
            attempts = 0
            connect = connection._connect

            async def counting(deadline):
                nonlocal attempts
                attempts += 1
                await connect(deadline)

            connection._connect = counting  # type: ignore[method-assign]

            async def timed():
                started = time.monotonic()
                with pytest.raises(DaprUnavailableError):
                    await connection.invoke_binding("out", "create", b"x", {})
                return time.monotonic() - started

            waits = await asyncio.gather(*(timed() for _ in range(SENDS)))
            await connection.close()
            return attempts, waits

    attempts, waits = run(main())
    assert attempts == 1
    assert max(waits) < BOUND, waits


def test_a_late_caller_is_bounded_by_its_own_deadline():
    async def main():
        with silent_socket() as port:
            connection = DaprConnection(settings_for(port))
            first = asyncio.ensure_future(connection.ensure())
            await asyncio.sleep(TIMEOUT / 2)
            started = time.monotonic()
            with pytest.raises(DaprUnavailableError):
                await connection.ensure()
            late = time.monotonic() - started
            with pytest.raises(DaprUnavailableError):
                await first
            await connection.close()
            return late

    assert run(main()) < BOUND


def test_a_cancelled_caller_does_not_cancel_the_attempt_of_the_others():
    async def main():
        server, port = await grpc_server()
        try:
            connection = DaprConnection(settings_for(port, connect_timeout=5.0))
            gone = asyncio.ensure_future(connection.ensure())
            staying = asyncio.ensure_future(connection.ensure())
            await asyncio.sleep(0)
            gone.cancel()
            await staying
            assert gone.cancelled() and connection.connected
            await connection.close()
        finally:
            await server.stop(0)

    run(main())


def test_a_failed_attempt_is_not_cached_the_next_call_connects():
    async def main():
        port = free_port()
        connection = DaprConnection(settings_for(port, connect_timeout=0.3))
        with pytest.raises(DaprUnavailableError):
            await connection.ensure()
        assert not connection.connected
        server, _ = await grpc_server(port)
        try:
            await asyncio.wait_for(connection.ensure(), 10)
            assert connection.connected
        finally:
            await connection.close()
            await server.stop(0)

    run(main())


def test_close_ends_a_pending_attempt_and_its_waiters_promptly():
    async def main():
        with silent_socket() as port:
            connection = DaprConnection(settings_for(port, connect_timeout=30.0))
            waiter = asyncio.ensure_future(connection.ensure())
            await asyncio.sleep(0.1)
            started = time.monotonic()
            await connection.close()
            with pytest.raises(DaprUnavailableError, match="closed"):
                await asyncio.wait_for(waiter, 10)
            assert time.monotonic() - started < 10
            assert not connection.connected and connection._attempt is None

    run(main())


# ---------------------------------------------------------------- healthy sidecar


def test_healthy_sidecar_one_connection_for_every_concurrent_caller():
    async def main():
        server, port = await grpc_server()
        try:
            connection = DaprConnection(settings_for(port, connect_timeout=5.0))
            await asyncio.gather(*(connection.ensure() for _ in range(SENDS)))
            channel = connection._channel
            assert channel is not None
            await connection.ensure()  # reused, not reopened
            assert connection._channel is channel
            # the calls are bound: a sidecar without the Dapr API answers UNIMPLEMENTED
            with pytest.raises(OutputError, match="UNIMPLEMENTED"):
                await connection.invoke_binding("out", "create", b"x", {})
            await connection.close()
            assert not connection.connected
        finally:
            await server.stop(0)

    run(main())


def test_healthy_sidecar_from_worker_threads():
    with loop_in_thread() as loop:
        server, port = asyncio.run_coroutine_threadsafe(grpc_server(), loop).result(10)
        connection = DaprConnection(settings_for(port, connect_timeout=5.0))
        try:
            results = timed_ensures(connection, loop, SENDS)
            assert [error for _, error in results] == [None] * SENDS
            assert connection.connected
        finally:
            asyncio.run_coroutine_threadsafe(connection.close(), loop).result(10)
            asyncio.run_coroutine_threadsafe(server.stop(0), loop).result(10)


# ---------------------------------------------------------------- settings

TIMEOUT_VARIABLES = ["DAPR_CONNECT_TIMEOUT", "DAPR_API_TIMEOUT_SECONDS", "DAPR_HEALTH_TIMEOUT"]


@pytest.mark.parametrize("name", TIMEOUT_VARIABLES)
@pytest.mark.parametrize("text", ["nan", "NaN", "-nan", "inf", "+inf", "-inf", "Infinity",
                                  "1e400", "0", "-1", "soon"])
def test_timeouts_must_be_finite_and_positive(name, text):
    with pytest.raises(ConfigError) as info:
        DaprSettings.from_env(DaprEndpoint(), {name: text})
    error = info.value
    assert error.title == f"{name} is invalid: {text!r}"
    assert "finite" in error.detail and name in error.hint and "unset it" in error.hint


@pytest.mark.parametrize("name", TIMEOUT_VARIABLES)
def test_finite_positive_timeouts_are_accepted(name):
    field = {"DAPR_CONNECT_TIMEOUT": "connect_timeout", "DAPR_API_TIMEOUT_SECONDS": "api_timeout",
             "DAPR_HEALTH_TIMEOUT": "health_timeout"}[name]
    settings = DaprSettings.from_env(DaprEndpoint(), {name: " 0.25 "})
    assert getattr(settings, field) == 0.25


# ---------------------------------------------------------------- errors answered by the sidecar

# what daprd 1.16.5 answers (probed against the real sidecar)
SIDECAR_ANSWERS = [
    ("INTERNAL", "error invoking output binding nope: couldn't find output binding nope",
     "", "check that the component exists"),
    ("INVALID_ARGUMENT", "pubsub nope is not found", "", "check that the component exists"),
    ("INVALID_ARGUMENT", "state store nope is not found", "", "check that the component exists"),
    ("NOT_FOUND", "no such thing", "", "check that the component exists"),
    ("INVALID_ARGUMENT", "state key cannot be empty",
     ": the sidecar refused the request's arguments", "correct what the message names"),
    ("INVALID_ARGUMENT", "input key/keyPrefix 'a||b' can't contain '||'",
     ": the sidecar refused the request's arguments", "correct what the message names"),
    ("RESOURCE_EXHAUSTED", "grpc: received message larger than max (10485789 vs. 4194304)",
     ": the message is larger than the sidecar accepts", "--max-body-size"),
    ("RESOURCE_EXHAUSTED", "CLIENT: Sent message larger than max (70000029 vs. 67108864)",
     ": the message is too large to send", "send less than 64 MiB"),
    ("RESOURCE_EXHAUSTED", "rate limit reached", ": the sidecar or the component is out of a "
     "resource", "retry later"),
    ("UNAUTHENTICATED", "authentication error: api token mismatch",
     ": the sidecar refused the call", "DAPR_API_TOKEN"),
]


@pytest.mark.parametrize("code,details,title,hint", SIDECAR_ANSWERS)
def test_the_hint_fits_the_status_the_sidecar_answered(code, details, title, hint):
    error = sidecar_error("invoking binding 'sink'", code, details)
    assert isinstance(error, OutputError)
    assert error.title == f"invoking binding 'sink' failed{title}"
    assert hint in error.hint
    if hint != "check that the component exists":
        assert "component exists" not in error.hint
    if details.startswith("CLIENT:"):
        # the client refused: the sidecar never saw the message, and says nothing
        assert "answered" not in error.detail
        assert "refused to send it" in error.detail and "70000029 vs. 67108864" in error.detail
    else:
        assert f"the Dapr sidecar answered {code}: {details}" in error.detail


async def aborting_server(code_name: str, details: str, max_receive: int | None = None):
    """A gRPC server answering every Dapr call with `code_name` (or, with `max_receive`, one
    that accepts messages up to that size and answers the others with an empty response)."""
    import grpc
    import grpc.aio

    async def handler(request: bytes, context):
        if max_receive is None:
            await context.abort(getattr(grpc.StatusCode, code_name), details)
        return b""

    generic = grpc.method_handlers_generic_handler("dapr.proto.runtime.v1.Dapr", {
        name: grpc.unary_unary_rpc_method_handler(handler)
        for name in ("InvokeBinding", "PublishEvent", "GetState", "SaveState", "DeleteState")
    })
    options = [("grpc.max_receive_message_length", max_receive)] if max_receive else []
    server = grpc.aio.server(options=options)
    server.add_generic_rpc_handlers((generic,))
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    return server, port


def test_an_invalid_argument_answer_names_the_arguments_not_the_component():
    async def main():
        server, port = await aborting_server("INVALID_ARGUMENT", "state key cannot be empty")
        connection = DaprConnection(settings_for(port, connect_timeout=5.0))
        try:
            with pytest.raises(OutputError) as info:
                await connection.save_state("store", "k", b"v")
        finally:
            await connection.close()
            await server.stop(0)
        return info.value

    error = run(main())
    assert error.title == "saving key 'k' in store 'store' failed: the sidecar refused the request's arguments"
    assert "INVALID_ARGUMENT: state key cannot be empty" in error.detail
    assert "component exists" not in error.hint


def test_a_message_over_the_sidecars_limit_names_the_limit():
    async def main():
        server, port = await aborting_server("", "", max_receive=1024)
        connection = DaprConnection(settings_for(port, connect_timeout=5.0))
        try:
            with pytest.raises(OutputError) as info:
                await connection.invoke_binding("sink", "create", b"x" * 4096, {})
        finally:
            await connection.close()
            await server.stop(0)
        return info.value

    error = run(main())
    assert error.title == "invoking binding 'sink' failed: the message is larger than the sidecar accepts"
    assert "RESOURCE_EXHAUSTED" in error.detail and "--max-body-size" in error.hint


def test_a_message_over_the_clients_limit_says_the_client_refused(monkeypatch):
    monkeypatch.setattr(connection_module, "MAX_MESSAGE_BYTES", 1024)

    async def main():
        server, port = await aborting_server("", "", max_receive=1024 * 1024)
        connection = DaprConnection(settings_for(port, connect_timeout=5.0))
        try:
            with pytest.raises(OutputError) as info:
                await connection.publish_event("bus", "orders", b"x" * 4096, "text/plain", {})
        finally:
            await connection.close()
            await server.stop(0)
        return info.value

    error = run(main())
    assert error.title == ("publishing to topic 'orders' of 'bus' failed: "
                           "the message is too large to send")
    assert "the function's gRPC client refused to send it" in error.detail
    assert "the Dapr sidecar answered" not in str(error)
    assert "send less than" in error.hint
