"""Helpers shared by the benchmarks: servers, wrk, CPU pinning, medians, markdown.

Every server is started in its own process group, pinned to one CPU with `taskset`,
and is stopped (SIGTERM, then SIGKILL) when its `with` block ends, when the script
exits, and on Ctrl-C / SIGTERM. Everything listens on 127.0.0.1 only.
"""

from __future__ import annotations

import argparse
import atexit
import os
import platform
import re
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Mapping, Sequence

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
FIXTURES = BENCH / "fixtures"
OUT = BENCH / "out"
LOGS = OUT / "logs"
VENV = REPO / ".venv"
VENV_BIN = VENV / "bin"
HOST = "127.0.0.1"

# Variables of the parent environment that would change how a server starts.
_SCRUB = (
    "FUNC_CONTEXT", "CONTEXT_MODE", "FUNCTION_TARGET", "FUNCTION_SOURCE",
    "FUNCTION_SIGNATURE_TYPE", "FUNC_NAME", "FUNC_SRC", "FUNC_SIGNATURE_TYPE", "HOST", "PORT",
    "DEBUG", "DRY_RUN", "LOG_LEVEL", "METRICS_PORT", "FUNCTION_THREADS", "PYTHONPATH",
    "WORKERS", "THREADS", "PYTHONDONTWRITEBYTECODE", "PYTHONPROFILEIMPORTTIME",
)


# --------------------------------------------------------------------------- CPUs


def pick_cpus(server_cpu: int | None, client_cpu: int | None) -> tuple[int, int]:
    """The CPU the server runs on and the one wrk (and this script) run on."""
    available = sorted(os.sched_getaffinity(0))
    if len(available) < 2:
        raise SystemExit("these benchmarks need at least 2 CPUs (server and wrk on separate ones)")
    server = available[0] if server_cpu is None else server_cpu
    client = next(c for c in available if c != server) if client_cpu is None else client_cpu
    if server == client:
        raise SystemExit("--server-cpu and --client-cpu must differ")
    return server, client


def pin_self(cpu: int) -> None:
    """Keep this script (the poller, the parser) off the server's CPU."""
    os.sched_setaffinity(0, {cpu})


def require_tools(*names: str) -> None:
    missing = [n for n in names if shutil.which(n) is None]
    if missing:
        raise SystemExit(f"missing tools: {', '.join(missing)} (apt-get install {' '.join(missing)})")


# ------------------------------------------------------------------------- servers


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def clean_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in _SCRUB}
    env["PYTHONUNBUFFERED"] = "1"
    env["PYTHONHASHSEED"] = "0"  # one less source of run-to-run variation
    env.update(extra or {})
    return env


_LIVE: dict[int, "Server"] = {}


def _stop_all() -> None:
    for server in list(_LIVE.values()):
        server.stop()


def _on_signal(signum: int, _frame: object) -> None:
    _stop_all()
    raise SystemExit(128 + signum)


atexit.register(_stop_all)
signal.signal(signal.SIGTERM, _on_signal)
signal.signal(signal.SIGHUP, _on_signal)


def http_get_status(port: int, path: str = "/", timeout: float = 1.0) -> int | None:
    """Status code of one GET, or None when nothing answers yet."""
    try:
        with socket.create_connection((HOST, port), timeout=timeout) as s:
            s.sendall(f"GET {path} HTTP/1.1\r\nHost: {HOST}\r\nConnection: close\r\n\r\n".encode())
            data = b""
            while b"\r\n" not in data:
                chunk = s.recv(4096)
                if not chunk:
                    return None
                data += chunk
    except OSError:
        return None
    parts = data.split(b"\r\n", 1)[0].split()
    try:
        return int(parts[1])
    except (IndexError, ValueError):
        return None


