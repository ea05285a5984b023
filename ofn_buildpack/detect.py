"""bin/detect: pass for a Python function source tree, fail (100) with a one-line reason."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from ofn_buildpack.app_files import PYPROJECT, REQUIREMENTS, AppFiles
from ofn_buildpack.cnb import DETECT_FAIL, DETECT_PASS, DetectContext
from ofn_buildpack.function_source import FunctionSettings, source_exists

PLAN_NAME = "openfunction-python-function"


def main(argv: Sequence[str], environ: Mapping[str, str]) -> int:
    ctx = DetectContext.from_process(argv, environ)
    app = AppFiles(ctx.app_dir)
    source = FunctionSettings.from_env(ctx.env).source.value

    found = [name for name, present in (
        (REQUIREMENTS, app.requirements is not None),
        (PYPROJECT, app.pyproject_path is not None),
        (source, source_exists(ctx.app_dir, source)),
    ) if present]
    if not found:
        print(f"No Python function: the app directory has no {source}, {REQUIREMENTS} or {PYPROJECT} "
              f"(set FUNC_SRC to the file that defines the function)")
        return DETECT_FAIL

    print(f"Python function: found {', '.join(found)}")
    ctx.write_plan(
        provides=[PLAN_NAME],
        requires=[{"name": PLAN_NAME, "metadata": {"source": source, "found": found}}],
    )
    return DETECT_PASS
