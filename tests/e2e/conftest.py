"""Fixtures for the end-to-end tests: prerequisites (failing, never skipping, with the make
target that provides what is missing) and images built once per session."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest
from e2e_support import (
    BUILDER_IMAGE,
    PACK,
    RUN_IMAGE,
    Run,
    copy_sample,
    docker,
    image_exists,
    make_wheel,
    pack_build,
)

GREETING = "def greet(name):\n    return f'hello {name}'\n"


@pytest.fixture(scope="session")
def e2e_ready() -> None:
    """Everything a pack build needs, or a failure naming what is missing."""
    if shutil.which("docker") is None:
        pytest.fail("the docker CLI is missing: run `make system` (installs docker.io and starts dockerd)")
    info = docker("info", "--format", "{{.ServerVersion}}", timeout=60)
    if info.returncode != 0:
        pytest.fail(f"no Docker engine answers: run `make system` (starts dockerd)\n{info.output}")
    if not PACK.is_file():
        pytest.fail(f"pack is missing at {PACK}: run `make tools` (or `make e2e-prereqs`)")
    if not image_exists(RUN_IMAGE):
        pytest.fail(f"the run image {RUN_IMAGE} is missing: run `make stacks` (or `make e2e-prereqs`)")
    if not image_exists(BUILDER_IMAGE):
        pytest.fail(f"the builder image {BUILDER_IMAGE} is missing: run `make builder` (or `make e2e-prereqs`)")


@dataclass(frozen=True)
class Built:
    app: Path
    image: str
    build: Run


@pytest.fixture(scope="session")
def hello(e2e_ready: None, tmp_path_factory: pytest.TempPathFactory) -> Built:
    """samples/hello (an HTTP function, no requirements) as an image."""
    app = copy_sample("hello", tmp_path_factory.mktemp("hello"))
    image = "ofn-e2e/hello:latest"
    result = pack_build(app, image)
    assert result.returncode == 0, result.output
    return Built(app, image, result)


@pytest.fixture(scope="session")
def openfunction_app(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """samples/openfunction-hello with a requirement installed from a vendored wheel."""
    app = copy_sample("openfunction-hello", tmp_path_factory.mktemp("openfunction"))
    make_wheel(app / "vendor", "greeting", "1.0", {"greeting.py": GREETING})
    (app / "requirements.txt").write_text("greeting==1.0\n")
    return app


@pytest.fixture(scope="session")
def openfunction_hello(e2e_ready: None, openfunction_app: Path) -> Built:
    image = "ofn-e2e/openfunction-hello:latest"
    result = pack_build(openfunction_app, image, env={"FUNC_NAME": "main", "FUNC_SIGNATURE_TYPE": "openfunction"})
    assert result.returncode == 0, result.output
    return Built(openfunction_app, image, result)
