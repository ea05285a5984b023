"""Fixtures for the buildpack contract tests (helpers in bp_support.py)."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import pytest
from bp_support import FRAMEWORK_VERSION, ROOT, Cnb, make_wheel


@pytest.fixture(scope="session")
def uv_binary() -> Path:
    candidates = [Path(sys.executable).parent / "uv", ROOT / "out" / "buildpack" / "tools" / "uv"]
    found = shutil.which("uv")
    if found:
        candidates.append(Path(found))
    for candidate in candidates:
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate
    pytest.fail("uv is missing: install the test requirements (`make venv`, tests/requirements.txt lists uv)")


@pytest.fixture(scope="session")
def wheelhouse(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Stand-ins for runtime[all]: the framework and one dependency of it."""
    directory = tmp_path_factory.mktemp("wheelhouse")
    make_wheel(
        directory,
        "openfunction-functions-framework",
        FRAMEWORK_VERSION,
        {
            "openfunction/__init__.py": "",
            "openfunction/cli.py": "def main():\n    print('functions-framework stand-in')\n",
        },
        requires=("ofn-fake-dep==1.0",),
        extras=("all",),
        scripts={"functions-framework": "openfunction.cli:main"},
    )
    make_wheel(directory, "ofn-fake-dep", "1.0", {"ofn_fake_dep.py": "VERSION = '1.0'\n"})
    return directory


@pytest.fixture(scope="session")
def vendor_wheels(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Wheels a user would vendor: a package of their own and a conflicting framework dep."""
    directory = tmp_path_factory.mktemp("vendor-source")
    make_wheel(directory, "greeting", "1.0", {"greeting.py": "def greet(n):\n    return f'hi {n}'\n"},
               requires=("ofn-fake-dep",), scripts={"greet": "greeting:greet"})
    make_wheel(directory, "greeting", "2.0", {"greeting.py": "def greet(n):\n    return f'hello {n}'\n"})
    make_wheel(directory, "ofn-fake-dep", "2.0", {"ofn_fake_dep.py": "VERSION = '2.0'\n"})
    return directory


@pytest.fixture
def cnb(tmp_path: Path, wheelhouse: Path, uv_binary: Path, vendor_wheels: Path) -> Cnb:
    for sub in ("app", "layers", "platform/env", "home"):
        (tmp_path / sub).mkdir(parents=True)
    return Cnb(tmp_path, wheelhouse, uv_binary, vendor_wheels)

