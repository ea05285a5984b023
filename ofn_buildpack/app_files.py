"""Files of the app directory the buildpack reads: pyproject.toml, requirements.txt, vendor/,
and the files of other tools it recognizes only to say that it does not read them.

pyproject.toml is checked once, here, for the types of the fields the buildpack reads, so a
mistake such as `project = "fn"` is reported as such and never reaches the code using it.
"""

from __future__ import annotations

import enum
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REQUIREMENTS = "requirements.txt"
PYPROJECT = "pyproject.toml"
PYTHON_VERSION_FILE = ".python-version"
RUNTIME_TXT = "runtime.txt"  # other buildpacks' Python version file; not read here
PIPFILE = "Pipfile"  # Pipenv's; not read here
UV_TOML = "uv.toml"  # uv's settings, which `uv pip install` reads from the app directory
VENDOR_DIR = "vendor"

_LIST_OF_STRINGS = "a list of strings"
_TABLE = "a table"
# Every pyproject.toml field the buildpack reads, with the type it must have. Parents come
# before their children, so a child is only looked at in a parent of the right type.
PYPROJECT_FIELDS: tuple[tuple[tuple[str, ...], str], ...] = (
    (("project",), _TABLE),
    (("project", "dependencies"), _LIST_OF_STRINGS),
    (("project", "dynamic"), _LIST_OF_STRINGS),
    (("project", "requires-python"), "a string"),
    (("tool",), _TABLE),
    (("tool", "poetry"), _TABLE),
    (("tool", "poetry", "dependencies"), _TABLE),
    (("tool", "uv"), _TABLE),
)


class AppFilesErrorKind(enum.Enum):
    INVALID_PYPROJECT = "invalid-pyproject"
    UNREADABLE_FILE = "unreadable-file"


class AppFilesError(Exception):
    def __init__(
        self,
        kind: AppFilesErrorKind,
        file: str,
        detail: str,
        *,
        field: str = "",
        expected: str = "",
    ) -> None:
        super().__init__(f"{kind.value}: {file}: {field + ': ' if field else ''}{detail}")
        self.kind = kind
        self.file = file
        self.detail = detail  # the TOML error, or the value found in `field`
        self.field = field  # e.g. "[project] dependencies"; "" when the file is not valid TOML
        self.expected = expected  # e.g. "a list of strings"


@dataclass(frozen=True)
class AppFiles:
    app_dir: Path

    def _file(self, name: str) -> Path | None:
        path = self.app_dir / name
        return path if path.is_file() else None

    @property
    def requirements(self) -> Path | None:
        return self._file(REQUIREMENTS)

    @property
    def pyproject_path(self) -> Path | None:
        return self._file(PYPROJECT)

    @property
    def python_version_file(self) -> Path | None:
        return self._file(PYTHON_VERSION_FILE)

    @property
    def runtime_txt(self) -> Path | None:
        return self._file(RUNTIME_TXT)

    @property
    def pipfile(self) -> Path | None:
        return self._file(PIPFILE)

    @property
    def uv_toml(self) -> Path | None:
        return self._file(UV_TOML)

    @property
    def vendor_dir(self) -> Path | None:
        path = self.app_dir / VENDOR_DIR
        return path if path.is_dir() else None

    def pyproject(self) -> dict[str, Any] | None:
        """pyproject.toml, with the fields the buildpack reads checked for their types."""
        path = self.pyproject_path
        if path is None:
            return None
        try:
            with open(path, "rb") as f:
                document = tomllib.load(f)
        except tomllib.TOMLDecodeError as exc:
            raise AppFilesError(AppFilesErrorKind.INVALID_PYPROJECT, PYPROJECT, str(exc)) from None
        except OSError as exc:
            raise AppFilesError(AppFilesErrorKind.UNREADABLE_FILE, PYPROJECT, str(exc)) from None
        _check_field_types(document)
        return document

    def read_text(self, path: Path) -> str:
        try:
            return path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise AppFilesError(
                AppFilesErrorKind.UNREADABLE_FILE, self.display(path), str(exc)
            ) from None

    def display(self, path: Path) -> str:
        """The path as the user knows it: relative to the app directory when inside it."""
        return str(path.relative_to(self.app_dir)) if path.is_relative_to(self.app_dir) else str(path)


def field_name(path: tuple[str, ...], table: bool) -> str:
    """"[project] dependencies" for a key, "[tool.poetry]" for a table."""
    if table or len(path) == 1:
        return f"[{'.'.join(path)}]"
    return f"[{'.'.join(path[:-1])}] {path[-1]}"


def _check_field_types(document: dict[str, Any]) -> None:
    for path, expected in PYPROJECT_FIELDS:
        parent: Any = document
        for key in path[:-1]:
            parent = parent.get(key) if isinstance(parent, dict) else None
        if not isinstance(parent, dict) or path[-1] not in parent:
            continue
        value = parent[path[-1]]
        if not _has_type(value, expected):
            raise AppFilesError(
                AppFilesErrorKind.INVALID_PYPROJECT,
                PYPROJECT,
                _describe_value(value),
                field=field_name(path, expected == _TABLE),
                expected=expected,
            )


def _has_type(value: Any, expected: str) -> bool:
    if expected == _TABLE:
        return isinstance(value, dict)
    if expected == _LIST_OF_STRINGS:
        return isinstance(value, list) and all(isinstance(item, str) for item in value)
    return isinstance(value, str)


_TOML_TYPES = {
    bool: "a boolean", int: "an integer", float: "a number", str: "a string", list: "a list", dict: "a table",
}


def _describe_value(value: Any) -> str:
    kind = next((name for cls, name in _TOML_TYPES.items() if type(value) is cls), "a date or time")
    if isinstance(value, list):
        wrong = [item for item in value if not isinstance(item, str)]
        if wrong:
            return f"a list with {_describe_value(wrong[0])}"
    text = repr(value)
    return f"{kind}, {text if len(text) <= 60 else text[:57] + '...'}"
