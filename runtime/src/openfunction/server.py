"""Serve the ASGI app with uvicorn (uvloop + httptools when installed).

The listening socket is bound here first, so a port already in use is reported as a
clear start-up error. On SIGTERM uvicorn stops accepting, lets in-flight requests finish
within the grace period, and the process exits 0. Requests still running when the grace
period is over are cancelled and the process exits 1 at once: a `def` function stuck in a
worker thread cannot be stopped, and waiting for it would never end.
"""

from __future__ import annotations

import contextlib
import errno
import importlib.util
import logging
import socket
from typing import Any, Iterator

from openfunction.errors import ServeError

logger = logging.getLogger("openfunction")

DEFAULT_GRACE_PERIOD = 30.0


def bind_socket(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise ServeError(
                f"port {port} is already in use",
                f"another process listens on {host}:{port}.",
                "stop it, or choose another port with --port / PORT",
            ) from None
        if exc.errno == errno.EACCES:
            raise ServeError(
                f"not allowed to listen on port {port}",
                "ports below 1024 need extra privileges.",
                "use a port above 1024 with --port / PORT (8080 is the default)",
            ) from None
        raise ServeError(f"cannot listen on {host}:{port}", str(exc),
                         "check --host / HOST and --port / PORT") from None
    sock.listen(2048)
    sock.setblocking(False)
    return sock


def event_loop_name() -> str:
    return "uvloop" if importlib.util.find_spec("uvloop") else "asyncio"


def http_protocol_name() -> str:
    return "httptools" if importlib.util.find_spec("httptools") else "h11"


def _graceful_server_class() -> Any:
    import uvicorn

    class GracefulServer(uvicorn.Server):
        """uvicorn re-raises a caught SIGTERM after draining; a drained function exits 0."""

        drained = True
        """False once the grace period ran out with requests in flight (uvicorn cancels them)."""

        async def shutdown(self, sockets: Any = None) -> None:
            self.drained = False
            await super().shutdown(sockets)

        async def _wait_tasks_to_complete(self) -> None:
            await super()._wait_tasks_to_complete()
            self.drained = True

        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:
            with super().capture_signals():
                try:
                    yield
                finally:
                    if self._captured_signals:
                        if self.drained:
                            logger.info("stopped after finishing in-flight requests")
                        else:
                            logger.error(
                                "stopped: requests were still running when the grace period "
                                "(%gs, --grace-period / GRACEFUL_SHUTDOWN_TIMEOUT) ran out; "
                                "they were cancelled", self.config.timeout_graceful_shutdown)
                    self._captured_signals.clear()

    return GracefulServer


def serve(app: Any, host: str, port: int, *, grace_period: float, log_level: str,
          announce: bool = False) -> bool:
    """Serve until stopped; False when requests had to be cancelled at the end (the caller
    exits at once then: a `def` function may still be running in a worker thread)."""
    import uvicorn

    sock = bind_socket(host, port)
    if announce:
        logger.info("listening on %s:%s (%s, %s)", host, port, event_loop_name(),
                    http_protocol_name())
    config = uvicorn.Config(
        app,
        loop=event_loop_name(),
        http=http_protocol_name(),
        lifespan="on",
        access_log=False,
        log_config=None,
        log_level=log_level.lower(),
        # uvicorn waits with asyncio.wait_for, which takes a fraction of a second too
        timeout_graceful_shutdown=grace_period,  # type: ignore[arg-type]
        server_header=False,
        date_header=True,
    )
    server = _graceful_server_class()(config)
    server.run(sockets=[sock])
    if server.started is False and not getattr(server, "should_exit", False):
        raise ServeError("the server did not start", "see the log above.", "")
    return bool(server.drained)
