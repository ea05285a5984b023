"""Helpers for the buildpack contract tests: `bin/detect` and `bin/build` run directly
against the CNB directory layout (app, layers, platform/env, plan files, CNB_* env),
with no Docker and no network.

The runtime layer installs from a tiny wheelhouse of stand-in wheels built here (a fake
`openfunction-functions-framework` with a `functions-framework` script), pointed at with
OFN_WHEELHOUSE; uv comes from the test virtualenv (OFN_UV).
"""

from __future__ import annotations

import base64
import hashlib
import os
import shutil
import subprocess
import sys
import tomllib
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
BIN = ROOT / "bin"
FRAMEWORK_VERSION = "0.1.0"
# any index the build might try must be on loopback; port 9 (discard) refuses quickly
UNREACHABLE_INDEX = "http://127.0.0.1:9/simple"


def make_wheel(
    directory: Path,
    name: str,
    version: str,
    modules: Mapping[str, str],
    *,
    requires: tuple[str, ...] = (),
    extras: tuple[str, ...] = (),
    scripts: Mapping[str, str] | None = None,
) -> Path:
    """Write a minimal, valid pure-Python wheel and return its path."""
    dist = name.replace("-", "_")
    dist_info = f"{dist}-{version}.dist-info"
    metadata = ["Metadata-Version: 2.1", f"Name: {name}", f"Version: {version}", "License: Apache-2.0"]
    metadata += [f"Provides-Extra: {extra}" for extra in extras]
    metadata += [f"Requires-Dist: {req}" for req in requires]
    files: dict[str, str] = dict(modules)
    files[f"{dist_info}/METADATA"] = "\n".join(metadata) + "\n"
    files[f"{dist_info}/WHEEL"] = "Wheel-Version: 1.0\nGenerator: ofn-tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
    if scripts:
        files[f"{dist_info}/entry_points.txt"] = "[console_scripts]\n" + "".join(
            f"{k} = {v}\n" for k, v in scripts.items()
        )
    record_lines = []
    for path, text in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(text.encode()).digest()).rstrip(b"=").decode()
        record_lines.append(f"{path},sha256={digest},{len(text.encode())}")
    record_lines.append(f"{dist_info}/RECORD,,")
    files[f"{dist_info}/RECORD"] = "\n".join(record_lines) + "\n"
    directory.mkdir(parents=True, exist_ok=True)
    wheel = directory / f"{dist}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        for path, text in files.items():
            zf.writestr(path, text)
    return wheel


@dataclass
class Result:
    returncode: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


