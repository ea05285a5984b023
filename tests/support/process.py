"""Start real processes for integration tests, and wait for them to be ready."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Mapping, Sequence

ROOT = Path(__file__).resolve().parents[2]
FUNCTIONS_FRAMEWORK = str(Path(sys.executable).parent / "functions-framework")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_port(port: int, proc: subprocess.Popen | None = None, timeout: float = 20.0,
                  log: Path | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            text = log.read_text() if log and log.exists() else ""
            raise RuntimeError(f"process exited with {proc.returncode} before listening on {port}:\n{text}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    text = log.read_text() if log and log.exists() else ""
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {timeout}s:\n{text}")


@dataclass
class Process:
    proc: subprocess.Popen
    log_path: Path
    port: int = 0
    url: str = ""
    extra: dict = field(default_factory=dict)

    @property
    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def terminate(self, sig: int = signal.SIGTERM, timeout: float = 30.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        try:  # children (a reloader's worker, ...) share the session's process group
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        return self.proc.returncode


@contextmanager
def start_process(cmd: Sequence[str], *, env: Mapping[str, str] | None = None,
                  cwd: str | os.PathLike[str] | None = None, port: int = 0,
                  ready_timeout: float = 20.0, name: str = "proc") -> Iterator[Process]:
    log_dir = Path(tempfile.mkdtemp(prefix=f"ofn-{name}-"))
    log_path = log_dir / "output.log"
    full_env = {**os.environ, **(env or {})}
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(list(cmd), env=full_env, cwd=cwd, stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True)
    process = Process(proc, log_path, port, f"http://127.0.0.1:{port}" if port else "")
    try:
        if port:
            wait_for_port(port, proc, ready_timeout, log_path)
        yield process
    finally:
        process.terminate(timeout=10)


@contextmanager
def run_function(source: str | os.PathLike[str], target: str | None = None, *,
                 env: Mapping[str, str] | None = None, args: Sequence[str] = (),
                 port: int | None = None, wait: bool = True) -> Iterator[Process]:
    """Run the real `functions-framework` on a free loopback port."""
    port = port or free_port()
    cmd = [FUNCTIONS_FRAMEWORK, "--source", str(source), "--host", "127.0.0.1", "--port", str(port)]
    if target:
        cmd += ["--target", target]
    cmd += list(args)
    with start_process(cmd, env=env, port=port if wait else 0, name="function") as process:
        process.port = port
        process.url = f"http://127.0.0.1:{port}"
        yield process
