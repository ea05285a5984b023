"""Instruction counts: what plugins and tracing add to one hello-world request, without noise.

    .venv/bin/python bench/instructions.py [--requests 1500]

Each configuration's `functions-framework` runs under valgrind's callgrind, which counts the
machine instructions every thread of the process executes. Counting is switched on after a
warm-up, wrk sends the requests (4 connections), the count is read after the last spans are
exported, and divided by the requests answered. Unlike CPU time, the count does not move with
the host: runs of one configuration agree to about 1% of a request's count (a few thousand
instructions, from how the event loop batches the requests), so a change of that size shows
in one run. It does not weigh instructions (a cache miss counts as one) and misses the kernel's
share, so `plugins.py` and `tracing.py` stay the measure of throughput; this one says where the
work is and whether a change removed any.

The SkyWalking collector and the OTLP receiver of the tests run in this process, so the agent
and the exporter do their real work (build, encode and send every span over gRPC). The markdown
report goes to stdout and bench/results-instructions.md; progress to stderr.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from _common import (
    BENCH,
    FIXTURES,
    HOST,
    OUT,
    REPO,
    VENV_BIN,
    Server,
    free_port,
    http_get_status,
    package_version,
    pick_cpus,
    progress,
    require_tools,
    table,
    wrk,
    write_results,
)

import plugins as plugins_bench
import tracing as tracing_bench

sys.path.insert(0, str(REPO / "tests"))
from support.otlp_receiver import OTLPReceiver  # noqa: E402
from support.skywalking_collector import SkyWalkingCollector  # noqa: E402

HELLO = FIXTURES / "hello.py"
CONNECTIONS = 4
WARMUP_REQUESTS = 200
EXPORT_WAIT = 6.0
"""Seconds after the warm-up and after the last request: every span queued is exported
(OpenTelemetry's batch processor waits up to 5 s), so the count holds the export of the
counted requests' spans and only theirs."""


@dataclass(frozen=True)
class Config:
    key: str
    label: str
    hooks: str = ""
    """`sync` or `async`: ten no-op plugins with hooks of that kind (bench/plugins.py's)."""

    def func_context(self, collector: SkyWalkingCollector, receiver: OTLPReceiver) -> dict:
        """FUNC_CONTEXT as bench/plugins.py and bench/tracing.py write it for this case."""
        if not self.hooks:
            return tracing_bench.func_context(self.key, collector, receiver)
        ctx = tracing_bench.func_context("off", collector, receiver)
        ctx["prePlugins"] = ctx["postPlugins"] = plugins_bench.Config(
            "def", self.hooks, 10).plugin_names()
        return ctx


CONFIGS = (
    Config("off", "no plugins, no tracing"),
    Config("def-10", "10 no-op plugins, `def` hooks", hooks="sync"),
    Config("async-10", "10 no-op plugins, `async def` hooks", hooks="async"),
    Config("skywalking", "SkyWalking tracing"),
    Config("opentelemetry", "OpenTelemetry tracing"),
)


def callgrind_total(path: Path, timeout: float = 60.0) -> int:
    """The instruction count of a callgrind dump, once the file is complete."""
    deadline = time.monotonic() + timeout
    while True:
        if path.exists():
            match = re.search(r"^(?:summary|totals): (\d+)", path.read_text(errors="replace"), re.M)
            if match:
                return int(match.group(1))
        if time.monotonic() > deadline:
            raise RuntimeError(f"no callgrind dump at {path}")
        time.sleep(0.2)


def callgrind_control(option: str, pid: int) -> None:
    proc = subprocess.run(["callgrind_control", option, str(pid)],
                          capture_output=True, text=True, timeout=120)
    if proc.returncode != 0:
        raise RuntimeError(f"callgrind_control {option} {pid} failed: {proc.stderr or proc.stdout}")


def measure(cfg: Config, requests: int, cpus: tuple[int, int], collector: SkyWalkingCollector,
            receiver: OTLPReceiver) -> tuple[float, int]:
    """Instructions per request of `cfg`, and the requests they were counted over."""
    port = free_port()
    dump = OUT / f"callgrind-{cfg.key}.out"
    for old in OUT.glob(f"callgrind-{cfg.key}.out*"):
        old.unlink()
    OUT.mkdir(parents=True, exist_ok=True)
    server = Server(
        name=f"instructions-{cfg.key}",
        argv=["valgrind", "--tool=callgrind", "--instr-atstart=no",
              f"--callgrind-out-file={dump}",
              str(VENV_BIN / "python"), str(VENV_BIN / "functions-framework"),
              "--source", str(HELLO), "--target", "hello", "--signature-type", "http",
              "--host", HOST, "--port", str(port)],
        port=port,
        cpu=cpus[0],
        env={"FUNC_CONTEXT": json.dumps(cfg.func_context(collector, receiver)),
             "CONTEXT_MODE": "self-host", "LOG_LEVEL": "WARNING",
             "PYTHONPATH": str(FIXTURES)},
        startup_timeout=300.0,
    )
    # a request takes about 10 ms under callgrind: wrk runs long enough for `requests`
    with server:
        assert server.proc is not None
        pid = server.proc.pid
        for _ in range(WARMUP_REQUESTS):  # one at a time: the first are slow under callgrind
            if http_get_status(port, timeout=60.0) != 200:
                raise RuntimeError(f"{server.name} did not answer 200 in the warm-up")
        time.sleep(EXPORT_WAIT)
        callgrind_control("--instr=on", pid)
        seconds = 5
        answered = 0
        while answered < requests:
            answered += wrk(port, connections=CONNECTIONS, duration=seconds, cpu=cpus[1]).requests
        time.sleep(EXPORT_WAIT)
        callgrind_control("--dump", pid)
        total = callgrind_total(Path(f"{dump}.1"))
    return total / answered, answered


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=1500,
                        help="requests counted per configuration, at least (default 1500)")
    keys = [c.key for c in CONFIGS]
    parser.add_argument("--configs", default=",".join(keys),
                        help=f"comma-separated, some of {', '.join(keys)} (default: all)")
    parser.add_argument("--output", type=Path, default=BENCH / "results-instructions.md",
                        help="where the markdown report goes (default bench/results-instructions.md)")
    args = parser.parse_args(argv)
    asked = [key.strip() for key in args.configs.split(",") if key.strip()]
    unknown = [key for key in asked if key not in keys]
    if unknown:
        parser.error(f"unknown --configs {', '.join(unknown)}: use some of {', '.join(keys)}")
    chosen = [c for c in CONFIGS if c.key in asked]
    if not chosen or chosen[0].key != "off":
        parser.error("--configs must include off (every other is compared with it)")
    require_tools("valgrind", "wrk", "taskset")  # callgrind_control comes with valgrind
    cpus = pick_cpus(None, None)

    started = time.time()
    results: dict[str, tuple[float, int]] = {}
    collector, receiver = SkyWalkingCollector(), OTLPReceiver()
    collector.start()
    receiver.start()
    try:
        for cfg in chosen:
            progress(f"{cfg.key}: under callgrind")
            results[cfg.key] = measure(cfg, args.requests, cpus, collector, receiver)
            progress(f"  {results[cfg.key][0]:,.0f} instructions/request "
                     f"over {results[cfg.key][1]:,} requests")
    finally:
        receiver.stop()
        collector.stop()
    write_results(args.output, render(chosen, results, args, time.time() - started))
    return 0