@dataclass
class Server:
    """One server process: `argv` run pinned to `cpu`, answering on `port`."""

    name: str
    argv: Sequence[str]
    port: int
    cpu: int
    env: Mapping[str, str] = field(default_factory=dict)
    cwd: Path = REPO
    startup_timeout: float = 30.0
    proc: subprocess.Popen[bytes] | None = None
    cold_start: float | None = None
    log_path: Path | None = None

    def start(self) -> float:
        """Spawn and wait for the first 200 on `/`; return the seconds that took."""
        LOGS.mkdir(parents=True, exist_ok=True)
        slug = re.sub(r"[^A-Za-z0-9]+", "-", self.name).strip("-")
        self.log_path = LOGS / f"{slug}.log"
        log = open(self.log_path, "wb")
        try:
            t0 = time.perf_counter()
            self.proc = subprocess.Popen(
                ["taskset", "-c", str(self.cpu), *self.argv],
                env=clean_env(self.env),
                cwd=self.cwd,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        finally:
            log.close()
        _LIVE[self.proc.pid] = self
        deadline = t0 + self.startup_timeout
        while True:
            status = http_get_status(self.port, timeout=0.5)
            if status == 200:
                self.cold_start = time.perf_counter() - t0
                return self.cold_start
            code = self.proc.poll()
            if code is not None:
                self.stop()
                raise RuntimeError(f"{self.name} exited with {code}; "
                                   f"see {self.log_path}:\n{self._tail()}")
            if status is not None:
                self.stop()
                raise RuntimeError(f"{self.name} answered {status} on /; see {self.log_path}")
            if time.perf_counter() > deadline:
                self.stop()
                raise RuntimeError(f"{self.name} did not answer within {self.startup_timeout}s; "
                                   f"see {self.log_path}:\n{self._tail()}")
            time.sleep(0.002)

    def _tail(self) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-15:])  # type: ignore[union-attr]
        except OSError:
            return ""

    def stop(self) -> None:
        proc = self.proc
        if proc is None:
            return
        _LIVE.pop(proc.pid, None)
        if proc.poll() is None:
            try:
                os.killpg(proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass
        # whatever is left of the group (gunicorn workers, a stuck process)
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        if proc.poll() is None:
            proc.wait(timeout=10)
        self.proc = None

    def __enter__(self) -> "Server":
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


# ----------------------------------------------------------------------------- wrk


@dataclass
class WrkResult:
    rps: float
    p50_ms: float
    p99_ms: float
    requests: int
    errors: int  # socket errors + non-2xx/3xx answers
    foreign: float = 0.0
    """CPUs' worth of time other processes (or the hypervisor) took during the run
    (0.1 = a tenth of one CPU)."""


_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3, "h": 3600e3}


def _to_ms(text: str) -> float:
    m = re.fullmatch(r"([\d.]+)(us|ms|s|m|h)", text.strip())
    if not m:
        raise ValueError(f"unexpected wrk latency {text!r}")
    return float(m.group(1)) * _UNITS[m.group(2)]


def parse_wrk(output: str) -> WrkResult:
    rps = re.search(r"Requests/sec:\s+([\d.]+)", output)
    p50 = re.search(r"^\s+50%\s+(\S+)", output, re.M)
    p99 = re.search(r"^\s+99%\s+(\S+)", output, re.M)
    total = re.search(r"(\d+) requests in", output)
    if not (rps and p50 and p99 and total):
        raise ValueError(f"cannot parse wrk output:\n{output}")
    errors = 0
    sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output)
    if sock:
        errors += sum(int(g) for g in sock.groups())
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    if non2xx:
        errors += int(non2xx.group(1))
    return WrkResult(float(rps.group(1)), _to_ms(p50.group(1)), _to_ms(p99.group(1)),
                     int(total.group(1)), errors)


def _wrk_argv(port: int, connections: int, seconds: int, cpu: int, path: str = "/") -> list[str]:
    return ["taskset", "-c", str(cpu), "wrk", "-t1", f"-c{connections}", f"-d{seconds}s",
            "--latency", "--timeout", "5s", f"http://{HOST}:{port}{path}"]


