"""The `dependencies` layer: the user's packages, from requirements.txt or the
`[project] dependencies` of pyproject.toml, installed with uv into a directory that
is put on PYTHONPATH.

- Resolved with the runtime layer's versions as constraints, so a requirement that
  conflicts with the framework fails the build; packages identical to the runtime's
  are then dropped from this layer (the runtime layer already has them).
- With a `vendor/` directory the install is offline: only its wheels (and the
  buildpack's wheelhouse) are used, never the package index.
- Editable requirements (`-e`) are refused: their `.pth` files are not read from a
  PYTHONPATH directory, so the package would not import at run time.
- Dependencies in other tools' tables (`[tool.poetry.dependencies]`, a Pipfile) are
  refused rather than silently left out.
- Cached across builds, keyed by a hash of every input that decides what is installed:
  the requirement files, the local directories and files they name (packages, wheels,
  --find-links directories), vendor/, uv's settings, the Python version and the runtime.
  Reused untouched when that key is unchanged; otherwise the log says which input changed.
"""

from __future__ import annotations

import enum
import hashlib
import json
import os
import re
import shutil
import tempfile
import tomllib
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ofn_buildpack import sbom
from ofn_buildpack.app_files import PIPFILE, PYPROJECT, REQUIREMENTS, UV_TOML, VENDOR_DIR, AppFiles
from ofn_buildpack.cnb import BuildContext, LayerEnv, LayerTypes
from ofn_buildpack.installer import Uv
from ofn_buildpack.layers.runtime import Runtime, Wheelhouse
from ofn_buildpack.log import Log
from ofn_buildpack.python_version import StackPython, satisfies

LAYER_NAME = "dependencies"
SITE_PACKAGES = "site-packages"
_KEY_VERSION = "2"
_NETWORK_FAILURE = re.compile(
    r"Failed to fetch|error sending request|tcp connect error|dns error|certificate|"
    r"Connection refused|timed out|Could not connect",
    re.IGNORECASE,
)
# a package had to be built from source (an sdist or a local directory) and that failed
_SOURCE_BUILD_FAILURE = re.compile(
    r"Failed to build|build backend returned an error|Failed to download and build|"
    r"error: command '[^']*' failed|pg_config executable not found|fatal error: \S+\.h: No such file",
    re.IGNORECASE,
)
_FAILED_BUILD_NAME = re.compile(r"Failed to (?:download and )?build `([^`]+)`")

# requirement-file options, by their long names
_SHORT_OPTIONS = {"-r": "--requirement", "-c": "--constraint", "-e": "--editable", "-f": "--find-links",
                  "-i": "--index-url"}
_INCLUDES = {"--requirement", "--constraint"}
_LOCATIONS = {"--find-links", "--index-url", "--extra-index-url"}  # local when a path or file: URL
_COMMENT = re.compile(r"(?:^|\s)#.*$")
_TRAILING_OPTIONS = re.compile(r"\s-{1,2}[A-Za-z].*$")  # `pkg==1.0 --hash=sha256:...`
_DIRECT_REFERENCE = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)\s*(?:\[[^\]]*\])?\s*@\s*(\S+)")
_NAMED = re.compile(r"^([A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?)\s*(?:\[[^\]]*\])?\s*(.*)$")
_ARCHIVES = (".whl", ".tar.gz", ".zip", ".tar.bz2", ".tgz", ".tar.xz", ".tar")

# What is not part of a local package's source: VCS data, caches, virtualenvs, and what
# building it writes next to its source (so building it does not change its key).
_SKIPPED_DIRS = frozenset({".git", ".hg", ".svn", "__pycache__", ".venv", ".tox", ".nox",
                           ".mypy_cache", ".pytest_cache", ".ruff_cache"})
_SKIPPED_ROOT_DIRS = frozenset({"build", "dist"})
_SKIPPED_SUFFIXES = (".egg-info", ".pyc", ".pyo")


