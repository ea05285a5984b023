"""`pack build` with our builder, then the image run with `docker run --network host`."""

from __future__ import annotations

import shutil

import pytest
from e2e_support import (
    BUILDPACK_ID,
    container,
    copy_sample,
    docker,
    http,
    lifecycle_layers,
    pack_build,
)

pytestmark = pytest.mark.e2e


def test_http_sample_answers(hello):
    assert f"{BUILDPACK_ID} 0.1.0" in hello.build.output
    with container(hello.image) as url:
        response = http("GET", url + "/")
    assert response.status == 200
    assert response.body == b"Hello, World!\n"


def test_image_has_the_web_process_and_launch_defaults(hello):
    config = docker("image", "inspect", "-f", "{{json .Config.Entrypoint}} {{.Config.User}}", hello.image)
    assert config.returncode == 0, config.output
    assert '"/cnb/process/web"' in config.output
    assert config.output.split()[-1] == "1000:1000"  # the run image's non-root CNB user
    assert set(lifecycle_layers(hello.image)) == {"runtime", "function"}


def test_launch_time_env_overrides_the_build_defaults(hello):
    # FUNCTION_TARGET from the build is only a default: the container's env wins
    result = docker("run", "--rm", "--network", "host", "-e", "FUNCTION_TARGET=not_there", hello.image, timeout=60)
    assert result.returncode != 0
    assert "not_there" in result.output


def test_openfunction_signature_sample_answers(openfunction_hello):
    with container(openfunction_hello.image) as url:
        response = http("POST", url + "/", {"hello": "world"})
    assert response.status == 200, response.body
    assert response.json() == {"echo": {"hello": "world"}}


def test_dependencies_layer_is_on_the_python_path(openfunction_hello):
    result = docker(
        "run", "--rm", "--network", "host", "--entrypoint", "/cnb/lifecycle/launcher",
        openfunction_hello.image, "python", "-c", "import greeting; print(greeting.greet('layer'))",
        timeout=60,
    )
    assert result.returncode == 0, result.output
    assert "hello layer" in result.output


def test_rebuild_with_unchanged_requirements_reuses_layers(openfunction_hello):
    before = lifecycle_layers(openfunction_hello.image)
    again = pack_build(
        openfunction_hello.app, openfunction_hello.image,
        env={"FUNC_NAME": "main", "FUNC_SIGNATURE_TYPE": "openfunction"},
    )
    assert again.returncode == 0, again.output
    assert "Dependencies: reusing the cached layer (requirements.txt unchanged)" in again.output
    assert "Runtime: reusing" in again.output
    assert f"Reusing layer '{BUILDPACK_ID}:dependencies'" in again.output
    assert f"Reusing layer '{BUILDPACK_ID}:runtime'" in again.output
    assert lifecycle_layers(openfunction_hello.image) == before


def test_broken_requirement_fails_with_our_message(e2e_ready, tmp_path):
    app = copy_sample("hello", tmp_path)
    (app / "requirements.txt").write_text("definitely-not-a-real-package==9.9.9\n")
    vendor = app / "vendor"
    vendor.mkdir()  # offline: the build never asks a package index
    result = pack_build(app, "ofn-e2e/broken:latest")
    assert result.returncode != 0
    assert "[Error: Cannot install the packages in requirements.txt]" in result.output
    assert "definitely-not-a-real-package" in result.output
    assert "Traceback" not in result.output
    shutil.rmtree(app)
