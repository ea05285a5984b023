"""The `dependencies` layer: the user's packages, from requirements.txt or the
`[project] dependencies` of pyproject.toml, installed with uv into a directory that
is put on PYTHONPATH.

- Resolved with the runtime layer's versions as constraints, so a requirement that
  conflicts with the framework fails the build; packages identical to the runtime's
  are then dropped from this layer (the runtime layer already has them).
- With a `vendor/` directory the install is offline: only its wheels (and the
  buildpack's wheelhouse) are used, never the package index.
- Cached across builds, keyed by a hash of the requirement files, vendor/, the
  Python version and the runtime; reused untouched when that key is unchanged.
"""

from __future__ import annotations

import enum
import hashlib
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from ofn_buildpack import sbom
from ofn_buildpack.app_files import PYPROJECT, REQUIREMENTS, VENDOR_DIR, AppFiles
from ofn_buildpack.cnb import BuildContext, LayerEnv, LayerTypes
from ofn_buildpack.installer import Uv
from ofn_buildpack.layers.runtime import Runtime, Wheelhouse
from ofn_buildpack.log import Log
from ofn_buildpack.python_version import StackPython

LAYER_NAME = "dependencies"
SITE_PACKAGES = "site-packages"
_KEY_VERSION = "1"
_NETWORK_FAILURE = re.compile(
    r"Failed to fetch|error sending request|tcp connect error|dns error|certificate|"
    r"Connection refused|timed out|Could not connect",
    re.IGNORECASE,
)
_INCLUDE = re.compile(r"^\s*(?:-r|-c|--requirement|--constraint)(?:\s+|=)(\S+)")


class DependenciesLayerErrorKind(enum.Enum):
    RESOLUTION_FAILED = "resolution-failed"
    DYNAMIC_DEPENDENCIES = "dynamic-dependencies"
    INVALID_DEPENDENCIES = "invalid-dependencies"
    MISSING_INCLUDED_FILE = "missing-included-file"


class DependenciesLayerError(Exception):
    def __init__(
        self,
        kind: DependenciesLayerErrorKind,
        file: str,
        detail: str = "",
        *,
        offline: bool = False,
        unreachable_index: bool = False,
    ) -> None:
        super().__init__(f"{kind.value}: {file}: {detail}")
        self.kind = kind
        self.file = file
        self.detail = detail
        self.offline = offline
        self.unreachable_index = unreachable_index


@dataclass(frozen=True)
class Requirements:
    """What to install and the inputs that decide it."""

    file: str  # requirements.txt or pyproject.toml
    requirement_file: Path | None  # passed to uv with -r; None for pyproject dependencies
    packages: tuple[str, ...]  # pyproject's [project] dependencies
    inputs: tuple[tuple[str, bytes], ...]  # (name, content) of every file that decides the install


def find_requirements(app: AppFiles) -> Requirements | None:
    """requirements.txt if present, else pyproject's [project] dependencies, else None."""
    if app.requirements is not None:
        inputs = tuple(_requirement_inputs(app, app.requirements, set()))
        if not any(_effective_lines(content.decode("utf-8", "replace")) for _, content in inputs):
            return None
        return Requirements(REQUIREMENTS, app.requirements, (), inputs)
    pyproject = app.pyproject()
    if pyproject is None or "project" not in pyproject:
        return None
    project = pyproject["project"]
    if "dependencies" in project.get("dynamic", []):
        raise DependenciesLayerError(DependenciesLayerErrorKind.DYNAMIC_DEPENDENCIES, PYPROJECT)
    packages = project.get("dependencies", [])
    if not isinstance(packages, list) or not all(isinstance(p, str) for p in packages):
        raise DependenciesLayerError(
            DependenciesLayerErrorKind.INVALID_DEPENDENCIES, PYPROJECT, repr(packages)[:200]
        )
    if not packages:
        return None
    listed = "\n".join(packages).encode()
    return Requirements(PYPROJECT, None, tuple(packages), ((PYPROJECT + ":dependencies", listed),))


