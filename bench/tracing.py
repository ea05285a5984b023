"""Throughput, tail latency and CPU per request of hello world: tracing off, a plugin only,
SkyWalking on, OpenTelemetry on.

    .venv/bin/python bench/tracing.py [--rounds 3] [--duration 5] [--connections 32]

One run measures the modes side by side on loopback: for every round each mode gets a fresh
`functions-framework` process (pinned to CPU 0) and one wrk measurement (wrk, this script, the
SkyWalking collector and the OTLP receiver share CPU 1), in an order that rotates from round
to round. The table gives the median of the rounds; CPU per request (all threads of the
function's process, from /proc) is the figure least disturbed by other work on the host. The
collector and the receiver are the ones the tests use, so the agent and the exporter do their
real work: build, encode and send every span over gRPC. Before each measurement the script
waits (bounded) for other work on the machine to settle. Every step has a timeout; nothing
leaves the machine.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from support.otlp_receiver import OTLPReceiver  # noqa: E402
from support.process import FUNCTIONS_FRAMEWORK, free_port, wait_for_port  # noqa: E402
from support.skywalking_collector import SkyWalkingCollector  # noqa: E402

MODES = ("off", "plugin", "skywalking", "opentelemetry")
"""`plugin`: no tracing, the built-in `counter` plugin as pre and post hook: what running any
plugin pipeline costs, which the tracing providers pay too."""
HELLO = 'def hello(request):\n    return "Hello, World!\\n"\n'


@dataclass
class Sample:
    mode: str
    requests_per_second: float
    p99_ms: float
    cpu_us: float
    """CPU time of the function's process (all its threads) per request."""
    spans: int


TICK = os.sysconf("SC_CLK_TCK")


