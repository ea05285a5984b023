"""Files of the app directory the buildpack reads: pyproject.toml, requirements.txt, vendor/."""

from __future__ import annotations

import enum
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REQUIREMENTS = "requirements.txt"
PYPROJECT = "pyproject.toml"
PYTHON_VERSION_FILE = ".python-version"
VENDOR_DIR = "vendor"


class AppFilesErrorKind(enum.Enum):
    INVALID_PYPROJECT = "invalid-pyproject"
    UNREADABLE_FILE = "unreadable-file"


class AppFilesError(Exception):
    def __init__(self, kind: AppFilesErrorKind, file: str, detail: str) -> None:
        super().__init__(f"{kind.value}: {file}: {detail}")
        self.kind = kind
        self.file = file
        self.detail = detail


@dataclass(frozen=True)
class AppFiles:
    app_dir: Path

    @property
    def requirements(self) -> Path | None:
        path = self.app_dir / REQUIREMENTS
        return path if path.is_file() else None

    @property
    def pyproject_path(self) -> Path | None:
        path = self.app_dir / PYPROJECT
        return path if path.is_file() else None

    @property
    def python_version_file(self) -> Path | None:
        path = self.app_dir / PYTHON_VERSION_FILE
        return path if path.is_file() else None

    @property
    def vendor_dir(self) -> Path | None:
        path = self.app_dir / VENDOR_DIR
        return path if path.is_dir() else None

    def pyproject(self) -> dict[str, Any] | None:
        path = self.pyproject_path
        if path is None:
            return None
        try:
            with open(path, "rb") as f:
                return tomllib.load(f)
        except tomllib.TOMLDecodeError as exc:
            raise AppFilesError(AppFilesErrorKind.INVALID_PYPROJECT, PYPROJECT, str(exc)) from None
        except OSError as exc:
            raise AppFilesError(AppFilesErrorKind.UNREADABLE_FILE, PYPROJECT, str(exc)) from None

    def read_text(self, path: Path) -> str:
        try:
            return path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise AppFilesError(
                AppFilesErrorKind.UNREADABLE_FILE, str(path.relative_to(self.app_dir)), str(exc)
            ) from None
