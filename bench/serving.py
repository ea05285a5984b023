"""HTTP benchmark: our runtime against raw Starlette and GCP's functions framework.

    .venv/bin/python bench/serving.py [--rounds 3] [--duration 5]

Serves the same hello world with

* our runtime (`functions-framework`), a `def` and an `async def` function;
* a plain Starlette app on uvicorn with uvloop + httptools (the practical ceiling),
  a `def` endpoint (Starlette's threadpool) and an `async def` one;
* GCP's `functions-framework` (PyPI) with its default server (gunicorn, one worker),
  installed on first use in its own virtualenv under bench/out/.

For each server it measures requests/s at 32 connections and p50/p99 latency at one
connection with wrk, server pinned to one CPU and wrk to another, on 127.0.0.1. The
servers are interleaved over the rounds (a fresh process each time, the order rotated
every round) and the medians are reported. Cold start is spawn -> first 200 response,
the median of several spawns. The markdown report goes to stdout and
bench/results-serving.md; progress goes to stderr.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from _common import (
    BENCH,
    FIXTURES,
    HOST,
    OUT,
    VENV_BIN,
    Gate,
    Server,
    add_gate_options,
    add_placement_options,
    checked_runtime_src,
    fmt_ms,
    fmt_ratio,
    fmt_rps,
    free_port,
    machine_summary,
    make_gate,
    median,
    package_version,
    pick_cpus,
    pin_self,
    progress,
    require_tools,
    table,
    wrk,
    write_results,
)

GCP_VERSION = "3.10.2"
HELLO = FIXTURES / "hello.py"

# thresholds the report checks
TARGET_RAW_RATIO = 0.85
TARGET_COLD_START = 0.5


@dataclass
class Spec:
    key: str
    label: str
    function: str
    make: Callable[[int, int], Server]


@dataclass
class Samples:
    rps: list[float] = field(default_factory=list)
    p50: list[float] = field(default_factory=list)
    p99: list[float] = field(default_factory=list)
    cold: list[float] = field(default_factory=list)


def ours(target: str, runtime_src: Path | None) -> Callable[[int, int], Server]:
    def make(port: int, cpu: int) -> Server:
        return Server(
            name=f"ours-{target}",
            argv=[str(VENV_BIN / "functions-framework"), "--source", str(HELLO),
                  "--target", target, "--signature-type", "http",
                  "--host", HOST, "--port", str(port)],
            port=port,
            cpu=cpu,
            env={"LOG_LEVEL": "WARNING", **({"PYTHONPATH": str(runtime_src)} if runtime_src else {})},
        )

    return make


def starlette(app: str) -> Callable[[int, int], Server]:
    def make(port: int, cpu: int) -> Server:
        return Server(
            name=f"starlette-{app}",
            argv=[str(VENV_BIN / "python"), "-m", "uvicorn", f"starlette_app:{app}",
                  "--app-dir", str(FIXTURES), "--host", HOST, "--port", str(port),
                  "--loop", "uvloop", "--http", "httptools", "--lifespan", "on",
                  "--no-access-log", "--no-server-header", "--log-level", "warning"],
            port=port,
            cpu=cpu,
        )

    return make


def gcp(venv: Path) -> Callable[[int, int], Server]:
    def make(port: int, cpu: int) -> Server:
        return Server(
            name="gcp-flask",
            argv=[str(venv / "bin" / "functions-framework"), "--source", str(HELLO),
                  "--target", "hello", "--host", HOST, "--port", str(port)],
            port=port,
            cpu=cpu,
        )

    return make


def ensure_gcp_venv(venv: Path, version: str) -> None:
    """A virtualenv with GCP's functions-framework (from PyPI), made on first use."""
    exe = venv / "bin" / "functions-framework"
    if exe.exists():
        return
    progress(f"installing functions-framework=={version} into {venv} ...")
    venv.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    subprocess.run([str(venv / "bin" / "pip"), "install", "-q", f"functions-framework=={version}"],
                   check=True, timeout=600)


