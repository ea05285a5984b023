"""bin/build: check the function, then contribute the layers and the `web` process.

Checks that need nothing installed (function source and target, Python version, what the
requirement files ask for) run first, so a mistake fails the build in a second instead of
after an install.
"""

from __future__ import annotations

import shutil
from collections.abc import Mapping, Sequence

from ofn_buildpack import errors, function_source, python_version
from ofn_buildpack.app_files import VENDOR_DIR, AppFiles
from ofn_buildpack.cnb import BuildContext, Process
from ofn_buildpack.function_source import FunctionSettings, FunctionSpec
from ofn_buildpack.installer import Uv
from ofn_buildpack.layers import dependencies, function, runtime
from ofn_buildpack.log import Log
from ofn_buildpack.python_version import StackPython

PROCESS_TYPE = "web"
COMMAND = "functions-framework"
_TRUE = {"1", "true", "yes", "on"}


def main(argv: Sequence[str], environ: Mapping[str, str], log: Log | None = None) -> int:
    log = log or Log()
    try:
        ctx = BuildContext.from_process(argv, environ)
        build(ctx, log)
        return 0
    except errors.KNOWN_ERRORS as exc:
        message = errors.describe(exc)
    except Exception as exc:  # noqa: BLE001 - reported as an internal error, not a traceback
        message = errors.internal(exc)
    log.error(message.title, message.body)
    return 1


def build(ctx: BuildContext, log: Log) -> None:
    log.header(f"OpenFunction Python function buildpack {ctx.buildpack.version}")
    app = AppFiles(ctx.app_dir)
    python = StackPython.current()

    spec = function_source.resolve(ctx.app_dir, FunctionSettings.from_env(ctx.env))
    log.step(_describe_function(spec))
    for notice in python_version.check(app, python):
        message = errors.python_version_notice(notice)
        log.warning(message.title, message.body)
    log.step(f"Python {python.text} ({python.executable})")
    requirements = dependencies.find_requirements(app)
    setup_scripts = [name for name in ("setup.py", "setup.cfg") if (app.app_dir / name).is_file()]
    if setup_scripts and requirements is None and app.requirements is None and "dependencies" not in (
            (app.pyproject() or {}).get("project") or {}):
        message = errors.setup_script_not_read(setup_scripts)
        log.warning(message.title, message.body)

    uv = Uv.locate(ctx.env, ctx.buildpack.dir)
    rt = runtime.contribute(ctx, uv, python, log)
    dependencies.contribute(ctx, app, requirements, uv, python, rt, log)
    function.contribute(ctx, spec, log)
    ctx.write_launch([Process(PROCESS_TYPE, [COMMAND], default=True)])
    log.step(f"Process {PROCESS_TYPE!r} (default): {COMMAND}")

    if ctx.env.get("FUNC_CLEAR_SOURCE", "").strip().lower() in _TRUE:
        _clear_build_inputs(app, log)


def _describe_function(spec: FunctionSpec) -> str:
    origin = "found in the source" if spec.target_origin == "source" else f"from {spec.target_origin}"
    signature = spec.signature_type or "decided by the framework"
    return f"Function {spec.target}() in {spec.source} (target {origin}; signature: {signature})"


def _clear_build_inputs(app: AppFiles, log: Log) -> None:
    """FUNC_CLEAR_SOURCE=true: Python runs from source, so only build-only inputs go."""
    vendor = app.vendor_dir
    if vendor is not None:
        shutil.rmtree(vendor)
        log.step(f"FUNC_CLEAR_SOURCE: removed {VENDOR_DIR}/ (installed into the dependencies layer)")
    message = errors.source_kept_note()
    log.warning(message.title, message.body)