def process_cpu(pid: int) -> float:
    """Seconds of CPU the process has used (user + system, all threads)."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def func_context(mode: str, collector: SkyWalkingCollector, receiver: OTLPReceiver) -> dict:
    ctx: dict = {"name": "hello", "version": "v1", "runtime": "Knative"}
    if mode == "plugin":
        ctx["prePlugins"] = ctx["postPlugins"] = ["counter"]
    elif mode == "skywalking":
        ctx["pluginsTracing"] = {"enabled": True, "provider": {
            "name": "skywalking", "oapServer": collector.address}}
    elif mode == "opentelemetry":
        ctx["pluginsTracing"] = {"enabled": True, "provider": {
            "name": "opentelemetry", "exporter": {"name": "otlp", "endpoint": receiver.endpoint}}}
    return ctx


def wrk(url: str, connections: int, seconds: float) -> tuple[float, float, int]:
    out = subprocess.run(
        ["wrk", "-t1", f"-c{connections}", f"-d{seconds:g}s", "--latency", url],
        capture_output=True, text=True, timeout=seconds + 30, check=True,
    ).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    value, unit = re.search(r"99%\s+([\d.]+)(us|ms|s)", out).groups()  # type: ignore[union-attr]
    p99 = float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]
    requests = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    return rps, p99, requests


def spans_seen(mode: str, collector: SkyWalkingCollector, receiver: OTLPReceiver) -> int:
    if mode == "skywalking":
        return sum(len(s.spans) for s in list(collector.segments))
    if mode == "opentelemetry":
        return len(receiver.spans)
    return 0


def host_busy(seconds: float = 1.0) -> float:
    """The fraction of all CPUs busy over `seconds` (from /proc/stat)."""
    def sample() -> tuple[int, int]:
        with open("/proc/stat") as stat:
            fields = [int(x) for x in stat.readline().split()[1:]]
        idle = fields[3] + fields[4]
        return idle, sum(fields)

    idle0, total0 = sample()
    time.sleep(seconds)
    idle1, total1 = sample()
    return 1 - (idle1 - idle0) / max(1, total1 - total0)


def wait_for_quiet_host(limit: float, max_wait: float) -> float:
    """Wait (bounded) until other work on the machine leaves the CPUs nearly idle."""
    deadline = time.monotonic() + max_wait
    busy = host_busy()
    while busy > limit and time.monotonic() < deadline:
        busy = host_busy()
    return busy


def measure(mode: str, source: Path, args: argparse.Namespace, server_cpu: int | None,
            collector: SkyWalkingCollector, receiver: OTLPReceiver) -> Sample:
    port = free_port()
    env = {**os.environ, "FUNC_CONTEXT": json.dumps(func_context(mode, collector, receiver)),
           "CONTEXT_MODE": "self-host", "LOG_LEVEL": "WARNING"}
    cmd = [FUNCTIONS_FRAMEWORK, "--source", str(source), "--target", "hello",
           "--host", "127.0.0.1", "--port", str(port)]
    if server_cpu is not None:  # (not preexec_fn: forking beside live gRPC threads is unsafe)
        cmd = ["taskset", "-c", str(server_cpu), *cmd]
    log = tempfile.TemporaryFile()
    proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_for_port(port, proc, timeout=30)
        busy = wait_for_quiet_host(args.quiet, args.max_wait)
        if busy > args.quiet:
            print(f"  (host {busy:.0%} busy before measuring {mode})", file=sys.stderr)
        url = f"http://127.0.0.1:{port}/"
        wrk(url, args.connections, 1)  # warm-up: the agent starts, caches fill
        before = spans_seen(mode, collector, receiver)
        cpu = process_cpu(proc.pid)
        rps, p99, requests = wrk(url, args.connections, args.duration)
        time.sleep(0.3)  # the reporter's last batch of the run
        cpu_us = (process_cpu(proc.pid) - cpu) / requests * 1e6
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    time.sleep(1.0)  # the last spans arrive
    spans = spans_seen(mode, collector, receiver) - before
    return Sample(mode, rps, p99, cpu_us, spans)


def report(samples: list[Sample], args: argparse.Namespace) -> str:
    def median(mode: str, attr: str) -> float:
        return statistics.median(getattr(s, attr) for s in samples if s.mode == mode)

    base_rps, base_cpu = median("off", "requests_per_second"), median("off", "cpu_us")
    rows = []
    for mode in MODES:
        rps, p99, cpu = (median(mode, a) for a in ("requests_per_second", "p99_ms", "cpu_us"))
        if mode == "off":
            vs_rps = vs_cpu = delivered = "-"
        elif mode == "plugin":
            vs_rps = f"{(rps / base_rps - 1) * 100:+.1f}%"
            vs_cpu = f"{(cpu / base_cpu - 1) * 100:+.1f}% ({cpu - base_cpu:+.0f} µs)"
            delivered = "-"
        else:
            vs_rps = f"{(rps / base_rps - 1) * 100:+.1f}%"
            vs_cpu = f"{(cpu / base_cpu - 1) * 100:+.1f}% ({cpu - base_cpu:+.0f} µs)"
            delivered = f"{median(mode, 'spans'):,.0f}"
        rounds = ", ".join(f"{s.requests_per_second:,.0f}" for s in samples if s.mode == mode)
        rows.append(f"| {mode} | {rps:,.0f} | {vs_rps} | {p99:.2f} | {cpu:.0f} | {vs_cpu} "
                    f"| {delivered} | {rounds} |")
    header = (
        f"hello world, {args.connections} connections, {args.duration:g} s per measurement, "
        f"{args.rounds} interleaved rounds, medians\n\n"
        "| tracing | req/s | vs off | p99 ms | CPU µs/request | vs off "
        "| spans received (one measurement) | req/s per round |\n"
        "|---|---:|---:|---:|---:|---:|---:|---|"
    )
    return "\n".join([header, *rows])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per measurement")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--quiet", type=float, default=0.15,
                        help="wait until the host is less busy than this before measuring")
    parser.add_argument("--max-wait", type=float, default=60.0,
                        help="seconds to wait for a quiet host at most")
    args = parser.parse_args()

    cpus = sorted(os.sched_getaffinity(0))
    server_cpu = cpus[0] if len(cpus) > 1 else None
    if server_cpu is not None:
        os.sched_setaffinity(0, set(cpus[1:]))  # wrk, collectors and this script

    collector, receiver = SkyWalkingCollector(), OTLPReceiver()
    collector.start()
    receiver.start()
    samples: list[Sample] = []
    try:
        with tempfile.TemporaryDirectory() as tmp:
            source = Path(tmp) / "main.py"
            source.write_text(HELLO)
            for round_no in range(args.rounds):
                shift = round_no % len(MODES)
                order = MODES[shift:] + MODES[:shift]
                for mode in order:
                    sample = measure(mode, source, args, server_cpu, collector, receiver)
                    samples.append(sample)
                    print(f"round {round_no + 1} {mode:>13}: {sample.requests_per_second:9,.0f} "
                          f"req/s  p99 {sample.p99_ms:6.2f} ms  {sample.cpu_us:5.0f} µs CPU/req"
                          f"  spans {sample.spans:,}",
                          file=sys.stderr, flush=True)
                collector.clear()
                receiver.spans.clear()
    finally:
        receiver.stop()
        collector.stop()
    print(report(samples, args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