def measure_round(spec: Spec, samples: Samples, args: argparse.Namespace, gate: Gate,
                  server_cpu: int, client_cpu: int) -> None:
    gate.settle()
    port = free_port()
    with spec.make(port, server_cpu) as server:
        samples.cold.append(server.cold_start or 0.0)
        wrk(port, connections=args.connections, duration=args.warmup, cpu=client_cpu)
        load = gate.run(lambda: wrk(port, connections=args.connections, duration=args.duration,
                                    cpu=client_cpu, server=server))
        single = gate.run(lambda: wrk(port, connections=1, duration=args.duration,
                                      cpu=client_cpu, server=server))
    samples.rps.append(load.rps)
    samples.p50.append(single.p50_ms)
    samples.p99.append(single.p99_ms)
    progress(f"  {spec.key:<12} {load.rps:>9,.0f} req/s   p50 {single.p50_ms:.3f} ms   "
             f"p99 {single.p99_ms:.3f} ms   start {samples.cold[-1]:.3f} s   "
             f"(others: {max(load.foreign, single.foreign):.2f} CPU)")


def measure_cold(spec: Spec, samples: Samples, gate: Gate, server_cpu: int) -> None:
    gate.settle()
    server = spec.make(free_port(), server_cpu)
    try:
        samples.cold.append(server.start())
    finally:
        server.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds (default 3)")
    parser.add_argument("--duration", type=float, default=5.0,
                        help="seconds of each wrk measurement (default 5)")
    parser.add_argument("--warmup", type=float, default=1.0, help="seconds of warm-up load (default 1)")
    parser.add_argument("--connections", type=int, default=32, help="connections for req/s (default 32)")
    parser.add_argument("--cold-starts", type=int, default=5,
                        help="spawns per server for the cold-start median, counting the "
                             "rounds' own spawns (default 5)")
    parser.add_argument("--no-gcp", action="store_true", help="leave GCP's framework out")
    parser.add_argument("--gcp-venv", type=Path, default=OUT / "gcp-venv",
                        help="virtualenv with GCP's functions-framework (made if missing)")
    parser.add_argument("--gcp-version", default=GCP_VERSION)
    parser.add_argument("--only", help="comma-separated subset of: ours-def, ours-async, raw-def, "
                        "raw-async, gcp")
    add_gate_options(parser)
    add_placement_options(parser)
    parser.add_argument("--output", type=Path, default=BENCH / "results-serving.md")
    args = parser.parse_args(argv)
    args.runtime_src = checked_runtime_src(parser, args)
    if args.rounds < 1 or args.duration < 1:
        parser.error("--rounds and --duration must be at least 1")

    require_tools("wrk", "taskset")
    server_cpu, client_cpu = pick_cpus(args.server_cpu, args.client_cpu)
    pin_self(client_cpu)

    specs = [
        Spec("ours-def", "ours (`functions-framework`)", "`def`", ours("hello", args.runtime_src)),
        Spec("ours-async", "ours (`functions-framework`)", "`async def`", ours("hello_async", args.runtime_src)),
        Spec("raw-def", "raw Starlette on uvicorn (uvloop + httptools)", "`def`", starlette("app_def")),
        Spec("raw-async", "raw Starlette on uvicorn (uvloop + httptools)", "`async def`",
             starlette("app_async")),
    ]
    if not args.no_gcp:
        ensure_gcp_venv(args.gcp_venv, args.gcp_version)
        specs.append(Spec("gcp", "GCP `functions-framework` (gunicorn, 1 worker)", "`def`",
                          gcp(args.gcp_venv)))
    if args.only:
        keep = {k.strip() for k in args.only.split(",")}
        specs = [s for s in specs if s.key in keep]
        if not specs:
            parser.error("--only names none of the servers")
    samples = {s.key: Samples() for s in specs}

    started = time.time()
    gate = make_gate(args)
    for r in range(args.rounds):
        progress(f"round {r + 1}/{args.rounds}")
        order = specs[r % len(specs):] + specs[: r % len(specs)]
        for spec in order:
            measure_round(spec, samples[spec.key], args, gate, server_cpu, client_cpu)
    extra = max(0, args.cold_starts - args.rounds)
    if extra:
        progress(f"cold starts ({extra} more spawns each)")
        for i in range(extra):
            for spec in specs[i % len(specs):] + specs[: i % len(specs)]:
                measure_cold(spec, samples[spec.key], gate, server_cpu)
    elapsed = time.time() - started

    report = render(specs, samples, args, gate, server_cpu, client_cpu, elapsed)
    write_results(args.output, report)
    return 0


