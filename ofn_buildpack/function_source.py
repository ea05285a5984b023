"""The function to serve: which source file, which target, which signature type.

Settings come from the build environment OpenFunction users already set (FUNC_NAME,
FUNC_SRC, FUNC_SIGNATURE_TYPE) or the framework's own names (FUNCTION_TARGET,
FUNCTION_SOURCE, FUNCTION_SIGNATURE_TYPE, which win). The source is checked
statically with `ast`; user code is never imported at build time.
"""

from __future__ import annotations

import ast
import enum
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

DEFAULT_SOURCE = "main.py"

TARGET_VARS = ("FUNCTION_TARGET", "FUNC_NAME")
SOURCE_VARS = ("FUNCTION_SOURCE", "FUNC_SRC")
SIGNATURE_VARS = ("FUNCTION_SIGNATURE_TYPE", "FUNC_SIGNATURE_TYPE")

# what the framework's SignatureType.parse accepts, after lower-casing and dropping - and _
SIGNATURE_TYPES = {
    "http": "http",
    "cloudevent": "cloudevent",
    "event": "cloudevent",
    "openfunction": "openfunction",
    "function": "openfunction",
}
# decorators of the framework that declare a function's signature
DECORATORS = frozenset({"http", "cloud_event", "function"})


class FunctionSourceErrorKind(enum.Enum):
    SOURCE_NOT_FOUND = "source-not-found"
    SOURCE_OUTSIDE_APP = "source-outside-app"
    UNREADABLE_SOURCE = "unreadable-source"
    SYNTAX_ERROR = "syntax-error"
    TARGET_NOT_FOUND = "target-not-found"
    TARGET_NOT_A_NAME = "target-not-a-name"
    NO_TARGET = "no-target"
    INVALID_SIGNATURE_TYPE = "invalid-signature-type"
    UNDECODABLE_SETTING = "undecodable-setting"


class FunctionSourceError(Exception):
    def __init__(
        self,
        kind: FunctionSourceErrorKind,
        source: str,
        *,
        target: str = "",
        variable: str = "",
        candidates: tuple[str, ...] = (),
        line: int | None = None,
        detail: str = "",
    ) -> None:
        # candidates: the functions defined (target errors) or a suggested source (source errors)
        super().__init__(f"{kind.value}: {source} {target} {detail}".strip())
        self.kind = kind
        self.source = source
        self.target = target
        self.variable = variable
        self.candidates = candidates
        self.line = line
        self.detail = detail


@dataclass(frozen=True)
class Setting:
    value: str
    variable: str  # the environment variable it came from, "" for a default


@dataclass(frozen=True)
class FunctionSettings:
    source: Setting
    target: Setting
    signature_type: Setting

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> FunctionSettings:
        return cls(
            source=_first(env, SOURCE_VARS) or Setting(DEFAULT_SOURCE, ""),
            target=_first(env, TARGET_VARS) or Setting("", ""),
            signature_type=_first(env, SIGNATURE_VARS) or Setting("", ""),
        )


def _first(env: Mapping[str, str], names: tuple[str, ...]) -> Setting | None:
    for name in names:
        value = env.get(name, "").strip()
        if value:
            if not _decodes(value):
                # the environment keeps undecodable bytes as surrogates (surrogateescape)
                raise FunctionSourceError(
                    FunctionSourceErrorKind.UNDECODABLE_SETTING, "", variable=name, detail=value
                )
            return Setting(value, name)
    return None


def _decodes(value: str) -> bool:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


# the variable naming the source that goes with each variable naming the target
SOURCE_VAR_FOR = dict(zip(TARGET_VARS, SOURCE_VARS))


@dataclass(frozen=True)
class FunctionSpec:
    source: str  # as the framework is to be given it, relative to the app directory
    source_file: Path  # the Python file that defines the target
    target: str
    target_origin: str  # the variable it came from, or "source"
    signature_type: str  # "" when the framework is to decide


def source_exists(app_dir: Path, source: str) -> bool:
    return not source_outside_app(source) and _source_file(app_dir, source) is not None