class DependenciesLayerErrorKind(enum.Enum):
    RESOLUTION_FAILED = "resolution-failed"
    DYNAMIC_DEPENDENCIES = "dynamic-dependencies"
    MISSING_INCLUDED_FILE = "missing-included-file"
    EDITABLE_REQUIREMENT = "editable-requirement"
    POETRY_DEPENDENCIES = "poetry-dependencies"
    PIPFILE_DEPENDENCIES = "pipfile-dependencies"


@dataclass(frozen=True)
class FrameworkConflict:
    """A package the runtime layer fixes at `version` that the requirements want otherwise."""

    name: str
    version: str
    requested: str | None  # the user's specifier ("" for any version); None: wanted by another package


class DependenciesLayerError(Exception):
    def __init__(
        self,
        kind: DependenciesLayerErrorKind,
        file: str,
        detail: str = "",
        *,
        offline: bool = False,
        unreachable_index: bool = False,
        conflicts: tuple[FrameworkConflict, ...] = (),
        source_build: str | None = None,
        names: tuple[str, ...] = (),
    ) -> None:
        super().__init__(f"{kind.value}: {file}: {detail}")
        self.kind = kind
        self.file = file
        self.detail = detail
        self.offline = offline
        self.unreachable_index = unreachable_index
        self.conflicts = conflicts
        self.source_build = source_build  # what failed to build from source ("" if unknown)
        self.names = names  # the packages of a dependency table the buildpack does not read


@dataclass(frozen=True)
class Requirements:
    """What to install and the inputs that decide it."""

    file: str  # requirements.txt or pyproject.toml
    requirement_file: Path | None  # passed to uv with -r; None for pyproject dependencies
    packages: tuple[str, ...]  # pyproject's [project] dependencies
    inputs: tuple[tuple[str, bytes], ...]  # (name, content) of every file that decides the install
    requested: tuple[tuple[str, str], ...] = ()  # (normalized name, specifier) of each named package
    local_paths: tuple[Path, ...] = ()  # local packages, archives and --find-links directories


def find_requirements(app: AppFiles) -> Requirements | None:
    """requirements.txt if present, else pyproject's [project] dependencies, else None.

    Fails for what the buildpack cannot install as asked (editable requirements, a missing
    -r file, dynamic dependencies, another tool's dependency table) before anything is
    installed.
    """
    if app.requirements is not None:
        parsed = _RequirementFiles(app)
        parsed.read(app.requirements)
        if not parsed.listed:
            return None  # comments and options only
        return Requirements(
            REQUIREMENTS, app.requirements, (), tuple(parsed.inputs), tuple(parsed.requested),
            tuple(parsed.local_paths),
        )
    pyproject = app.pyproject() or {}  # field types are checked by AppFiles
    project = pyproject.get("project")
    poetry = _poetry_dependencies(pyproject)
    if poetry and (project is None or "dependencies" not in project):
        raise DependenciesLayerError(DependenciesLayerErrorKind.POETRY_DEPENDENCIES, PYPROJECT, names=poetry)
    if project is not None:
        if "dependencies" in project.get("dynamic", []):
            raise DependenciesLayerError(DependenciesLayerErrorKind.DYNAMIC_DEPENDENCIES, PYPROJECT)
        packages = project.get("dependencies", [])
        if packages:
            parsed = _RequirementFiles(app)
            for package in packages:
                parsed.requirement(package)
            listed = "\n".join(packages).encode()
            return Requirements(
                PYPROJECT, None, tuple(packages), ((PYPROJECT + " [project] dependencies", listed),),
                tuple(parsed.requested), tuple(parsed.local_paths),
            )
        if "dependencies" in project:
            return None  # an explicit empty list
    pipfile = _pipfile_packages(app)
    if pipfile is not None:
        raise DependenciesLayerError(DependenciesLayerErrorKind.PIPFILE_DEPENDENCIES, PIPFILE, names=pipfile)
    return None


def _poetry_dependencies(pyproject: dict[str, Any]) -> tuple[str, ...]:
    table = pyproject.get("tool", {}).get("poetry", {}).get("dependencies", {})
    return tuple(name for name in table if name.lower() != "python")