def render(specs: list[Spec], samples: dict[str, Samples], args: argparse.Namespace, gate: Gate,
           server_cpu: int, client_cpu: int, elapsed: float) -> str:
    med = {k: (median(s.rps), median(s.p50), median(s.p99), median(s.cold)) for k, s in samples.items()}
    rows = [
        [s.label, s.function, fmt_rps(med[s.key][0]), fmt_ms(med[s.key][1]), fmt_ms(med[s.key][2]),
         f"{med[s.key][3] * 1000:.0f} ms"]
        for s in specs
    ]
    out = [
        "# HTTP benchmark: hello world",
        "",
        f"Machine: {machine_summary(server_cpu, client_cpu)}.",
        "",
        f"Each server is one process pinned to one CPU; wrk (`-t1`) runs pinned to the other. "
        f"{args.rounds} interleaved rounds (fresh process per measurement, order rotated), "
        f"{args.warmup:g} s warm-up then {args.duration:g} s per wrk run; medians shown. "
        f"Requests/s at {args.connections} connections, latency at 1 connection. "
        f"Cold start: spawn of the process -> first `200` on `/`, median of "
        f"{len(next(iter(samples.values())).cold)} spawns.",
        "",
        gate.note(),
        "",
        f"Command: `.venv/bin/python bench/serving.py --rounds {args.rounds} --duration {args.duration:g}"
        + (f" --runtime-src {args.runtime_src}" if args.runtime_src else "")
        + f"` ({elapsed / 60:.1f} min).",
        "",
        table(["server", "function", f"req/s ({args.connections} conn)", "p50 (1 conn)",
               "p99 (1 conn)", "spawn -> first 200"], rows, "llrrrr"),
        "",
        "## Ratios and targets",
        "",
    ]
    checks: list[list[str]] = []

    def ratio(a: str, b: str, target: str, ok: Callable[[float], bool]) -> None:
        if a in med and b in med:
            v = med[a][0] / med[b][0]
            checks.append([f"req/s {a} / {b}", fmt_ratio(v), target, "yes" if ok(v) else "**no**"])

    ratio("ours-def", "raw-def", f">= {TARGET_RAW_RATIO}", lambda v: v >= TARGET_RAW_RATIO)
    ratio("ours-async", "raw-async", f">= {TARGET_RAW_RATIO}", lambda v: v >= TARGET_RAW_RATIO)
    ratio("ours-def", "gcp", "well above 1", lambda v: v >= 1.5)
    ratio("ours-async", "gcp", "well above 1", lambda v: v >= 1.5)
    for key in ("ours-def", "ours-async"):
        raw = key.replace("ours", "raw")
        if key in med and raw in med:
            checks.append([f"p50 {key} - {raw}", f"{(med[key][1] - med[raw][1]) * 1000:+.0f} µs",
                           "-", "-"])
    for key in ("ours-def", "ours-async"):
        if key not in med:
            continue
        cold = med[key][3]
        checks.append([f"cold start {key}", f"{cold * 1000:.0f} ms", f"< {TARGET_COLD_START * 1000:.0f} ms",
                       "yes" if cold < TARGET_COLD_START else "**no**"])
    out += [table(["comparison", "value", "target", "holds"], checks, "lrrl"), ""]

    out += ["## Per round (req/s)", ""]
    out.append(table(["server", *[f"round {i + 1}" for i in range(args.rounds)]],
                     [[s.key, *[fmt_rps(v) for v in samples[s.key].rps]] for s in specs]))
    out.append("")

    ours_v = package_version(VENV_BIN / "python", "openfunction-functions-framework", "uvicorn",
                             "starlette", "uvloop", "httptools")
    line = "Versions: " + ", ".join(f"{k} {v}" for k, v in ours_v.items())
    if not args.no_gcp:
        gcp_v = package_version(args.gcp_venv / "bin" / "python", "functions-framework", "flask",
                                "gunicorn", "werkzeug")
        line += "; GCP venv: " + ", ".join(f"{k} {v}" for k, v in gcp_v.items())
    out += [line + ".", ""]
    return "\n".join(out)


if __name__ == "__main__":
    sys.exit(main())
