"""The function to serve: which source file, which target, which signature type.

Settings come from the build environment OpenFunction users already set (FUNC_NAME,
FUNC_SRC, FUNC_SIGNATURE_TYPE) or the framework's own names (FUNCTION_TARGET,
FUNCTION_SOURCE, FUNCTION_SIGNATURE_TYPE, which win). The source is checked
statically with `ast`; user code is never imported at build time.
"""

from __future__ import annotations

import ast
import enum
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
    UNREADABLE_SOURCE = "unreadable-source"
    SYNTAX_ERROR = "syntax-error"
    TARGET_NOT_FOUND = "target-not-found"
    NO_TARGET = "no-target"
    INVALID_SIGNATURE_TYPE = "invalid-signature-type"


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
            return Setting(value, name)
    return None


@dataclass(frozen=True)
class FunctionSpec:
    source: str  # as the framework is to be given it, relative to the app directory
    source_file: Path  # the Python file that defines the target
    target: str
    target_origin: str  # the variable it came from, or "source"
    signature_type: str  # "" when the framework is to decide


def source_exists(app_dir: Path, source: str) -> bool:
    return _source_file(app_dir, source) is not None


def _source_file(app_dir: Path, source: str) -> Path | None:
    path = app_dir / source
    if path.is_file():
        return path
    if path.is_dir():
        for name in ("__init__.py", DEFAULT_SOURCE):
            if (path / name).is_file():
                return path / name
    return None


def resolve(app_dir: Path, settings: FunctionSettings) -> FunctionSpec:
    """Check the settings against the source and fill in the target if it was not given."""
    source = settings.source.value
    signature = _signature_type(settings.signature_type, source)
    file = _source_file(app_dir, source)
    if file is None:
        raise FunctionSourceError(
            FunctionSourceErrorKind.SOURCE_NOT_FOUND, source, variable=settings.source.variable
        )
    module = _parse(file, source)
    names = ModuleNames.of(module)

    target = settings.target.value
    if target:
        if not names.star_import and target not in names.defined:
            raise FunctionSourceError(
                FunctionSourceErrorKind.TARGET_NOT_FOUND,
                source,
                target=target,
                variable=settings.target.variable,
                candidates=tuple(names.public_functions),
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

    @classmethod
    def of(cls, module: ast.Module) -> ModuleNames:
        defined: set[str] = set()
        functions: list[str] = []
        decorated: list[str] = []
        star = False
        for node in _top_level(module.body):
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
        )


def _top_level(body: list[ast.stmt]) -> Iterator[ast.stmt]:
    """Module-level statements, including those inside if/try/with/for/while blocks."""
    for node in body:
        yield node
        if isinstance(node, (ast.If, ast.For, ast.AsyncFor, ast.While)):
            yield from _top_level(node.body)
            yield from _top_level(node.orelse)
        elif isinstance(node, (ast.With, ast.AsyncWith)):
            yield from _top_level(node.body)
        elif isinstance(node, ast.Try) or type(node).__name__ == "TryStar":
            yield from _top_level(node.body)  # type: ignore[attr-defined]
            for handler in node.handlers:  # type: ignore[attr-defined]
                yield from _top_level(handler.body)
            yield from _top_level(node.orelse)  # type: ignore[attr-defined]
            yield from _top_level(node.finalbody)  # type: ignore[attr-defined]


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