def _effective_lines(text: str) -> list[str]:
    lines = []
    for line in text.splitlines():
        line = line.split(" #", 1)[0].strip()
        if line and not line.startswith("#"):
            lines.append(line)
    return lines


def _requirement_inputs(app: AppFiles, path: Path, seen: set[Path]) -> list[tuple[str, bytes]]:
    """The file and every file it includes with -r/-c, recursively."""
    resolved = path.resolve()
    if resolved in seen:
        return []
    seen.add(resolved)
    text = app.read_text(path)
    found = [(str(path.relative_to(app.app_dir)) if path.is_relative_to(app.app_dir) else str(path), text.encode())]
    for line in text.splitlines():
        match = _INCLUDE.match(line)
        if match is None or "://" in match.group(1):
            continue
        included = (path.parent / match.group(1))
        if not included.is_file():
            raise DependenciesLayerError(
                DependenciesLayerErrorKind.MISSING_INCLUDED_FILE, path.name, match.group(1)
            )
        found.extend(_requirement_inputs(app, included, seen))
    return found


@dataclass(frozen=True)
class Dependencies:
    path: Path
    site_packages: Path
    reused: bool
    packages: int


def contribute(
    ctx: BuildContext, app: AppFiles, uv: Uv, python: StackPython, runtime: Runtime, log: Log
) -> Dependencies | None:
    layer = ctx.layer(LAYER_NAME)
    requirements = find_requirements(app)
    if requirements is None:
        log.step("Dependencies: none (no requirements.txt or pyproject.toml dependencies)")
        layer.remove()  # a layer restored from an earlier build that had dependencies
        return None

    vendor = app.vendor_dir
    key = _cache_key(requirements, vendor, python, runtime)
    metadata = {"cache_key": key, "source": requirements.file, "python_version": python.text,
                "offline": vendor is not None}
    restored = layer.restored_metadata()
    site_packages = layer.path / SITE_PACKAGES

    if restored is not None and restored.get("cache_key") == key and site_packages.is_dir():
        log.step(f"Dependencies: reusing the cached layer ({requirements.file} unchanged)")
        reused = True
    else:
        reason = "no cached layer" if restored is None else f"{requirements.file}, vendor/, Python or runtime changed"
        source = f"offline from {VENDOR_DIR}/" if vendor is not None else "from the package index"
        log.step(f"Dependencies: installing {requirements.file} {source} ({reason})")
        with log.timed("Dependencies installed"):
            layer.reset()
            _install(ctx, requirements, vendor, uv, python, runtime, site_packages)
            dropped = _drop_runtime_duplicates(site_packages, runtime.distributions())
            if dropped:
                log.detail(f"already in the runtime layer: {', '.join(dropped)}")
            _move_scripts(site_packages, layer.path / "bin")
        reused = False

    env = LayerEnv()
    env.prepend_path("PYTHONPATH", str(site_packages))  # build and launch
    layer.set_env(env)
    layer.write_metadata(LayerTypes(launch=True, build=True, cache=True), metadata)
    dists = sbom.installed(site_packages)
    layer.write_sbom(
        sbom.cyclonedx(dists, layer=LAYER_NAME, tool_name=ctx.buildpack.id, tool_version=ctx.buildpack.version)
    )
    return Dependencies(layer.path, site_packages, reused, len(dists))


def _cache_key(requirements: Requirements, vendor: Path | None, python: StackPython, runtime: Runtime) -> str:
    digest = hashlib.sha256()
    digest.update(f"v{_KEY_VERSION}\0{python.text}\0{runtime.cache_key}\0".encode())
    for name, content in requirements.inputs:
        digest.update(f"{name}\0{len(content)}\0".encode())
        digest.update(content)
    if vendor is not None:
        for file in sorted(p for p in vendor.rglob("*") if p.is_file()):
            digest.update(f"{file.relative_to(vendor)}\0".encode())
            digest.update(hashlib.sha256(file.read_bytes()).digest())
    return digest.hexdigest()[:16]


