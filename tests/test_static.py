"""Static checks over the project's own Python: pyflakes everywhere, and mypy over the two
packages it ships - the runtime (which declares itself typed with `py.typed`, so users'
type checkers read its annotations) and the buildpack."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SOURCES = ["runtime/src", "ofn_buildpack", "bin/build", "bin/detect", "tests", "bench"]
TYPED = ["runtime/src/openfunction", "ofn_buildpack"]


def _run(module: str, *args: str) -> subprocess.CompletedProcess[str]:
    result = subprocess.run([sys.executable, "-m", module, *args], cwd=ROOT,
                            capture_output=True, text=True, timeout=300)
    if "No module named" in result.stderr:
        raise AssertionError(f"{module} is not installed in {sys.prefix}: run `make venv` "
                             "(tests/requirements.txt lists it)")
    return result


def test_pyflakes_reports_nothing():
    result = _run("pyflakes", *SOURCES)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_shipped_packages_type_check():
    # third-party packages without type information (the SkyWalking agent, Dapr's
    # generated stubs) are taken as untyped
    result = _run("mypy", "--ignore-missing-imports", "--no-error-summary", *TYPED)
    assert result.returncode == 0, result.stdout + result.stderr
