"""Cloud Native Buildpacks plumbing (Buildpack API 0.10/0.11): the contexts of
`bin/detect` and `bin/build`, layers and their TOML, env files, launch.toml, SBOM files.

Only this module knows the CNB file layout; the rest of the buildpack works with the
objects it returns.
"""

from __future__ import annotations

import json
import os
import shutil
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ofn_buildpack import tomlw

DETECT_PASS = 0
DETECT_FAIL = 100

CYCLONEDX_EXTENSION = "sbom.cdx.json"


@dataclass(frozen=True)
class BuildpackInfo:
    id: str
    version: str
    api: str
    dir: Path

    @classmethod
    def load(cls, buildpack_dir: Path) -> BuildpackInfo:
        with open(buildpack_dir / "buildpack.toml", "rb") as f:
            descriptor = tomllib.load(f)
        bp = descriptor["buildpack"]
        return cls(id=bp["id"], version=bp["version"], api=str(descriptor["api"]), dir=buildpack_dir)


@dataclass(frozen=True)
class Target:
    os: str
    arch: str
    distro_name: str
    distro_version: str

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> Target:
        return cls(
            os=environ.get("CNB_TARGET_OS", ""),
            arch=environ.get("CNB_TARGET_ARCH", ""),
            distro_name=environ.get("CNB_TARGET_DISTRO_NAME", ""),
            distro_version=environ.get("CNB_TARGET_DISTRO_VERSION", ""),
        )


def read_platform_env(platform_dir: Path) -> dict[str, str]:
    """The user-provided build environment: one file per variable in <platform>/env.

    Values are bytes the user chose (`pack build --env GREETING=...`), not necessarily
    UTF-8: they are decoded as the process environment is (surrogateescape), so any value
    passes through to uv unchanged, and the settings the buildpack itself reads are
    checked where they are read. A file that cannot be read is skipped.
    """
    env_dir = platform_dir / "env"
    result: dict[str, str] = {}
    if not env_dir.is_dir():
        return result
    for entry in sorted(env_dir.iterdir()):
        try:
            if entry.is_file():
                result[entry.name] = entry.read_bytes().decode("utf-8", "surrogateescape")
        except OSError:
            continue
    return result


def _merged_env(environ: Mapping[str, str], platform_dir: Path) -> dict[str, str]:
    # The lifecycle already exports platform env into the process environment (the
    # buildpack does not clear its env); reading the files too keeps both ways equal.
    merged = dict(environ)
    merged.update(read_platform_env(platform_dir))
    return merged


def _arg_or_env(argv: Sequence[str], index: int, environ: Mapping[str, str], name: str) -> Path:
    if environ.get(name):
        return Path(environ[name]).absolute()
    if len(argv) > index:
        return Path(argv[index]).absolute()
    raise SystemExit(f"error: {name} is not set and no argument {index} was given; run me from the CNB lifecycle")


@dataclass(frozen=True)
class DetectContext:
    app_dir: Path
    buildpack: BuildpackInfo
    platform_dir: Path
    plan_path: Path
    env: Mapping[str, str]
    target: Target

    @classmethod
    def from_process(cls, argv: Sequence[str], environ: Mapping[str, str]) -> DetectContext:
        """bin/detect <platform> <plan>, or the CNB_* variables of Buildpack API >= 0.8."""
        platform_dir = _arg_or_env(argv, 1, environ, "CNB_PLATFORM_DIR")
        return cls(
            app_dir=Path.cwd(),
            buildpack=BuildpackInfo.load(_buildpack_dir(environ)),
            platform_dir=platform_dir,
            plan_path=_arg_or_env(argv, 2, environ, "CNB_BUILD_PLAN_PATH"),
            env=_merged_env(environ, platform_dir),
            target=Target.from_env(environ),
        )

    def write_plan(self, provides: Sequence[str], requires: Sequence[Mapping[str, Any]]) -> None:
        tomlw.dump(
            {"provides": [{"name": name} for name in provides], "requires": list(requires)},
            self.plan_path,
        )