def _pipfile_packages(app: AppFiles) -> tuple[str, ...] | None:
    """The [packages] of a Pipfile, if it lists any (a Pipfile that cannot be read: unknown, ())."""
    path = app.pipfile
    if path is None:
        return None
    try:
        packages = tomllib.loads(path.read_text(encoding="utf-8")).get("packages")
    except (OSError, UnicodeDecodeError, ValueError):
        return ()
    if isinstance(packages, dict):
        return tuple(packages) or None
    return None


@dataclass
class _RequirementFiles:
    """Reads requirement files as uv does, for what the cache key and the errors need."""

    app: AppFiles
    inputs: list[tuple[str, bytes]] = field(default_factory=list)
    requested: list[tuple[str, str]] = field(default_factory=list)
    local_paths: list[Path] = field(default_factory=list)
    seen: set[Path] = field(default_factory=set)
    listed: int = 0  # requirement lines (not options)

    def read(self, path: Path) -> None:
        """The file and every file it includes with -r/-c, recursively."""
        resolved = path.resolve()
        if resolved in self.seen:
            return
        self.seen.add(resolved)
        text = self.app.read_text(path)
        name = self.app.display(path)
        self.inputs.append((name, text.encode()))
        for line in _logical_lines(text):
            if not line.startswith("-"):
                self.requirement(line)
                continue
            option, value = _option(line)
            if option in _INCLUDES and value and "://" not in value:
                included = path.parent / value  # includes are relative to the including file
                if not included.is_file():
                    raise DependenciesLayerError(DependenciesLayerErrorKind.MISSING_INCLUDED_FILE, name, value)
                self.read(included)
            elif option == "--editable":
                raise DependenciesLayerError(DependenciesLayerErrorKind.EDITABLE_REQUIREMENT, name, value)
            elif option in _LOCATIONS:
                self._add_local(value)

    def requirement(self, text: str) -> None:
        """One requirement: a name with a specifier, `name @ url`, a URL, or a local path."""
        self.listed += 1
        text = _TRAILING_OPTIONS.sub("", text.strip())
        direct = _DIRECT_REFERENCE.match(text)
        if direct is not None:
            self.requested.append((sbom.normalize(direct.group(1)), ""))
            self._add_local(direct.group(2))
            return
        location = re.sub(r"\[[^\]]*\]$", "", text.split(";", 1)[0].strip())
        if _is_location(location):
            self._add_local(location)
            return
        named = _NAMED.match(text)
        if named is not None:
            self.requested.append((sbom.normalize(named.group(1)), named.group(2).split(";", 1)[0].strip()))

    def _add_local(self, reference: str) -> None:
        path = _local_path(reference, self.app.app_dir)  # relative paths: to the app directory, as uv does
        if path is not None and path not in self.local_paths:
            self.local_paths.append(path)


def _logical_lines(text: str) -> list[str]:
    """Lines without comments, continuation lines joined, blank lines left out."""
    lines: list[str] = []
    pending = ""
    for raw in text.splitlines():
        line = _COMMENT.sub("", raw)
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        line = (pending + line).strip()
        pending = ""
        if line:
            lines.append(line)
    if pending.strip():
        lines.append(pending.strip())
    return lines


def _option(line: str) -> tuple[str, str]:
    """("--find-links", "./wheels") for `-f ./wheels`, `--find-links=./wheels`, `-f./wheels`."""
    first, rest = (line.split(None, 1) + [""])[:2]
    if first.startswith("--"):
        name, equals, value = first.partition("=")
        value = value if equals else rest
    else:
        name, value = first[:2], first[2:] or rest
    value = value.strip().lstrip("=").strip()
    return _SHORT_OPTIONS.get(name, name), value.split()[0] if value else ""


def _is_location(text: str) -> bool:
    """A URL or a path rather than a package name."""
    lowered = text.lower()
    return (
        "://" in text
        or lowered.startswith("file:")
        or text.startswith((".", "/", "~"))
        or "/" in text
        or "\\" in text
        or lowered.endswith(_ARCHIVES)
    )