def _install(
    ctx: BuildContext,
    requirements: Requirements,
    vendor: Path | None,
    uv: Uv,
    python: StackPython,
    runtime: Runtime,
    target: Path,
) -> None:
    wheelhouse = Wheelhouse.locate(ctx.env, ctx.buildpack.dir)
    with tempfile.TemporaryDirectory(prefix="ofn-deps-") as tmp:
        constraints = Path(tmp) / "runtime-constraints.txt"
        constraints.write_text(runtime.constraints(), encoding="utf-8")
        args = [
            "pip", "install",
            "--python", str(python.executable),  # the interpreter the runtime's venv is made from
            "--target", str(target),
            "--no-cache",
            "--link-mode", "copy",
            "--compile-bytecode",
            "--constraint", str(constraints),
            "--find-links", str(wheelhouse.path),
        ]
        if vendor is not None:
            args += ["--no-index", "--find-links", str(vendor)]
        if requirements.requirement_file is not None:
            args += ["--requirement", str(requirements.requirement_file)]
        else:
            listed = Path(tmp) / "pyproject-dependencies.txt"
            listed.write_text("\n".join(requirements.packages) + "\n", encoding="utf-8")
            args += ["--requirement", str(listed)]
        result = uv.run(args, cwd=ctx.app_dir)
    if not result.ok:
        raise DependenciesLayerError(
            DependenciesLayerErrorKind.RESOLUTION_FAILED,
            requirements.file,
            _uv_error(result.output),
            offline=vendor is not None,
            unreachable_index=vendor is None and _NETWORK_FAILURE.search(result.output) is not None,
        )
    (target / ".lock").unlink(missing_ok=True)  # uv's, world-writable


def _uv_error(output: str) -> str:
    """uv's explanation, without its progress lines."""
    lines = [line for line in output.rstrip().splitlines() if line.strip()]
    for index, line in enumerate(lines):
        if line.lstrip().startswith(("×", "error:", "ERROR")):
            return "\n".join(lines[index:])[-3000:]
    return "\n".join(lines[-30:])


def _drop_runtime_duplicates(site_packages: Path, runtime_dists: dict[str, str]) -> list[str]:
    """Remove distributions the runtime layer has in the same version."""
    dropped = []
    for dist in sbom.installed(site_packages):
        if runtime_dists.get(dist.normalized_name) != dist.version:
            continue
        record = dist.dist_info / "RECORD"
        if not record.is_file():
            continue
        for line in record.read_text(encoding="utf-8").splitlines():
            relative = line.rsplit(",", 2)[0]
            if not relative:
                continue
            file = (site_packages / relative).resolve()
            if file.is_relative_to(site_packages.resolve()) and file.is_file():
                file.unlink()
        shutil.rmtree(dist.dist_info, ignore_errors=True)
        dropped.append(f"{dist.name} {dist.version}")
    _remove_empty_dirs(site_packages)
    return dropped


def _remove_empty_dirs(root: Path) -> None:
    for directory in sorted((p for p in root.rglob("*") if p.is_dir()), key=lambda p: len(p.parts), reverse=True):
        if directory.name == "__pycache__" and not any(p.suffix != ".pyc" for p in directory.iterdir()):
            # byte code of modules that were removed
            sources = {p.name.split(".")[0] for p in directory.parent.glob("*.py")}
            for pyc in directory.iterdir():
                if pyc.name.split(".")[0] not in sources:
                    pyc.unlink()
        if not any(directory.iterdir()):
            directory.rmdir()


def _move_scripts(site_packages: Path, bin_dir: Path) -> None:
    """Console scripts uv put under --target go to the layer's bin/, which is on PATH."""
    scripts = site_packages / "bin"
    if scripts.is_dir():
        shutil.move(str(scripts), str(bin_dir))
