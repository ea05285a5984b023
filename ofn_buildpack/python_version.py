"""The stack's Python and whether it satisfies what the app asks for.

The stack has exactly one Python (Debian bookworm's 3.11). An app may ask for a version
in `.python-version` (pyenv's file) or with `requires-python` in pyproject.toml; a
request the stack cannot satisfy fails the build instead of producing an image that
breaks at run time.
"""

from __future__ import annotations

import enum
import re
import sys
from dataclasses import dataclass
from pathlib import Path

from ofn_buildpack.app_files import PYPROJECT, PYTHON_VERSION_FILE, RUNTIME_TXT, AppFiles


class PythonVersionErrorKind(enum.Enum):
    UNSUPPORTED_VERSION_FILE = "unsupported-python-version-file"
    INVALID_VERSION_FILE = "invalid-python-version-file"
    UNSUPPORTED_REQUIRES_PYTHON = "unsupported-requires-python"
    INVALID_REQUIRES_PYTHON = "invalid-requires-python"


class PythonVersionError(Exception):
    def __init__(self, kind: PythonVersionErrorKind, requested: str, available: str, file: str) -> None:
        super().__init__(f"{kind.value}: {file} asks for {requested!r}, the stack has {available}")
        self.kind = kind
        self.requested = requested
        self.available = available
        self.file = file


@dataclass(frozen=True)
class StackPython:
    executable: Path
    version: tuple[int, int, int]

    @classmethod
    def current(cls) -> StackPython:
        """The interpreter running the buildpack: the build image's python3."""
        major, minor, micro = sys.version_info[:3]
        return cls(Path(sys.executable), (major, minor, micro))

    @property
    def text(self) -> str:
        return ".".join(str(n) for n in self.version)

    @property
    def minor(self) -> str:
        return f"{self.version[0]}.{self.version[1]}"


class NoticeKind(enum.Enum):
    PATCH_DIFFERS = "patch-differs"  # same minor version, another patch release
    FILE_NOT_READ = "file-not-read"  # runtime.txt: another buildpack's way to ask for a version


@dataclass(frozen=True)
class Notice:
    """Something the user should know that does not stop the build."""

    kind: NoticeKind
    file: str
    requested: str
    available: str


_VERSION_FILE_LINE = re.compile(r"^(?:c?python-?)?(\d+)(?:\.(\d+))?(?:\.(\d+))?$")


def check(app: AppFiles, python: StackPython) -> list[Notice]:
    """Fail if the app asks for a Python the stack lacks; notices for near misses."""
    notices: list[Notice] = []
    runtime_txt = app.runtime_txt
    if runtime_txt is not None:
        notices.append(Notice(NoticeKind.FILE_NOT_READ, RUNTIME_TXT, _first_line(runtime_txt), python.text))
    version_file = app.python_version_file
    if version_file is not None:
        notices.extend(_check_version_file(app.read_text(version_file), python))
    pyproject = app.pyproject()
    if pyproject is not None:
        requires = pyproject.get("project", {}).get("requires-python")  # types checked by AppFiles
        if requires is not None:
            _check_requires_python(requires, python)
    return notices


def _first_line(path: Path) -> str:
    """A file the buildpack does not read, for a message only: never fails."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""
    return next((line.strip()[:60] for line in text.splitlines() if line.strip()), "")


def _check_version_file(text: str, python: StackPython) -> list[Notice]:
    lines = [line.split("#", 1)[0].strip() for line in text.splitlines()]
    requests = [line for line in lines if line]
    if not requests:
        return []
    request = requests[0]  # pyenv uses the first version it has
    if request == "system":
        return []
    match = _VERSION_FILE_LINE.match(request)
    if match is None:
        raise PythonVersionError(
            PythonVersionErrorKind.INVALID_VERSION_FILE, request, python.text, PYTHON_VERSION_FILE
        )
    wanted = [int(part) for part in match.groups() if part is not None]
    if wanted[:2] != list(python.version[: len(wanted[:2])]):
        raise PythonVersionError(
            PythonVersionErrorKind.UNSUPPORTED_VERSION_FILE, request, python.text, PYTHON_VERSION_FILE
        )
    if len(wanted) == 3 and wanted[2] != python.version[2]:
        # the same minor version: compatible, but not the exact patch release
        return [Notice(NoticeKind.PATCH_DIFFERS, PYTHON_VERSION_FILE, request, python.text)]
    return []


def _check_requires_python(spec: str, python: StackPython) -> None:
    try:
        ok = satisfies(python.version, spec)
    except ValueError:
        raise PythonVersionError(
            PythonVersionErrorKind.INVALID_REQUIRES_PYTHON, spec, python.text, PYPROJECT
        ) from None
    if not ok:
        raise PythonVersionError(
            PythonVersionErrorKind.UNSUPPORTED_REQUIRES_PYTHON, spec, python.text, PYPROJECT
        )


# --- a PEP 440 version specifier subset: release segments, wildcards, all operators ---

_CLAUSE = re.compile(r"^\s*(~=|===|==|!=|<=|>=|<|>)\s*([0-9][0-9.]*(?:\.\*)?)\s*$")
_SUFFIX = re.compile(r"(?i)(?:a|b|c|rc|alpha|beta|pre|preview|post|rev|r|dev)[0-9]*$")


def satisfies(version: tuple[int, ...], spec: str) -> bool:
    """Whether `version` matches every comma-separated clause of `spec`; ValueError if unparseable."""
    clauses = [clause for clause in spec.split(",") if clause.strip()]
    if not clauses:
        raise ValueError(spec)
    return all(_matches(version, clause) for clause in clauses)


def _matches(version: tuple[int, ...], clause: str) -> bool:
    match = _CLAUSE.match(_SUFFIX.sub("", clause.strip()))
    if match is None:
        raise ValueError(clause)
    op, text = match.groups()
    wildcard = text.endswith(".*")
    parts = tuple(int(p) for p in text.removesuffix(".*").strip(".").split(".") if p != "")
    if not parts:
        raise ValueError(clause)
    if wildcard and op not in ("==", "!="):
        raise ValueError(clause)
    if op in ("==", "===", "!="):
        if wildcard:
            equal = version[: len(parts)] == parts
        else:
            equal = _pad(version, parts)[0] == _pad(version, parts)[1]
        return equal if op != "!=" else not equal
    if op == "~=":
        if len(parts) < 2:
            raise ValueError(clause)
        prefix = parts[:-1]
        return _compare(version, parts) >= 0 and version[: len(prefix)] == prefix
    cmp = _compare(version, parts)
    return {"<": cmp < 0, "<=": cmp <= 0, ">": cmp > 0, ">=": cmp >= 0}[op]


def _pad(a: tuple[int, ...], b: tuple[int, ...]) -> tuple[tuple[int, ...], tuple[int, ...]]:
    size = max(len(a), len(b))
    return a + (0,) * (size - len(a)), b + (0,) * (size - len(b))


def _compare(a: tuple[int, ...], b: tuple[int, ...]) -> int:
    left, right = _pad(a, b)
    return (left > right) - (left < right)
