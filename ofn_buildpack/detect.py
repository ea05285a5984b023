"""bin/detect: pass for a Python function source tree, fail (100) with a one-line reason.

Like bin/build, it never ends in a traceback: a setting it cannot use, or any unexpected
failure, is reported as a titled error (exit 1, which the lifecycle always shows).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from ofn_buildpack import errors
from ofn_buildpack.app_files import PYPROJECT, REQUIREMENTS, AppFiles
from ofn_buildpack.cnb import DETECT_FAIL, DETECT_PASS, DetectContext
from ofn_buildpack.function_source import FunctionSettings, source_exists, source_outside_app, suggest_source
from ofn_buildpack.log import Log

PLAN_NAME = "openfunction-python-function"
DETECT_ERROR = 1


def main(argv: Sequence[str], environ: Mapping[str, str], log: Log | None = None) -> int:
    log = log or Log()
    try:
        return detect(DetectContext.from_process(argv, environ))
    except errors.KNOWN_ERRORS as exc:
        message = errors.describe(exc)
    except Exception as exc:  # noqa: BLE001 - reported as an internal error, not a traceback
        message = errors.internal(exc)
    log.error(message.title, message.body)
    return DETECT_ERROR


def detect(ctx: DetectContext) -> int:
    app = AppFiles(ctx.app_dir)
    setting = FunctionSettings.from_env(ctx.env).source
    source = setting.value

    found = [name for name, present in (
        (REQUIREMENTS, app.requirements is not None),
        (PYPROJECT, app.pyproject_path is not None),
        (source, source_exists(ctx.app_dir, source)),
    ) if present]
    if not found:
        outside = source_outside_app(source)
        print(errors.no_function_detected(
            source, setting.variable, outside=outside,
            suggestion="" if outside else suggest_source(ctx.app_dir, source),
        ))
        return DETECT_FAIL

    print(f"Python function: found {', '.join(found)}")
    ctx.write_plan(
        provides=[PLAN_NAME],
        requires=[{"name": PLAN_NAME, "metadata": {"source": source, "found": found}}],
    )
    return DETECT_PASS