def wrk(port: int, *, connections: int, duration: float, cpu: int, path: str = "/",
        server: "Server | None" = None) -> WrkResult:
    """One wrk run; with `server`, also how much CPU other processes took meanwhile."""
    seconds = max(1, round(duration))
    argv = _wrk_argv(port, connections, seconds, cpu, path)
    before = _cpu_snapshot(server)
    t0 = time.monotonic()
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 60)
    wall = time.monotonic() - t0
    after = _cpu_snapshot(server)
    if proc.returncode != 0:
        raise RuntimeError(f"wrk failed ({proc.returncode}): {proc.stderr or proc.stdout}")
    LOGS.mkdir(parents=True, exist_ok=True)
    (LOGS / f"wrk-{port}-c{connections}.txt").write_text(proc.stdout)
    result = parse_wrk(proc.stdout)
    if server is not None:
        used = [a - b for a, b in zip(after, before)]
        # all processes' user+system time (+ steal), less the server's, wrk's and this script's
        result.foreign = max(0.0, used[0] - used[1] - used[2] - used[3]) / wall
    if result.errors:
        raise RuntimeError(f"wrk saw {result.errors} errors against port {port}:\n{proc.stdout}")
    return result


# ------------------------------------------------------------------ paired runs


def process_cpu(pid: int) -> float:
    """CPU seconds all threads of process `pid` have run (from schedstat: ns resolution)."""
    total = 0
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
                total += int(f.read().split()[0])
        except (OSError, ValueError, IndexError):
            continue  # a thread that just ended
    return total / 1e9


@dataclass
class PairedResult:
    """Two servers loaded at the same time on one CPU (`a` the reference, `b` the variant)."""

    a: WrkResult
    b: WrkResult
    cpu_us_a: float
    """CPU time of `a`'s process (all threads) per request it answered, in µs."""
    cpu_us_b: float

    @property
    def cpu_ratio(self) -> float:
        return self.cpu_us_b / self.cpu_us_a