def render(chosen: list[Config], results: dict[str, tuple[float, int]],
           args: argparse.Namespace, elapsed: float) -> str:
    base = results["off"][0]
    rows = []
    for cfg in chosen:
        per_request, answered = results[cfg.key]
        added = per_request - base
        rows.append([cfg.label, f"{per_request:,.0f}",
                     "-" if cfg.key == "off" else f"{added:+,.0f}",
                     "-" if cfg.key == "off" else f"{added / base * 100:+.1f}%",
                     f"{answered:,}"])
    versions = package_version(VENV_BIN / "python", "openfunction-functions-framework",
                               "apache-skywalking", "opentelemetry-sdk", "uvicorn")
    return "\n".join([
        "# Instructions per request: hello world (`def`), under callgrind",
        "",
        "Machine instructions every thread of the `functions-framework` process executed per "
        "request (user space only), counted after a warm-up while wrk sent the requests "
        f"({CONNECTIONS} connections), including the export of the requests' spans to the "
        "collectors of the tests. Runs agree to about 1% of a request's count (a few thousand "
        "instructions), whatever else the host does; see the script's "
        "docstring for what it does not show.",
        "",
        f"Command: `.venv/bin/python bench/instructions.py --requests {args.requests}` "
        f"({elapsed / 60:.1f} min).",
        "",
        table(["configuration", "instructions/request", "added", "vs off", "requests counted"],
              rows, "lrrrr"),
        "",
        "Versions: " + ", ".join(f"{k} {v}" for k, v in versions.items()) + ".",
        "",
    ])


if __name__ == "__main__":
    sys.exit(main())