@dataclass
class Cnb:
    """One app's CNB directories, and bin/detect and bin/build run against them."""

    root: Path
    wheelhouse: Path
    uv: Path
    vendor_source: Path
    env: dict[str, str] = field(default_factory=dict)

    @property
    def app(self) -> Path:
        return self.root / "app"

    @property
    def layers(self) -> Path:
        return self.root / "layers"

    @property
    def platform(self) -> Path:
        return self.root / "platform"

    def write(self, relative: str, text: str) -> Path:
        path = self.app / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        return path

    def platform_env(self, name: str, value: str | bytes) -> None:
        """A variable the user set for the build (pack --env, spec.build.env); bytes as given."""
        (self.platform / "env").mkdir(parents=True, exist_ok=True)
        data = value if isinstance(value, bytes) else value.encode("utf-8")
        (self.platform / "env" / name).write_bytes(data)

    def local_project(self, relative: str, name: str, version: str, modules: Mapping[str, str],
                      *, fail_with: str = "") -> Path:
        """A source directory uv builds offline: a pyproject.toml with an in-tree PEP 517
        backend that packs `modules` into a wheel (or fails, printing `fail_with`)."""
        root = self.app / relative
        for module, text in modules.items():
            self.write(f"{relative}/{module}", text)
        self.write(f"{relative}/pyproject.toml", (
            f'[project]\nname = "{name}"\nversion = "{version}"\n\n'
            f'[build-system]\nrequires = []\nbuild-backend = "_backend"\nbackend-path = ["."]\n'
        ))
        self.write(f"{relative}/_backend.py", _BACKEND.format(
            name=name, version=version, modules=sorted(modules), fail_with=fail_with))
        return root

    def vendor(self, *wheel_names: str) -> None:
        target = self.app / "vendor"
        target.mkdir(parents=True, exist_ok=True)
        for pattern in wheel_names:
            for wheel in self.vendor_source.glob(pattern):
                shutil.copy(wheel, target / wheel.name)

    def _process_env(self, extra: Mapping[str, str] | None) -> dict[str, str]:
        env = {
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '/usr/bin:/bin')}",
            "HOME": str(self.root / "home"),
            "CNB_BUILDPACK_DIR": str(ROOT),
            "CNB_TARGET_OS": "linux",
            "CNB_TARGET_ARCH": "amd64",
            "OFN_WHEELHOUSE": str(self.wheelhouse),
            "OFN_UV": str(self.uv),
            "UV_DEFAULT_INDEX": UNREACHABLE_INDEX,
            "UV_INDEX_URL": UNREACHABLE_INDEX,
        }
        env.update(self.env)
        env.update(extra or {})
        return env

    def detect(self, env: Mapping[str, str] | None = None) -> Result:
        plan = self.root / "plan.toml"
        plan.unlink(missing_ok=True)
        return self._run(
            [str(BIN / "detect"), str(self.platform), str(plan)],
            {**(env or {}), "CNB_PLATFORM_DIR": str(self.platform), "CNB_BUILD_PLAN_PATH": str(plan)},
        )

    def build(self, env: Mapping[str, str] | None = None) -> Result:
        plan = self.root / "bp-plan.toml"
        if not plan.exists():
            plan.write_text('[[entries]]\nname = "openfunction-python-function"\n', encoding="utf-8")
        self.layers.mkdir(exist_ok=True)
        return self._run(
            [str(BIN / "build"), str(self.layers), str(self.platform), str(plan)],
            {
                **(env or {}),
                "CNB_LAYERS_DIR": str(self.layers),
                "CNB_PLATFORM_DIR": str(self.platform),
                "CNB_BP_PLAN_PATH": str(plan),
            },
        )

    def _run(self, argv: list[str], env: Mapping[str, str]) -> Result:
        proc = subprocess.run(
            argv, cwd=self.app, env=self._process_env(env), capture_output=True, text=True, timeout=120
        )
        return Result(proc.returncode, proc.stdout, proc.stderr)

    def restore(self) -> None:
        """What the lifecycle leaves for the next build: cached layers' directories and
        every layer's metadata with its [types] reset; no launch.toml, no SBOMs,
        non-cached layers' directories gone."""
        for toml in self.layers.glob("*.toml"):
            if toml.name == "launch.toml":
                toml.unlink()
                continue
            data = tomllib.loads(toml.read_text())
            cached = data.get("types", {}).get("cache", False)
            layer = toml.with_suffix("")
            if not cached and layer.is_dir():
                shutil.rmtree(layer)
            toml.write_text(_without_types_table(toml.read_text()))
        for sbom in self.layers.glob("*.sbom.*.json"):
            sbom.unlink()

    def layer_toml(self, name: str) -> dict[str, Any]:
        return tomllib.loads((self.layers / f"{name}.toml").read_text())

    def launch_toml(self) -> dict[str, Any]:
        return tomllib.loads((self.layers / "launch.toml").read_text())


_BACKEND = """\
import base64, hashlib, os, sys, zipfile

def get_requires_for_build_wheel(config_settings=None):
    return []

def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    if {fail_with!r}:
        print({fail_with!r}, file=sys.stderr)
        raise SystemExit(1)
    here = os.path.dirname(os.path.abspath(__file__))
    files = {{m: open(os.path.join(here, m), "rb").read() for m in {modules!r}}}
    info = "{name}-{version}.dist-info"
    files[info + "/METADATA"] = b"Metadata-Version: 2.1\\nName: {name}\\nVersion: {version}\\n"
    files[info + "/WHEEL"] = b"Wheel-Version: 1.0\\nGenerator: t\\nRoot-Is-Purelib: true\\nTag: py3-none-any\\n"
    record = [p + ",sha256=" + base64.urlsafe_b64encode(hashlib.sha256(d).digest()).rstrip(b"=").decode()
              + "," + str(len(d)) for p, d in files.items()]
    files[info + "/RECORD"] = ("\\n".join(record + [info + "/RECORD,,"]) + "\\n").encode()
    wheel = "{name}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(os.path.join(wheel_directory, wheel), "w") as zf:
        for path, data in files.items():
            zf.writestr(path, data)
    return wheel
"""


def _without_types_table(text: str) -> str:
    """The layer TOML with its [types] table dropped (all types false), metadata intact."""
    kept, skipping = [], False
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith("["):
            skipping = stripped == "[types]"
        if not skipping:
            kept.append(line)
    return "\n".join(kept) + "\n"
