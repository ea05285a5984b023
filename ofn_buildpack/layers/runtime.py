"""The `runtime` layer: a virtual environment with the functions framework and all its
extras, installed offline from the wheelhouse the buildpack carries.

A launch-only layer, reused from the previous image while the buildpack version, the
stack's Python and the wheelhouse are unchanged: its metadata records what it holds (the
exact package versions), which is all a later build needs from it. Rebuilds neither copy
it into nor restore it from the build cache, and Shipwright builds with an empty cache
volume still reuse it from the image in the registry.
"""

from __future__ import annotations

import enum
import hashlib
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from ofn_buildpack import sbom
from ofn_buildpack.cnb import BuildContext, LayerTypes
from ofn_buildpack.installer import Uv
from ofn_buildpack.log import Log
from ofn_buildpack.python_version import StackPython

LAYER_NAME = "runtime"
FRAMEWORK = "openfunction-functions-framework"
EXTRAS = "all"
_KEY_VERSION = "1"


class RuntimeLayerErrorKind(enum.Enum):
    WHEELHOUSE_MISSING = "wheelhouse-missing"
    FRAMEWORK_WHEEL_MISSING = "framework-wheel-missing"
    VENV_FAILED = "venv-failed"
    INSTALL_FAILED = "install-failed"


class RuntimeLayerError(Exception):
    def __init__(self, kind: RuntimeLayerErrorKind, wheelhouse: Path, detail: str = "") -> None:
        super().__init__(f"{kind.value}: {wheelhouse}: {detail}")
        self.kind = kind
        self.wheelhouse = wheelhouse
        self.detail = detail


@dataclass(frozen=True)
class Wheelhouse:
    path: Path

    @classmethod
    def locate(cls, env: Mapping[str, str], buildpack_dir: Path) -> Wheelhouse:
        path = Path(env["OFN_WHEELHOUSE"]) if env.get("OFN_WHEELHOUSE") else buildpack_dir / "wheelhouse"
        if not path.is_dir() or not any(path.glob("*.whl")):
            raise RuntimeLayerError(RuntimeLayerErrorKind.WHEELHOUSE_MISSING, path)
        return cls(path)

    def wheels(self) -> list[Path]:
        return sorted(self.path.glob("*.whl"))

    def fingerprint(self) -> str:
        digest = hashlib.sha256()
        for wheel in self.wheels():
            digest.update(f"{wheel.name}\0".encode())
            with open(wheel, "rb") as f:
                for chunk in iter(lambda: f.read(1 << 20), b""):
                    digest.update(chunk)
        return digest.hexdigest()[:16]

    def framework_version(self) -> str:
        prefix = FRAMEWORK.replace("-", "_") + "-"
        for wheel in self.wheels():
            if wheel.name.lower().startswith(prefix):
                return wheel.name[len(prefix):].split("-")[0]
        raise RuntimeLayerError(RuntimeLayerErrorKind.FRAMEWORK_WHEEL_MISSING, self.path)


@dataclass(frozen=True)
class Runtime:
    path: Path
    packages: tuple[sbom.Package, ...]  # everything the layer's environment holds
    framework_version: str
    cache_key: str
    reused: bool

    def constraints(self) -> str:
        """Pins for resolving the user's packages around the framework's versions."""
        return "".join(f"{p.name}=={p.version}\n" for p in self.packages)

    def distributions(self) -> dict[str, str]:
        """Normalized name -> version of everything installed in the layer."""
        return {p.normalized_name: p.version for p in self.packages}


def contribute(ctx: BuildContext, uv: Uv, python: StackPython, log: Log) -> Runtime:
    wheelhouse = Wheelhouse.locate(ctx.env, ctx.buildpack.dir)
    version = wheelhouse.framework_version()
    layer = ctx.layer(LAYER_NAME)
    inputs = {
        "cache_key_version": _KEY_VERSION,
        "buildpack_version": ctx.buildpack.version,
        "python_version": python.text,
        "framework_version": version,
        "wheelhouse": wheelhouse.fingerprint(),
    }
    key = hashlib.sha256(repr(sorted(inputs.items())).encode()).hexdigest()[:16]

    restored = layer.restored_metadata()
    packages = _restored_packages(restored) if restored and restored.get("cache_key") == key else None
    if packages:
        # the layer comes from the previous image as it is; its directory is not needed
        log.step(f"Runtime: reusing {FRAMEWORK} {version} (Python {python.text}) from the previous image")
        reused = True
    else:
        reason = "no previous layer" if restored is None else "buildpack, Python or wheelhouse changed"
        log.step(f"Runtime: installing {FRAMEWORK}[{EXTRAS}] {version} offline ({reason})")
        with log.timed("Runtime installed"):
            _install(layer.path, uv, python, wheelhouse, ctx)
        site_packages = layer.path / "lib" / f"python{python.minor}" / "site-packages"
        packages = [sbom.Package(d.name, d.version, d.license) for d in sbom.installed(site_packages)]
        reused = False

    runtime = Runtime(layer.path, tuple(packages), version, key, reused)
    layer.write_metadata(
        LayerTypes(launch=True),
        {**inputs, "cache_key": key, "packages": [p.to_metadata() for p in runtime.packages]},
    )
    layer.write_sbom(
        sbom.cyclonedx(runtime.packages, layer=LAYER_NAME, tool_name=ctx.buildpack.id,
                       tool_version=ctx.buildpack.version)
    )
    return runtime


def _restored_packages(metadata: Mapping[str, object]) -> list[sbom.Package] | None:
    entries = metadata.get("packages")
    if not isinstance(entries, list) or not entries:
        return None
    return [sbom.Package.from_metadata(e) for e in entries if isinstance(e, Mapping)]


def _install(path: Path, uv: Uv, python: StackPython, wheelhouse: Wheelhouse, ctx: BuildContext) -> None:
    if path.exists():
        shutil.rmtree(path)
    venv = uv.run(
        ["venv", "--quiet", "--no-project", "--no-config", "--python", str(python.executable), str(path)],
        cwd=ctx.app_dir,
    )
    if not venv.ok:
        raise RuntimeLayerError(RuntimeLayerErrorKind.VENV_FAILED, wheelhouse.path, venv.output)
    install = uv.run(
        [
            "pip", "install",
            "--python", str(path / "bin" / "python"),
            "--no-config",
            "--no-index",
            "--find-links", str(wheelhouse.path),
            "--no-cache",
            "--link-mode", "copy",
            "--compile-bytecode",
            f"{FRAMEWORK}[{EXTRAS}]",
        ],
        cwd=ctx.app_dir,
    )
    if not install.ok:
        raise RuntimeLayerError(RuntimeLayerErrorKind.INSTALL_FAILED, wheelhouse.path, install.output)
    (path / ".lock").unlink(missing_ok=True)  # uv's, world-writable