def paired(a: Server, b: Server, *, connections: int, duration: float, warmup: float,
           cpu: int, b_first: bool = False,
           before_measure: Callable[[], object] | None = None) -> PairedResult:
    """Load two running servers at once, each with its own wrk on `cpu`, and compare them.

    Both servers are pinned to the same CPU, so whatever the host does during the run (a
    slower CPU, a noisy neighbour, cache pressure) it does to both: the ratio of their CPU
    time per request is steady to a few percent where two runs one after the other can
    differ by 30% on a shared VM. At saturation a process's throughput is 1 / (its CPU
    time per request), so 1 - 1/ratio is the throughput the variant costs. `b_first`
    warms up and loads `b` first (alternate it between rounds); `before_measure` is called
    between the warm-up and the measurement.
    """
    servers = (b, a) if b_first else (a, b)
    for server in servers:
        wrk(server.port, connections=connections, duration=warmup, cpu=cpu)
    if before_measure is not None:
        before_measure()
    seconds = max(1, round(duration))
    pids = {}
    for server in servers:
        assert server.proc is not None
        pids[server.name] = server.proc.pid
    before = {name: process_cpu(pid) for name, pid in pids.items()}
    procs: dict[str, subprocess.Popen[str]] = {}
    try:
        for server in servers:
            procs[server.name] = subprocess.Popen(
                _wrk_argv(server.port, connections, seconds, cpu),
                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        outputs = {name: proc.communicate(timeout=seconds + 60)[0] for name, proc in procs.items()}
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    cpu_us = {}
    results = {}
    for server in servers:
        output = outputs[server.name]
        if procs[server.name].returncode != 0:
            raise RuntimeError(f"wrk against {server.name} failed: {output}")
        result = results[server.name] = parse_wrk(output)
        if result.errors:
            raise RuntimeError(f"wrk saw {result.errors} errors against {server.name}:\n{output}")
        used = process_cpu(pids[server.name]) - before[server.name]
        cpu_us[server.name] = used / result.requests * 1e6
    return PairedResult(results[a.name], results[b.name], cpu_us[a.name], cpu_us[b.name])


# -------------------------------------------------------------------- a quiet host

_TICK = os.sysconf("SC_CLK_TCK")


def _group_cpu(pgid: int) -> float:
    """CPU seconds (user + system) of the live processes of process group `pgid`."""
    total = 0
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", "rb") as f:
                fields = f.read().rsplit(b")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid:
            total += int(fields[11]) + int(fields[12])
    return total / _TICK


def _cpu_snapshot(server: "Server | None") -> tuple[float, float, float, float]:
    """(all processes, the server's group, reaped children (wrk), this process) CPU seconds."""
    if server is None or server.proc is None:
        return (0.0, 0.0, 0.0, 0.0)
    f = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    # user, nice, system, and steal (the hypervisor running something else); irq and
    # softirq (loopback networking for the benchmark itself) are left out
    system = (f[0] + f[1] + f[2] + (f[7] if len(f) > 7 else 0)) / _TICK
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    me = resource.getrusage(resource.RUSAGE_SELF)
    return (system, _group_cpu(server.proc.pid), children.ru_utime + children.ru_stime,
            me.ru_utime + me.ru_stime)



def _cpu_times() -> tuple[int, int]:
    """(busy, total) jiffies of all CPUs since boot."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
    return sum(fields) - idle, sum(fields)


def host_busy(interval: float = 0.5) -> float:
    """Fraction of all CPUs busy over `interval` seconds (0..1)."""
    b0, t0 = _cpu_times()
    time.sleep(interval)
    b1, t1 = _cpu_times()
    return (b1 - b0) / max(1, t1 - t0)


def wait_for_quiet(threshold: float, max_wait: float) -> float:
    """Wait (bounded) until the host is nearly idle; return the last busy fraction seen.

    Other work on the machine (builds, test suites) skews a CPU-bound benchmark badly.
    """
    deadline = time.monotonic() + max_wait
    busy = host_busy()
    while busy > threshold and time.monotonic() < deadline:
        time.sleep(1.0)
        busy = host_busy()
    return busy


class Gate:
    """Keeps measurements clean on a shared host, within a bounded time.

    Before a server starts it waits (bounded) for the host to go quiet; a wrk run during
    which other processes used more than `max_foreign` of a CPU is run again, up to
    `retries` times, while the total waiting budget lasts. The last attempt is kept and
    counted in `noisy`.
    """

    def __init__(self, *, busy_threshold: float, max_foreign: float, retries: int, budget: float) -> None:
        self.busy_threshold = busy_threshold
        self.max_foreign = max_foreign
        self.retries = retries
        self.budget = budget
        self.spent = 0.0  # seconds spent waiting and repeating
        self.runs = 0
        self.noisy = 0
        self.repeated = 0

    def remaining(self) -> float:
        return max(0.0, self.budget - self.spent)

    def settle(self) -> None:
        if self.remaining() > 0:
            t0 = time.monotonic()
            wait_for_quiet(self.busy_threshold, min(30.0, self.remaining()))
            self.spent += time.monotonic() - t0

    def run(self, attempt: Callable[[], WrkResult]) -> WrkResult:
        self.runs += 1
        result = attempt()
        tries = 0
        while result.foreign > self.max_foreign and tries < self.retries and self.remaining() > 0:
            tries += 1
            self.repeated += 1
            progress(f"    other processes took {result.foreign:.2f} CPU during the run; again")
            t0 = time.monotonic()
            self.settle()
            result = attempt()
            self.spent += time.monotonic() - t0
        if result.foreign > self.max_foreign:
            self.noisy += 1
        return result

    def note(self) -> str:
        """A sentence for the report."""
        text = (f"Measurements during which other processes used more than {self.max_foreign:g} "
                f"of a CPU were repeated ({self.repeated} repeats)")
        if self.noisy:
            return (text + f"; **{self.noisy} of {self.runs} runs stayed noisy** and are kept, "
                    "so absolute figures may be low (the interleaving keeps ratios fairer).")
        return text + f"; all {self.runs} runs kept were clean."


def add_gate_options(parser: "argparse.ArgumentParser") -> None:
    parser.add_argument("--max-foreign", type=float, default=0.10,
                        help="repeat a run during which other processes used more than this "
                             "much of a CPU (default 0.10)")
    parser.add_argument("--retries", type=int, default=2, help="repeats of a noisy run (default 2)")
    parser.add_argument("--quiet-budget", type=float, default=90.0,
                        help="total seconds spent waiting for a quiet host and repeating noisy "
                             "runs (default 90)")


def add_placement_options(parser: "argparse.ArgumentParser") -> None:
    """--server-cpu, --client-cpu and --runtime-src (read back with `checked_runtime_src`)."""
    parser.add_argument("--server-cpu", type=int, help="CPU the servers run on (default: the first)")
    parser.add_argument("--client-cpu", type=int, help="CPU wrk runs on (default: another one)")
    parser.add_argument("--runtime-src", type=Path,
                        help="serve our functions with the runtime package found in this folder "
                             "instead of the installed one (to try a change; e.g. a copy of "
                             "runtime/src)")


def checked_runtime_src(parser: "argparse.ArgumentParser", args: "argparse.Namespace") -> Path | None:
    """The checked, absolute --runtime-src, or None."""
    if not args.runtime_src:
        return None
    path = args.runtime_src.resolve()
    if not (path / "openfunction" / "__init__.py").is_file():
        parser.error(f"--runtime-src: no openfunction package in {path}")
    return path


def make_gate(args: "argparse.Namespace") -> Gate:
    return Gate(busy_threshold=0.10, max_foreign=args.max_foreign, retries=args.retries,
                budget=args.quiet_budget)


# ------------------------------------------------------------------ numbers, tables


def median(values: Iterable[float]) -> float:
    return statistics.median(list(values))


def fmt_rps(v: float) -> str:
    return f"{v:,.0f}"


def fmt_ms(v: float) -> str:
    return f"{v:.3f} ms"


def fmt_ratio(v: float) -> str:
    return f"{v:.2f}"


def table(header: Sequence[str], rows: Iterable[Sequence[str]], align: str | None = None) -> str:
    align = align or "l" + "r" * (len(header) - 1)
    marks = ["---:" if a == "r" else "---" for a in align]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(marks) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def package_version(python: Path, *names: str) -> dict[str, str]:
    code = (
        "import importlib.metadata as m, json, sys\n"
        "out = {}\n"
        "for n in sys.argv[1:]:\n"
        "    try: out[n] = m.version(n)\n"
        "    except m.PackageNotFoundError: out[n] = '-'\n"
        "print(json.dumps(out))\n"
    )
    import json

    proc = subprocess.run([str(python), "-c", code, *names], capture_output=True, text=True)
    try:
        return json.loads(proc.stdout)
    except ValueError:
        return {n: "?" for n in names}


def machine_summary(server_cpu: int, client_cpu: int) -> str:
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    wrk_version = ""
    try:
        out = subprocess.run(["wrk", "--version"], capture_output=True, text=True).stdout
        wrk_version = out.split("Copyright")[0].strip()
    except OSError:
        pass
    return (
        f"{os.cpu_count()} CPUs ({model or platform.machine()}), Linux {platform.release()}, "
        f"Python {platform.python_version()}, {wrk_version}; server on CPU {server_cpu}, "
        f"wrk on CPU {client_cpu}, loopback"
    )


def write_results(path: Path, text: str) -> None:
    path.write_text(text if text.endswith("\n") else text + "\n")
    sys.stdout.write(text if text.endswith("\n") else text + "\n")
    sys.stdout.flush()


def progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)
