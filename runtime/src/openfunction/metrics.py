"""Prometheus metrics of the function: invocations, errors and their duration.

Off unless `METRICS_PORT` is set. Then `prometheus-client` serves the metrics on that port
(`http://<host>:<METRICS_PORT>/metrics`), on its own thread and away from the function's
route, for HTTP and Async functions alike:

| metric | type | labels |
|---|---|---|
| `openfunction_function_invocations_total` | counter | `function`, `runtime` |
| `openfunction_function_errors_total` | counter | `function`, `runtime` |
| `openfunction_function_duration_seconds` | histogram | `function`, `runtime` |

plus the client's process and Python collectors. An invocation is an error when the function
raised or answered 5xx; the duration includes the plugins' hooks. When the variable is unset
nothing is imported and no invocation pays anything.
"""

from __future__ import annotations

import errno
import logging
import time
from typing import TYPE_CHECKING, Any, Mapping

from openfunction.errors import ConfigError, ServeError

if TYPE_CHECKING:
    from openfunction.config import FunctionConfig
    from openfunction.invocation import Invocation
    from openfunction.runner import FunctionRunner

logger = logging.getLogger("openfunction")

METRICS_PORT_ENV = "METRICS_PORT"


def metrics_port(environ: Mapping[str, str]) -> int | None:
    """The port `METRICS_PORT` asks for, or None when metrics are off."""
    text = environ.get(METRICS_PORT_ENV, "").strip()
    if not text or text == "0":
        return None
    if not (text.isascii() and text.isdigit()) or not 0 < int(text) < 65536:
        raise ConfigError(
            f"{METRICS_PORT_ENV} is invalid: {text!r}",
            "it is the TCP port the Prometheus metrics are served on.",
            f"set {METRICS_PORT_ENV} to a free port such as 9090, or unset it to turn metrics off",
        )
    return int(text)


def checked_metrics_port(config: "FunctionConfig", environ: Mapping[str, str]) -> int | None:
    """`metrics_port`, also refusing the function's own port."""
    port = metrics_port(environ)
    if port is not None and port == config.port:
        raise ConfigError(
            f"{METRICS_PORT_ENV} is the function's port ({port})",
            "metrics are served beside the function, on a port of their own.",
            f"set {METRICS_PORT_ENV} to another port, e.g. 9090",
        )
    return port


class FunctionMetrics:
    """The function's metrics in a registry (the client's default one unless given)."""

    def __init__(self, config: "FunctionConfig", registry: Any = None) -> None:
        from prometheus_client import REGISTRY, Counter, Histogram

        self.registry = REGISTRY if registry is None else registry
        labels = ("function", "runtime")
        values = (config.name, str(config.runtime))
        self.invocations = Counter(
            "openfunction_function_invocations", "Invocations of the function.",
            labels, registry=self.registry,
        ).labels(*values)
        self.errors = Counter(
            "openfunction_function_errors",
            "Invocations that raised or answered with a 5xx status.",
            labels, registry=self.registry,
        ).labels(*values)
        self.duration = Histogram(
            "openfunction_function_duration_seconds",
            "Time from the first pre hook to the end of the last post hook.",
            labels, registry=self.registry,
        ).labels(*values)

    def observe(self, invocation: "Invocation", seconds: float) -> None:
        self.invocations.inc()
        self.duration.observe(seconds)
        if invocation.failed:
            self.errors.inc()

    def instrument(self, runner: "FunctionRunner") -> None:
        """Count every invocation `runner` runs, whatever server feeds it."""
        run = runner.run
        observe = self.observe
        clock = time.perf_counter

        async def measured(invocation: "Invocation") -> None:
            started = clock()
            try:
                await run(invocation)
            finally:
                observe(invocation, clock() - started)

        runner.run = measured  # type: ignore[method-assign]

    def serve(self, host: str, port: int) -> Any:
        """Serve the registry on `host:port` from a daemon thread; return the server."""
        from prometheus_client import start_http_server

        try:
            server, _ = start_http_server(port, addr=host, registry=self.registry)
        except OSError as exc:
            detail = (f"another process listens on {host}:{port}."
                      if exc.errno == errno.EADDRINUSE else str(exc))
            raise ServeError(
                f"cannot serve metrics on port {port}",
                detail,
                f"choose another {METRICS_PORT_ENV} (it must differ from the function's port)",
            ) from None
        logger.info("metrics: http://%s:%s/metrics", host, port)
        return server


def enable_metrics(runner: "FunctionRunner", config: "FunctionConfig", host: str,
                   environ: Mapping[str, str]) -> FunctionMetrics | None:
    """Instrument `runner` and serve metrics when `METRICS_PORT` is set; else do nothing."""
    port = checked_metrics_port(config, environ)
    if port is None:
        return None
    metrics = FunctionMetrics(config)
    metrics.instrument(runner)
    metrics.serve(host, port)
    return metrics