def source_outside_app(source: str) -> bool:
    """An absolute path, or one that leaves the app directory with `..`."""
    normalized = os.path.normpath(source)
    return os.path.isabs(normalized) or normalized == ".." or normalized.startswith("../")


def suggest_source(app_dir: Path, source: str) -> str:
    """A source that exists, for a FUNC_SRC that does not: `main` -> main.py; else main.py."""
    for candidate in (source + ".py", DEFAULT_SOURCE):
        if candidate != source and not source_outside_app(candidate) and _source_file(app_dir, candidate):
            return candidate
    return ""


def _source_file(app_dir: Path, source: str) -> Path | None:
    path = app_dir / source
    try:
        if path.is_file():
            return path
        if path.is_dir():
            for name in ("__init__.py", DEFAULT_SOURCE):
                if (path / name).is_file():
                    return path / name
    except (OSError, ValueError):  # e.g. a name too long for the file system: no such file
        return None
    return None


def resolve(app_dir: Path, settings: FunctionSettings) -> FunctionSpec:
    """Check the settings against the source and fill in the target if it was not given."""
    source = settings.source.value
    signature = _signature_type(settings.signature_type, source)
    if source_outside_app(source):
        raise FunctionSourceError(
            FunctionSourceErrorKind.SOURCE_OUTSIDE_APP, source, variable=settings.source.variable
        )
    file = _source_file(app_dir, source)
    if file is None:
        suggestion = suggest_source(app_dir, source)
        raise FunctionSourceError(
            FunctionSourceErrorKind.SOURCE_NOT_FOUND,
            source,
            variable=settings.source.variable,
            candidates=(suggestion,) if suggestion else (),
        )
    target = settings.target.value
    if target and not target.isidentifier():
        # e.g. main:hello, as gunicorn or uvicorn take it: no attribute can have that name
        raise FunctionSourceError(
            FunctionSourceErrorKind.TARGET_NOT_A_NAME, source, target=target, variable=settings.target.variable
        )
    module = _parse(file, source)
    names = ModuleNames.of(module)

    if target:
        if not names.star_import and target not in names.defined:
            raise FunctionSourceError(
                FunctionSourceErrorKind.TARGET_NOT_FOUND,
                source,
                target=target,
                variable=settings.target.variable,
                candidates=tuple(names.public_functions),
                detail="script-only" if target in names.script_only else "",
            )
        return FunctionSpec(source, file, target, settings.target.variable, signature)

    for candidates in (names.decorated_functions, names.public_functions):
        if len(candidates) == 1:
            return FunctionSpec(source, file, candidates[0], "source", signature)
    raise FunctionSourceError(
        FunctionSourceErrorKind.NO_TARGET, source, candidates=tuple(names.public_functions)
    )


def _signature_type(setting: Setting, source: str) -> str:
    if not setting.value:
        return ""
    key = setting.value.strip().lower().replace("_", "").replace("-", "")
    if key not in SIGNATURE_TYPES:
        raise FunctionSourceError(
            FunctionSourceErrorKind.INVALID_SIGNATURE_TYPE,
            source,
            variable=setting.variable,
            detail=setting.value,
        )
    return SIGNATURE_TYPES[key]


def _parse(file: Path, source: str) -> ast.Module:
    try:
        text = file.read_bytes()
    except OSError as exc:
        raise FunctionSourceError(
            FunctionSourceErrorKind.UNREADABLE_SOURCE, source, detail=str(exc)
        ) from None
    try:
        return ast.parse(text, filename=str(file))
    except (SyntaxError, ValueError) as exc:
        line = exc.lineno if isinstance(exc, SyntaxError) else None
        message = exc.msg if isinstance(exc, SyntaxError) else str(exc)
        raise FunctionSourceError(
            FunctionSourceErrorKind.SYNTAX_ERROR, source, line=line, detail=message
        ) from None