@dataclass(frozen=True)
class BuildContext:
    app_dir: Path
    buildpack: BuildpackInfo
    layers_dir: Path
    platform_dir: Path
    plan_path: Path
    env: Mapping[str, str]
    target: Target

    @classmethod
    def from_process(cls, argv: Sequence[str], environ: Mapping[str, str]) -> BuildContext:
        """bin/build <layers> <platform> <plan>, or the CNB_* variables of Buildpack API >= 0.8."""
        platform_dir = _arg_or_env(argv, 2, environ, "CNB_PLATFORM_DIR")
        return cls(
            app_dir=Path.cwd(),
            buildpack=BuildpackInfo.load(_buildpack_dir(environ)),
            layers_dir=_arg_or_env(argv, 1, environ, "CNB_LAYERS_DIR"),
            platform_dir=platform_dir,
            plan_path=_arg_or_env(argv, 3, environ, "CNB_BP_PLAN_PATH"),
            env=_merged_env(environ, platform_dir),
            target=Target.from_env(environ),
        )

    def layer(self, name: str) -> Layer:
        return Layer(self.layers_dir, name)

    def write_launch(self, processes: Sequence[Process]) -> None:
        tomlw.dump({"processes": [p.to_toml() for p in processes]}, self.layers_dir / "launch.toml")


def _buildpack_dir(environ: Mapping[str, str]) -> Path:
    if environ.get("CNB_BUILDPACK_DIR"):
        return Path(environ["CNB_BUILDPACK_DIR"]).absolute()
    return Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class LayerTypes:
    launch: bool = False
    build: bool = False
    cache: bool = False


@dataclass
class Layer:
    """One layer: <layers>/<name>/ and its <layers>/<name>.toml."""

    layers_dir: Path
    name: str

    @property
    def path(self) -> Path:
        return self.layers_dir / self.name

    @property
    def toml_path(self) -> Path:
        return self.layers_dir / f"{self.name}.toml"

    @property
    def sbom_path(self) -> Path:
        return self.layers_dir / f"{self.name}.{CYCLONEDX_EXTENSION}"

    def restored_metadata(self) -> dict[str, Any] | None:
        """The [metadata] the lifecycle restored from the previous build, if any."""
        if not self.toml_path.is_file():
            return None
        with open(self.toml_path, "rb") as f:
            return dict(tomllib.load(f).get("metadata", {}))

    def reset(self) -> Path:
        """Start the layer over: an empty directory and no metadata."""
        self.remove()
        self.path.mkdir(parents=True)
        return self.path

    def remove(self) -> None:
        """Drop the layer (e.g. a restored one that this build does not need)."""
        if self.path.is_dir() and not self.path.is_symlink():
            shutil.rmtree(self.path)
        for file in (self.toml_path, self.sbom_path):
            file.unlink(missing_ok=True)

    def write_metadata(self, types: LayerTypes, metadata: Mapping[str, Any]) -> None:
        self.layers_dir.mkdir(parents=True, exist_ok=True)
        tomlw.dump(
            {
                "types": {"launch": types.launch, "build": types.build, "cache": types.cache},
                "metadata": dict(metadata),
            },
            self.toml_path,
        )

    def set_env(self, env: LayerEnv) -> None:
        env.write(self.path)

    def write_sbom(self, document: Mapping[str, Any]) -> None:
        self.sbom_path.write_text(json.dumps(document, indent=2, sort_keys=False) + "\n", encoding="utf-8")


@dataclass
class LayerEnv:
    """Environment modifications a layer contributes (env/, env.build/, env.launch/ files).

    `scope` is "env" (build and launch), "env.build" or "env.launch".
    """

    files: dict[tuple[str, str], str] = field(default_factory=dict)

    def default(self, name: str, value: str, scope: str = "env.launch") -> None:
        """Set unless the environment already has it: launch-time env wins."""
        self.files[(scope, f"{name}.default")] = value

    def override(self, name: str, value: str, scope: str = "env") -> None:
        self.files[(scope, f"{name}.override")] = value

    def prepend_path(self, name: str, value: str, scope: str = "env") -> None:
        self.files[(scope, f"{name}.prepend")] = value
        self.files[(scope, f"{name}.delim")] = os.pathsep

    def write(self, layer_dir: Path) -> None:
        for (scope, filename), value in sorted(self.files.items()):
            directory = layer_dir / scope
            directory.mkdir(parents=True, exist_ok=True)
            (directory / filename).write_text(value, encoding="utf-8")


@dataclass(frozen=True)
class Process:
    type: str
    command: Sequence[str]
    args: Sequence[str] = ()
    default: bool = False
    working_dir: str | None = None

    def to_toml(self) -> dict[str, Any]:
        entry: dict[str, Any] = {
            "type": self.type,
            "command": list(self.command),
            "args": list(self.args),
            "default": self.default,
        }
        if self.working_dir:
            entry["working-dir"] = self.working_dir
        return entry
