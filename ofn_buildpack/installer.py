"""The package installer the layers use: uv, shipped inside the buildpack.

uv creates the virtual environment and installs wheels several times faster than pip
(see bench/results-build.md). The buildpack carries its binary in `tools/uv`; OFN_UV
points at another one (the contract tests use the one in the test virtualenv).
"""

from __future__ import annotations

import enum
import os
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

# Byte-compiled files are validated by source hash, not mtime: the lifecycle resets
# file times in image layers, which would make mtime-checked .pyc files stale.
SOURCE_DATE_EPOCH = "315532801"


class InstallerErrorKind(enum.Enum):
    UV_NOT_FOUND = "uv-not-found"


class InstallerError(Exception):
    def __init__(self, kind: InstallerErrorKind, looked_in: Sequence[str]) -> None:
        super().__init__(f"{kind.value}: looked in {', '.join(looked_in)}")
        self.kind = kind
        self.looked_in = tuple(looked_in)


@dataclass(frozen=True)
class Result:
    returncode: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return (self.stdout + "\n" + self.stderr).strip()

    @property
    def ok(self) -> bool:
        return self.returncode == 0


@dataclass(frozen=True)
class Uv:
    executable: Path
    base_env: Mapping[str, str]

    @classmethod
    def locate(cls, env: Mapping[str, str], buildpack_dir: Path) -> Uv:
        candidates = [env.get("OFN_UV", ""), str(buildpack_dir / "tools" / "uv")]
        for candidate in candidates:
            if candidate and os.access(candidate, os.X_OK):
                return cls(Path(candidate), _uv_env(env))
        on_path = shutil.which("uv", path=env.get("PATH"))
        if on_path:
            return cls(Path(on_path), _uv_env(env))
        raise InstallerError(InstallerErrorKind.UV_NOT_FOUND, [c for c in candidates if c] + ["PATH"])

    def run(self, args: Sequence[str], *, cwd: Path, extra_env: Mapping[str, str] | None = None) -> Result:
        env = dict(self.base_env)
        env.update(extra_env or {})
        proc = subprocess.run(
            [str(self.executable), *args],
            cwd=cwd,
            env=env,
            capture_output=True,
            encoding="utf-8",
            errors="replace",  # a package's build may print anything
            check=False,
        )
        return Result(proc.returncode, proc.stdout, proc.stderr)

    def version(self) -> str:
        result = self.run(["--version"], cwd=Path("/"))
        return result.stdout.strip().removeprefix("uv ").split(" ")[0] if result.ok else "unknown"


def _uv_env(env: Mapping[str, str]) -> dict[str, str]:
    uv_env = {k: v for k, v in env.items() if not k.startswith("PYTHON")}
    uv_env.setdefault("UV_PYTHON_DOWNLOADS", "never")  # only the stack's Python
    uv_env.setdefault("UV_SYSTEM_CERTS", "1")  # the image's CA store, so site CAs work
    uv_env.setdefault("UV_NO_PROGRESS", "1")
    uv_env["SOURCE_DATE_EPOCH"] = SOURCE_DATE_EPOCH
    uv_env.pop("VIRTUAL_ENV", None)
    return uv_env
