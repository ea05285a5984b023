"""Helpers for the end-to-end tests: real pack, real lifecycle, real Docker engine.

Everything runs with host networking (the engine has no bridge network) and all test
traffic goes to 127.0.0.1.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import os
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request
import zipfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
OFN_CACHE = Path(os.environ.get("OFN_CACHE") or Path.home() / ".cache" / "ofn-python")
PACK = Path(os.environ.get("OFN_PACK") or OFN_CACHE / "bin" / "pack-v0.38.2" / "pack")
BUILDER_IMAGE = os.environ.get("OFN_BUILDER_IMAGE", "openfunction/builder-python:latest")
RUN_IMAGE = os.environ.get("OFN_RUN_IMAGE", "openfunction/python-run:bookworm")
BUILDPACK_ID = "openfunction/python-function"
# a stable key: pack reuses its cache volumes across builds and test sessions
PACK_VOLUME_KEY = os.environ.get("PACK_VOLUME_KEY", "ofn-python")


@dataclass(frozen=True)
class Run:
    returncode: int
    output: str


def run(argv: Sequence[str], *, timeout: float = 600, env: Mapping[str, str] | None = None) -> Run:
    proc = subprocess.run(
        list(argv),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
    )
    return Run(proc.returncode, proc.stdout)


def docker(*args: str, timeout: float = 300) -> Run:
    return run(["docker", *args], timeout=timeout)


def image_exists(image: str) -> bool:
    return docker("image", "inspect", image).returncode == 0


def pack_build(app_dir: Path, image: str, *, env: Mapping[str, str] | None = None) -> Run:
    argv = [
        str(PACK), "build", image,
        "--path", str(app_dir),
        "--builder", BUILDER_IMAGE,
        "--trust-builder",
        "--pull-policy", "never",
        "--network", "host",
        "--no-color",
    ]
    for name, value in (env or {}).items():
        argv += ["--env", f"{name}={value}"]
    return run(argv, env={"PACK_VOLUME_KEY": PACK_VOLUME_KEY})


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def container(image: str, *, env: Mapping[str, str] | None = None, ready_path: str = "/") -> Iterator[str]:
    """Run the image with a free PORT on the host network; yield its base URL once it answers."""
    port = free_port()
    name = f"ofn-e2e-{port}"
    argv = ["run", "-d", "--rm", "--name", name, "--network", "host", "-e", f"PORT={port}"]
    for key, value in (env or {}).items():
        argv += ["-e", f"{key}={value}"]
    started = docker(*argv, image)
    assert started.returncode == 0, started.output
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_until_listening(port, name)
        yield url
    finally:
        docker("rm", "-f", name)


def _wait_until_listening(port: int, name: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return
        state = docker("inspect", "-f", "{{.State.Running}}", name)
        if state.returncode != 0 or state.output.strip() != "true":
            pytest.fail(f"container {name} exited before listening:\n{docker('logs', name).output}")
        time.sleep(0.2)
    pytest.fail(f"container {name} did not listen on 127.0.0.1:{port}:\n{docker('logs', name).output}")


@dataclass(frozen=True)
class Response:
    status: int
    body: bytes
    content_type: str

    def json(self) -> object:
        return json.loads(self.body)


def http(method: str, url: str, body: object = None) -> Response:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method)
    if data is not None:
        request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=15) as response:
            return Response(response.status, response.read(), response.headers.get("Content-Type", ""))
    except urllib.error.HTTPError as exc:
        return Response(exc.code, exc.read(), exc.headers.get("Content-Type", ""))


def copy_sample(name: str, destination: Path) -> Path:
    target = destination / name
    shutil.copytree(ROOT / "samples" / name, target)
    return target


def make_wheel(directory: Path, name: str, version: str, modules: Mapping[str, str]) -> Path:
    """A minimal pure-Python wheel with fixed timestamps (same bytes every time)."""
    dist = name.replace("-", "_")
    dist_info = f"{dist}-{version}.dist-info"
    files = dict(modules)
    files[f"{dist_info}/METADATA"] = f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n"
    files[f"{dist_info}/WHEEL"] = "Wheel-Version: 1.0\nGenerator: ofn-tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
    record = []
    for path, text in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(text.encode()).digest()).rstrip(b"=").decode()
        record.append(f"{path},sha256={digest},{len(text.encode())}")
    files[f"{dist_info}/RECORD"] = "\n".join(record + [f"{dist_info}/RECORD,,"]) + "\n"
    directory.mkdir(parents=True, exist_ok=True)
    wheel = directory / f"{dist}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        for path, text in files.items():
            zf.writestr(zipfile.ZipInfo(path, date_time=(1980, 1, 1, 0, 0, 0)), text)
    return wheel


def lifecycle_layers(image: str) -> dict[str, str]:
    """Layer name -> diffID (sha) of this buildpack's layers, from the lifecycle's label."""
    label = docker("image", "inspect", "-f", '{{index .Config.Labels "io.buildpacks.lifecycle.metadata"}}', image)
    assert label.returncode == 0, label.output
    metadata = json.loads(label.output)
    for buildpack in metadata.get("buildpacks", []):
        if buildpack.get("key") == BUILDPACK_ID:
            return {name: layer["sha"] for name, layer in buildpack.get("layers", {}).items()}
    return {}