def _local_path(reference: str, app_dir: Path) -> Path | None:
    """The file or directory a path or file: URL names; None for a remote URL."""
    reference = reference.split("#", 1)[0]  # #egg=..., #subdirectory=...
    if reference.lower().startswith("file:"):
        parts = urllib.parse.urlsplit(reference)
        if parts.netloc not in ("", "localhost"):
            return None
        reference = urllib.parse.unquote(parts.path)
    elif "://" in reference or not reference:
        return None
    path = Path(os.path.expanduser(reference))
    return Path(os.path.normpath(path if path.is_absolute() else app_dir / path))


@dataclass(frozen=True)
class Dependencies:
    path: Path
    site_packages: Path
    reused: bool
    packages: int


def contribute(
    ctx: BuildContext,
    app: AppFiles,
    requirements: Requirements | None,
    uv: Uv,
    python: StackPython,
    runtime: Runtime,
    log: Log,
) -> Dependencies | None:
    layer = ctx.layer(LAYER_NAME)
    if requirements is None:
        log.step("Dependencies: none (no requirements.txt or pyproject.toml dependencies)")
        layer.remove()  # a layer restored from an earlier build that had dependencies
        return None

    vendor = app.vendor_dir
    inputs = _cache_inputs(app, requirements, vendor, python, runtime)
    key = _cache_key(inputs)
    metadata = {"cache_key": key, "source": requirements.file, "python_version": python.text,
                "offline": vendor is not None, "inputs": inputs}
    restored = layer.restored_metadata()
    site_packages = layer.path / SITE_PACKAGES

    if restored is not None and restored.get("cache_key") == key and site_packages.is_dir():
        unchanged = [requirements.file] + [_display(app, path) for path in requirements.local_paths]
        log.step(f"Dependencies: reusing the cached layer ({_and(unchanged)} unchanged)")
        reused = True
    else:
        reason = _rebuild_reason(restored, key, inputs)
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


# --- the cache key -----------------------------------------------------------------------

def _cache_inputs(
    app: AppFiles, requirements: Requirements, vendor: Path | None, python: StackPython, runtime: Runtime
) -> dict[str, str]:
    """A digest of each input that decides what is installed, by the name the log shows."""
    inputs = {"Python": python.text, "runtime layer": runtime.cache_key}
    for name, content in requirements.inputs:
        inputs[_printable(name)] = _digest(content)
    for path in requirements.local_paths:
        inputs[_display(app, path)] = _path_digest(path)
    if vendor is not None:
        inputs[f"{VENDOR_DIR}/"] = _path_digest(vendor, skip=False)
    uv_toml = app.uv_toml
    if uv_toml is not None:
        inputs[UV_TOML] = _path_digest(uv_toml)
    uv_settings = (app.pyproject() or {}).get("tool", {}).get("uv")
    if uv_settings:
        inputs[f"{PYPROJECT} [tool.uv]"] = _digest(json.dumps(uv_settings, sort_keys=True, default=str).encode())
    return inputs


def _cache_key(inputs: dict[str, str]) -> str:
    digest = hashlib.sha256(f"v{_KEY_VERSION}\0".encode())
    for name, value in sorted(inputs.items()):
        digest.update(f"{name}\0{value}\0".encode())
    return digest.hexdigest()[:16]


def _rebuild_reason(restored: dict[str, Any] | None, key: str, inputs: dict[str, str]) -> str:
    if restored is None:
        return "no cached layer"
    if restored.get("cache_key") == key:
        return "the cached layer's files are missing"
    before = restored.get("inputs")
    if not isinstance(before, dict) or not before:
        return "the cached layer was made by another buildpack version"
    changed = [f"{name}{'' if name in before else ' (new)'}" for name in inputs if before.get(name) != inputs[name]]
    changed += [f"{name} (gone)" for name in before if name not in inputs]
    return f"changed: {', '.join(changed)}" if changed else "the cache key changed"


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:16]