@dataclass(frozen=True)
class ModuleNames:
    """The names a module defines at its top level, found without running it."""

    defined: frozenset[str]
    public_functions: list[str]
    decorated_functions: list[str]
    star_import: bool
    script_only: frozenset[str]  # defined only under `if __name__ == "__main__":`

    @classmethod
    def of(cls, module: ast.Module) -> ModuleNames:
        defined: set[str] = set()
        functions: list[str] = []
        decorated: list[str] = []
        star = False
        script_only: set[str] = set()
        for node, as_script in _top_level(module.body):
            if as_script:
                if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                    script_only.add(node.name)
                continue
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                defined.add(node.name)
                if not node.name.startswith("_"):
                    functions.append(node.name)
                    if any(_is_framework_decorator(d) for d in node.decorator_list):
                        decorated.append(node.name)
            elif isinstance(node, ast.ClassDef):
                defined.add(node.name)
            elif isinstance(node, ast.Assign):
                for target in node.targets:
                    defined.update(_assigned_names(target))
            elif isinstance(node, (ast.AnnAssign, ast.AugAssign)):
                defined.update(_assigned_names(node.target))
            elif isinstance(node, (ast.Import, ast.ImportFrom)):
                for alias in node.names:
                    if alias.name == "*":
                        star = True
                    else:
                        defined.add(alias.asname or alias.name.split(".")[0])
        return cls(
            defined=frozenset(defined),
            public_functions=sorted(set(functions)),
            decorated_functions=sorted(set(decorated)),
            star_import=star,
            script_only=frozenset(script_only - defined),
        )


def _top_level(body: list[ast.stmt], as_script: bool = False) -> Iterator[tuple[ast.stmt, bool]]:
    """Module-level statements, including those inside if/try/with/for/while blocks, each
    with whether it runs only when the file is run as a script: the framework imports the
    module, so the body of `if __name__ == "__main__":` never runs in the function."""
    for node in body:
        yield node, as_script
        if isinstance(node, ast.If):
            guard = _main_guard(node.test)
            yield from _top_level(node.body, as_script or guard == "main")
            yield from _top_level(node.orelse, as_script or guard == "imported")
        elif isinstance(node, (ast.For, ast.AsyncFor, ast.While)):
            yield from _top_level(node.body, as_script)
            yield from _top_level(node.orelse, as_script)
        elif isinstance(node, (ast.With, ast.AsyncWith)):
            yield from _top_level(node.body, as_script)
        elif isinstance(node, ast.Try) or type(node).__name__ == "TryStar":
            yield from _top_level(node.body, as_script)  # type: ignore[attr-defined]
            for handler in node.handlers:  # type: ignore[attr-defined]
                yield from _top_level(handler.body, as_script)
            yield from _top_level(node.orelse, as_script)  # type: ignore[attr-defined]
            yield from _top_level(node.finalbody, as_script)  # type: ignore[attr-defined]


def _main_guard(test: ast.expr) -> str:
    """"main" for `__name__ == "__main__"`, "imported" for `!=`, "" for any other test."""
    if not (isinstance(test, ast.Compare) and len(test.ops) == 1 and len(test.comparators) == 1):
        return ""
    sides = (test.left, test.comparators[0])
    is_name = any(isinstance(side, ast.Name) and side.id == "__name__" for side in sides)
    is_main = any(isinstance(side, ast.Constant) and side.value == "__main__" for side in sides)
    if not (is_name and is_main):
        return ""
    if isinstance(test.ops[0], ast.Eq):
        return "main"
    if isinstance(test.ops[0], ast.NotEq):
        return "imported"
    return ""


def _assigned_names(target: ast.expr) -> Iterator[str]:
    if isinstance(target, ast.Name):
        yield target.id
    elif isinstance(target, (ast.Tuple, ast.List)):
        for element in target.elts:
            yield from _assigned_names(element)
    elif isinstance(target, ast.Starred):
        yield from _assigned_names(target.value)


def _is_framework_decorator(node: ast.expr) -> bool:
    if isinstance(node, ast.Call):
        node = node.func
    if isinstance(node, ast.Name):
        return node.id in DECORATORS
    if isinstance(node, ast.Attribute):
        return node.attr in DECORATORS
    return False
