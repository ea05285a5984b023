"""The Shipwright path: the builder image's /cnb/lifecycle/creator run the way
OpenFunction's buildpacks strategy runs it (a prepare step that owns the volumes to the
CNB user and writes spec.build.env into /platform/env, then the creator as that user),
publishing to a registry: Debian's docker-registry on a free 127.0.0.1 port."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
import tomllib
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from e2e_support import BUILDER_IMAGE, RUN_IMAGE, container, copy_sample, docker, free_port, http

pytestmark = pytest.mark.e2e

PLATFORM_API = "0.13"


@pytest.fixture(scope="module")
def registry(e2e_ready: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    binary = shutil.which("docker-registry")
    if binary is None:
        pytest.fail("docker-registry is missing: run `make system` (installs Debian's docker-registry)")
    root = tmp_path_factory.mktemp("registry")
    port = free_port()
    config = root / "config.yml"
    config.write_text(
        "version: 0.1\n"
        "log:\n  level: warn\n"
        f"storage:\n  filesystem:\n    rootdirectory: {root / 'data'}\n  delete:\n    enabled: true\n"
        f"http:\n  addr: 127.0.0.1:{port}\n"
    )
    log = open(root / "registry.log", "wb")
    proc = subprocess.Popen([binary, "serve", str(config)], stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)
    address = f"127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                with urllib.request.urlopen(f"http://{address}/v2/", timeout=1):
                    break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"docker-registry did not start:\n{(root / 'registry.log').read_text()}")
                time.sleep(0.2)
        yield address
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=10)
        log.close()


def _cnb_ids() -> tuple[str, str]:
    env = docker("image", "inspect", "-f", "{{range .Config.Env}}{{println .}}{{end}}", BUILDER_IMAGE)
    values = dict(line.split("=", 1) for line in env.output.splitlines() if "=" in line)
    return values["CNB_USER_ID"], values["CNB_GROUP_ID"]


def test_creator_publishes_an_image_that_answers(registry: str, tmp_path: Path):
    uid, gid = _cnb_ids()
    run_image = f"{registry}/openfunction/python-run:bookworm"
    image = f"{registry}/ofn-e2e/shipwright-hello:latest"
    for step in (("tag", RUN_IMAGE, run_image), ("push", run_image)):
        result = docker(*step)
        assert result.returncode == 0, result.output

    source = copy_sample("hello", tmp_path / "workspace")
    dirs = {"cache": tmp_path / "cache", "layers": tmp_path / "layers", "platform": tmp_path / "platform"}
    for directory in dirs.values():
        directory.mkdir()
    mounts = [
        "-v", f"{source}:/workspace/source",
        "-v", f"{dirs['cache']}:/cache",
        "-v", f"{dirs['layers']}:/layers",
        "-v", f"{dirs['platform']}:/platform",
    ]

    # the strategy's prepare step: own the volumes, write spec.build.env to /platform/env
    prepare = docker(
        "run", "--rm", "--network", "host", "--user", "0", "--entrypoint", "bash", *mounts, BUILDER_IMAGE, "-c",
        f"chown -R {uid}:{gid} /workspace/source /cache /layers /platform && mkdir -p /platform/env "
        f"&& printf hello > /platform/env/FUNC_NAME && printf http > /platform/env/FUNC_SIGNATURE_TYPE "
        f"&& chown -R {uid}:{gid} /platform/env",
    )
    assert prepare.returncode == 0, prepare.output

    def create() -> str:
        result = docker(
            "run", "--rm", "--network", "host", "--user", f"{uid}:{gid}",
            "-e", f"CNB_PLATFORM_API={PLATFORM_API}", *mounts, BUILDER_IMAGE,
            "/cnb/lifecycle/creator",
            "-app=/workspace/source", "-cache-dir=/cache", f"-uid={uid}", f"-gid={gid}",
            "-layers=/layers", "-platform=/platform", "-report=/layers/report.toml",
            "-process-type=web", "-skip-restore=false", f"-previous-image={image}",
            f"-run-image={run_image}", image,
            timeout=600,
        )
        assert result.returncode == 0, result.output
        return result.output

    try:
        first = create()
        assert "target from FUNC_NAME" in first
        report = tomllib.loads((dirs["layers"] / "report.toml").read_text())
        assert report["image"]["tags"] == [image]
        assert report["image"]["digest"].startswith("sha256:")

        # a rebuild with an empty cache volume (an emptyDir in the cluster) still reuses
        # the runtime layer: from the previous image in the registry
        docker("run", "--rm", "--user", "0", "--entrypoint", "bash", *mounts, BUILDER_IMAGE, "-c",
               "rm -rf /cache/* /layers/*")
        second = create()
        assert "Runtime: reusing" in second
        assert "Reusing layer 'openfunction/python-function:runtime'" in second
    finally:
        # give the files back to this user so pytest can clean the temp dir
        docker("run", "--rm", "--user", "0", "--entrypoint", "chown", *mounts, BUILDER_IMAGE,
               "-R", f"{os.getuid()}:{os.getgid()}", "/workspace/source", "/cache", "/layers", "/platform")

    pulled = docker("pull", image)
    assert pulled.returncode == 0, pulled.output
    try:
        with container(image) as url:
            response = http("GET", url + "/")
        assert response.status == 200
        assert response.body == b"Hello, World!\n"
    finally:
        docker("rmi", "-f", image, run_image)