def _path_digest(path: Path, *, skip: bool = True) -> str:
    """A file's content, or a directory's files (relative paths and contents)."""
    try:
        if path.is_file():
            return _digest(path.read_bytes())
        if not path.is_dir():
            return "missing"
    except OSError:
        return "unreadable"
    digest = hashlib.sha256()
    for file in _tree_files(path, skip):
        relative = os.fsencode(os.path.relpath(file, path))
        try:
            content = hashlib.sha256(file.read_bytes()).digest()
        except OSError:
            content = b"unreadable"
        digest.update(relative + b"\0" + content)
    return digest.hexdigest()[:16]


def _tree_files(root: Path, skip: bool) -> list[Path]:
    files: list[Path] = []
    for directory, dirs, names in os.walk(root):
        if skip:
            at_root = directory == str(root)
            dirs[:] = [d for d in dirs if d not in _SKIPPED_DIRS and not d.endswith(_SKIPPED_SUFFIXES)
                       and not (at_root and d in _SKIPPED_ROOT_DIRS)]
            names = [n for n in names if not n.endswith(_SKIPPED_SUFFIXES)]
        files.extend(Path(directory, name) for name in names)
    return sorted(files, key=lambda p: os.fsencode(p))


def _display(app: AppFiles, path: Path) -> str:
    shown = app.display(path)
    return _printable(shown + "/" if path.is_dir() else shown)


def _printable(text: str) -> str:
    """Text as it can be printed and written to TOML (file names need not be UTF-8)."""
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def _and(names: list[str]) -> str:
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} and {names[-1]}"


# --- installing --------------------------------------------------------------------------

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
        output = result.output
        source_build = _FAILED_BUILD_NAME.search(output)
        raise DependenciesLayerError(
            DependenciesLayerErrorKind.RESOLUTION_FAILED,
            requirements.file,
            _uv_error(output),
            offline=vendor is not None,
            unreachable_index=vendor is None and _NETWORK_FAILURE.search(output) is not None,
            conflicts=_framework_conflicts(requirements, runtime.distributions(), output),
            source_build=(source_build.group(1) if source_build else "")
            if _SOURCE_BUILD_FAILURE.search(output) else None,
        )
    (target / ".lock").unlink(missing_ok=True)  # uv's, world-writable


def _framework_conflicts(
    requirements: Requirements, runtime_dists: dict[str, str], output: str
) -> tuple[FrameworkConflict, ...]:
    """The framework's packages behind a failed resolution.

    uv reports the runtime's versions (given to it as constraints) as if the user had
    required them: `name==version` in its output marks a framework package in the conflict.
    One the requirements name themselves with a specifier that excludes the runtime's
    version is the user's pin; otherwise another package of theirs wants a different version.
    """
    requested: dict[str, list[str]] = {}
    for name, spec in requirements.requested:
        requested.setdefault(name, []).append(spec)
    conflicts = []
    for name, version in sorted(runtime_dists.items()):
        spelled = r"[-_.]+".join(re.escape(part) for part in name.split("-"))
        mentioned = re.search(rf"(?<![\w.-]){spelled}\s*==\s*{re.escape(version)}(?![\w.+-])", output, re.I)
        specs = requested.get(name, [])
        excluding = [spec for spec in specs if _excludes(spec, version)]
        unsure = [spec for spec in specs if _excludes(spec, version) is None]
        if excluding or (unsure and mentioned):
            conflicts.append(FrameworkConflict(name, version, ", ".join(excluding or unsure)))
        elif mentioned:
            conflicts.append(FrameworkConflict(name, version, None))
    return tuple(conflicts)


def _excludes(spec: str, version: str) -> bool | None:
    """Whether a specifier rules the version out; None when the buildpack cannot tell."""
    if not spec.strip():
        return False
    if not re.fullmatch(r"\d+(?:\.\d+)*", version):
        return None
    try:
        return not satisfies(tuple(int(part) for part in version.split(".")), spec)
    except ValueError:
        return None


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
