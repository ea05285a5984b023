"""`functions-framework`: serve a Python function.

    functions-framework --source main.py --target hello

Every flag has an environment variable (the flag wins): FUNCTION_TARGET,
FUNCTION_SOURCE, FUNCTION_SIGNATURE_TYPE, HOST, PORT, DEBUG, DRY_RUN, LOG_LEVEL,
GRACEFUL_SHUTDOWN_TIMEOUT. OpenFunction's FUNC_CONTEXT supplies the rest.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import math
import os
import sys
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Mapping, Sequence

from openfunction import __version__
from openfunction.config import FunctionConfig, Runtime, load_config
from openfunction.context import NoSidecarSender, Services
from openfunction.errors import ConfigError, FrameworkError, PluginError
from openfunction.heap import freeze_startup_objects
from openfunction.loader import DEFAULT_SOURCE, LoadedFunction, load_function
from openfunction.logs import configure_logging
from openfunction.metrics import checked_metrics_port, enable_metrics, metrics_port
from openfunction.plugins import build_pipeline
from openfunction.plugins.pipeline import Pipeline
from openfunction.runner import FunctionRunner
from openfunction.server import DEFAULT_GRACE_PERIOD, serve
from openfunction.signature import SignatureType

logger = logging.getLogger("openfunction")

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"", "0", "false", "no", "off"}


@dataclass(frozen=True)
class Options:
    target: str
    source: str
    signature: SignatureType | None
    host: str
    port: int | None
    debug: bool
    dry_run: bool
    log_level: str
    grace_period: float


def parse_options(argv: Sequence[str] | None, environ: Mapping[str, str]) -> Options:
    parser = argparse.ArgumentParser(
        prog="functions-framework",
        description="Serve a Python function (OpenFunction functions framework).",
    )
    parser.add_argument("--target", help="name of the function to serve [FUNCTION_TARGET]")
    parser.add_argument(
        "--source", help=f"file or package that defines it [FUNCTION_SOURCE] (default {DEFAULT_SOURCE})"
    )
    parser.add_argument(
        "--signature-type",
        help="http, cloudevent or openfunction [FUNCTION_SIGNATURE_TYPE] "
        "(default: from the decorator, else inferred)",
    )
    parser.add_argument("--host", help="address to listen on [HOST] (default 0.0.0.0)")
    parser.add_argument("--port", help="port to listen on [PORT] (default FUNC_CONTEXT's port, else 8080)")
    parser.add_argument("--debug", action="store_true", default=None,
                        help="debug logs and reload on code changes [DEBUG]")
    parser.add_argument("--dry-run", action="store_true", default=None,
                        help="load and check everything, print what would be served, exit [DRY_RUN]")
    parser.add_argument("--grace-period", help="seconds to finish in-flight work on SIGTERM "
                        f"[GRACEFUL_SHUTDOWN_TIMEOUT] (default {DEFAULT_GRACE_PERIOD:g})")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    args = parser.parse_args(argv)

    def pick(flag: str | None, *names: str) -> str:
        if flag is not None:
            return flag
        for name in names:
            if environ.get(name):
                return environ[name]
        return ""

    signature_text = pick(args.signature_type, "FUNCTION_SIGNATURE_TYPE", "FUNC_SIGNATURE_TYPE")
    signature = None
    if signature_text:
        try:
            signature = SignatureType.parse(signature_text)
        except ValueError:
            where = "--signature-type" if args.signature_type else "FUNCTION_SIGNATURE_TYPE"
            raise ConfigError(
                f"{where} is invalid: {signature_text!r}",
                "the signature types are http, cloudevent and openfunction.",
                f"set {where} to one of them",
            ) from None

    port_text = pick(args.port, "PORT")
    port = None
    if port_text:
        if not (port_text.isascii() and port_text.isdigit()) or not 0 < int(port_text) < 65536:
            where = "--port" if args.port else "PORT"
            raise ConfigError(f"{where} is invalid: {port_text!r}",
                              "a port is a number from 1 to 65535.", f"set {where} to e.g. 8080")
        port = int(port_text)

    grace_text = pick(args.grace_period, "GRACEFUL_SHUTDOWN_TIMEOUT")
    grace = DEFAULT_GRACE_PERIOD
    if grace_text:
        try:
            grace = float(grace_text)
            if not 0 <= grace < math.inf:  # also refuses nan
                raise ValueError
        except ValueError:
            where = "--grace-period" if args.grace_period else "GRACEFUL_SHUTDOWN_TIMEOUT"
            raise ConfigError(f"{where} is invalid: {grace_text!r}",
                              "it is a number of seconds.", f"set {where} to e.g. 30") from None

    debug = args.debug if args.debug is not None else _env_bool(environ, "DEBUG")
    dry_run = args.dry_run if args.dry_run is not None else _env_bool(environ, "DRY_RUN")
    log_level = (environ.get("LOG_LEVEL") or ("DEBUG" if debug else "INFO")).upper()
    if log_level not in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"):
        raise ConfigError(f"LOG_LEVEL is invalid: {log_level!r}",
                          "use DEBUG, INFO, WARNING, ERROR or CRITICAL.", "fix LOG_LEVEL")
    return Options(
        target=pick(args.target, "FUNCTION_TARGET", "FUNC_NAME"),
        source=pick(args.source, "FUNCTION_SOURCE", "FUNC_SRC") or DEFAULT_SOURCE,
        signature=signature,
        host=pick(args.host, "HOST") or "0.0.0.0",
        port=port,
        debug=debug,
        dry_run=dry_run,
        log_level=log_level,
        grace_period=grace,
    )


def _env_bool(environ: Mapping[str, str], name: str) -> bool:
    value = environ.get(name, "").strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ConfigError(f"{name} is invalid: {environ[name]!r}", "it is a boolean.",
                      f"set {name}=true or {name}=false")


@dataclass
class Function:
    """Everything loaded at start-up: configuration, function, plugins, services."""

    config: FunctionConfig
    loaded: LoadedFunction
    pipeline: Pipeline
    services: Services
    runner: FunctionRunner


def load(options: Options, environ: Mapping[str, str]) -> Function:
    config = load_config(environ)
    if options.port is not None:
        config = replace(config, port=options.port)
    loaded = load_function(options.source, options.target, options.signature, config.runtime)
    if not config.from_func_context:
        config = replace(config, name=loaded.target)
    if config.runtime is Runtime.ASYNC and loaded.signature is not SignatureType.OPENFUNCTION:
        raise ConfigError(
            f"the Async runtime needs the openfunction signature, not {loaded.signature}",
            "events from Dapr are delivered as func(ctx, data).",
            "define the function as def handler(ctx, data) (or decorate it with "
            "@openfunction.function)" + (
                f" and remove its {loaded.signature.decorator} decorator"
                if loaded.signature_origin == "decorator"
                else " and drop --signature-type / FUNCTION_SIGNATURE_TYPE"),
        )
    try:
        pipeline = build_pipeline(config, loaded.source.parent)
    except FrameworkError:
        raise
    except Exception as exc:  # noqa: BLE001 - a plugin's setup failed
        raise PluginError("a plugin failed to set up", f"{type(exc).__name__}: {exc}",
                          "check the plugin's configuration") from None
    services = make_services(config)
    runner = FunctionRunner(loaded, pipeline, services)
    return Function(config, loaded, pipeline, services, runner)


def make_services(config: FunctionConfig) -> Services:
    if not (config.outputs or config.states or config.runtime is Runtime.ASYNC):
        return Services(sender=NoSidecarSender("the function has no outputs.", ""))
    try:
        from openfunction.dapr.services import dapr_services
    except ImportError as exc:
        return Services(
            sender=NoSidecarSender(
                f"the Dapr client is not installed ({exc}).",
                "install openfunction-functions-framework[dapr] (the buildpack does)",
            )
        )
    return dapr_services(config)


def describe(fn: Function, host: str) -> str:
    config, loaded = fn.config, fn.loaded
    where = (
        f"http://{host}:{config.port}{config.http_pattern}"
        if config.runtime is Runtime.KNATIVE
        else f"Dapr app callbacks ({os.environ.get('APP_PROTOCOL') or 'grpc'}) on {host}:{config.port}, inputs: "
        + (", ".join(f"{k} ({v.component_type})" for k, v in config.inputs.items()) or "none")
    )
    lines = [
        f"function {config.name!r}: {loaded.target}() from {loaded.source} "
        f"[{loaded.signature} signature ({loaded.signature_origin}), "
        f"{'async' if loaded.is_async else 'sync'}]",
        f"runtime {config.runtime} ({'FUNC_CONTEXT' if config.from_func_context else 'local defaults'}"
        f", mode {config.mode}), serving {where}",
    ]
    if config.outputs:
        lines.append("outputs: " + ", ".join(
            f"{k} ({v.component_type} {v.target})" for k, v in config.outputs.items()))
    if fn.pipeline:
        lines.append(f"plugins: pre={list(fn.pipeline.pre_names)} post={list(fn.pipeline.post_names)}")
    if config.tracing_enabled:
        lines.append(f"tracing: {config.tracing_provider}")
    return "\n".join(lines)


def create_app(fn: Function, options: Options):  # type: ignore[no-untyped-def]
    from openfunction.app import FunctionApp

    async def bind_loop() -> None:
        fn.services.loop = asyncio.get_running_loop()

    async def close() -> None:
        await fn.pipeline.close()
        fn.runner.close()

    return FunctionApp(
        fn.config,
        fn.runner,
        on_startup=[bind_loop],
        on_shutdown=[close],
        expose_errors=options.debug,
    )


def create_app_from_env():  # type: ignore[no-untyped-def]
    """App factory used by `--debug` reloads (uvicorn imports it in a fresh process)."""
    options = parse_options([], os.environ)
    configure_logging(options.log_level)
    try:
        return create_app(load(options, os.environ), options)
    except FrameworkError as exc:
        # the reloader keeps watching: the next change loads the source again
        print(f"error: {exc}\nwaiting for a change to reload", file=sys.stderr, flush=True)
        sys.exit(exc.exit_code)


def main(argv: Sequence[str] | None = None) -> int:
    environ = os.environ
    try:
        options = parse_options(argv, environ)
        configure_logging(options.log_level)
        fn = load(options, environ)
        if options.dry_run:
            check_serving(fn, options, environ)
            print(describe(fn, options.host))
            print("dry run: configuration, function and plugins are valid; not serving")
            return 0
        for line in describe(fn, options.host).splitlines():
            logger.info(line)
        if fn.config.runtime is Runtime.KNATIVE and fn.config.inputs:
            logger.warning("FUNC_CONTEXT.inputs is ignored: a Knative function is called over "
                           "HTTP; inputs deliver events to an Async function")
        if options.debug and metrics_port(environ):
            logger.warning("METRICS_PORT is ignored with --debug (reloads run in other processes)")
        elif not options.debug:
            enable_metrics(fn.runner, fn.config, options.host, environ)
        if not options.debug:
            freeze_startup_objects()
        if fn.config.runtime is Runtime.ASYNC:
            from openfunction.dapr.server import serve_async

            serve_async(fn, host=options.host, grace_period=options.grace_period)
            return 0
        if options.debug:
            return _serve_with_reload(options, fn)
        drained = serve(create_app(fn, options), options.host, fn.config.port,
                        grace_period=options.grace_period, log_level=options.log_level,
                        announce=True)
        if not drained:
            # a cancelled `def` function may still run in a worker thread, which the
            # interpreter would wait for at exit: leave without it
            logging.shutdown()
            os._exit(1)
        return 0
    except FrameworkError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        return 130


def check_serving(fn: Function, options: Options, environ: Mapping[str, str]) -> None:
    """For `--dry-run`: the checks serving makes before it listens (metrics port, the Async
    runtime's inputs and APP_PROTOCOL), without listening."""
    if not options.debug:
        checked_metrics_port(fn.config, environ)
    if fn.config.runtime is Runtime.ASYNC:
        from openfunction.dapr.server import check_async

        check_async(fn, environ)


def _serve_with_reload(options: Options, fn: Function) -> int:
    import uvicorn

    from openfunction.server import bind_socket

    bind_socket(options.host, fn.config.port).close()  # clear error if the port is taken
    os.environ["FUNCTION_SOURCE"] = str(fn.loaded.source)
    os.environ["FUNCTION_TARGET"] = fn.loaded.target
    os.environ["FUNCTION_SIGNATURE_TYPE"] = str(fn.loaded.signature)
    os.environ["PORT"] = str(fn.config.port)
    uvicorn.run(
        "openfunction.cli:create_app_from_env",
        factory=True,
        host=options.host,
        port=fn.config.port,
        reload=True,
        reload_dirs=[str(Path(fn.loaded.source).parent)],
        log_config=None,
        log_level=options.log_level.lower(),
    )
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
