"""Plugin benchmark: what 0, 1 and 10 no-op plugins cost each invocation.

    .venv/bin/python bench/plugins.py [--rounds 5] [--duration 5]

Serves the hello world (`def` and `async def`) with our runtime and a FUNC_CONTEXT
(CONTEXT_MODE=self-host) listing 1 or 10 no-op plugins from bench/fixtures/noop_plugins.py
in both prePlugins and postPlugins, with plain `def` hooks or `async def` hooks, each
against the same function without plugins, side by side: for every round both servers run
at once, pinned to the same CPU, each loaded by its own wrk (32 connections) on the other
CPU (`_common.paired`). The figure compared is the CPU time of each process (all threads)
per request it answered: at saturation throughput is its inverse, so the throughput 10
plugins cost is 1 - 1/ratio, and the cost of one plugin is the difference in CPU time per
request divided by the number of plugins. Medians over the rounds, the sides swapped from
round to round. A second figure times `FunctionRunner.run` in-process for the `async def`
hello world with and without the plugins (timeit, best of several repeats). The markdown report goes to stdout and
bench/results-plugins.md; progress to stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import json
import os
import sys
import time
import timeit
from dataclasses import dataclass, field
from pathlib import Path

from _common import (
    BENCH,
    FIXTURES,
    HOST,
    VENV_BIN,
    PairedResult,
    Server,
    add_gate_options,
    add_placement_options,
    checked_runtime_src,
    free_port,
    machine_summary,
    make_gate,
    median,
    package_version,
    paired,
    pick_cpus,
    pin_self,
    progress,
    require_tools,
    table,
    write_results,
)

HELLO = FIXTURES / "hello.py"
TARGET_PER_PLUGIN_US = 10.0
TARGET_TEN_PLUGINS_DROP = 0.05
COUNTS = (1, 10)


@dataclass(frozen=True)
class Config:
    function: str  # "def" or "async"
    hooks: str  # "none", "sync" or "async"
    count: int

    @property
    def key(self) -> str:
        return f"{self.function}/{self.hooks}-{self.count}" if self.count else f"{self.function}/none"

    def plugin_names(self) -> list[str]:
        prefix = "SyncNoop" if self.hooks == "sync" else "AsyncNoop"
        return [f"noop_plugins:{prefix}{i}" for i in range(self.count)]


@dataclass
class Samples:
    """Paired runs of one configuration against no plugins (`a` = no plugins)."""

    runs: list[PairedResult] = field(default_factory=list)

    @property
    def ratio(self) -> float:
        return median(r.cpu_ratio for r in self.runs)

    @property
    def added_us(self) -> float:
        return median(r.cpu_us_b - r.cpu_us_a for r in self.runs)


def configs(functions: list[str]) -> list[Config]:
    out = []
    for function in functions:
        out.append(Config(function, "none", 0))
        for hooks in ("sync", "async"):
            for n in COUNTS:
                out.append(Config(function, hooks, n))
    return out


def make_server(cfg: Config, port: int, cpu: int, runtime_src: Path | None = None) -> Server:
    names = cfg.plugin_names()
    ctx = {"name": "hello", "version": "v1", "runtime": "Knative",
           "prePlugins": names, "postPlugins": names}
    return Server(
        name=f"plugins-{cfg.key}",
        argv=[str(VENV_BIN / "functions-framework"), "--source", str(HELLO),
              "--target", "hello" if cfg.function == "def" else "hello_async",
              "--signature-type", "http", "--host", HOST, "--port", str(port)],
        port=port,
        cpu=cpu,
        env={"FUNC_CONTEXT": json.dumps(ctx), "CONTEXT_MODE": "self-host",
             "PYTHONPATH": os.pathsep.join(str(p) for p in (runtime_src, FIXTURES) if p),
             "LOG_LEVEL": "WARNING"},
    )


# ----------------------------------------------------------------- in-process timing


def micro(number: int, repeat: int, runtime_src: Path | None = None) -> dict[tuple[str, int], float]:
    """µs per invocation of `FunctionRunner.run` for the `async def` hello world, as the
    server calls it, with 1 and 10 no-op plugins (count 0: no plugins)."""
    sys.path.insert(0, str(FIXTURES))
    if runtime_src:
        sys.path.insert(0, str(runtime_src))
    importlib.import_module("noop_plugins")  # bench/fixtures: the plugins load by name
    from openfunction.cli import load, parse_options
    from openfunction.invocation import HTTP, Invocation

    try:
        import uvloop

        loop = uvloop.new_event_loop()
    except ImportError:  # pragma: no cover
        loop = asyncio.new_event_loop()

    def runner_for(plugin_names: list[str]):  # type: ignore[no-untyped-def]
        context = {"name": "hello", "runtime": "Knative",
                   "prePlugins": plugin_names, "postPlugins": plugin_names}
        environ = {**os.environ, "FUNC_CONTEXT": json.dumps(context), "CONTEXT_MODE": "self-host"}
        options = parse_options(["--source", str(FIXTURES / "hello.py"), "--target", "hello_async",
                                 "--signature-type", "http"], environ)
        return load(options, environ)

    async def batch(fn, n: int) -> None:  # type: ignore[no-untyped-def]
        run, config = fn.runner.run, fn.config
        for _ in range(n):
            await run(Invocation(config, HTTP, request_id="bench"))

    def time_it(fn) -> float:  # type: ignore[no-untyped-def]
        timer = timeit.Timer(lambda: loop.run_until_complete(batch(fn, number)))
        timer.timeit(1)  # warm-up
        return min(timer.repeat(repeat=repeat, number=1)) / number * 1e6

    results: dict[tuple[str, int], float] = {}
    try:
        results[("none", 0)] = time_it(runner_for([]))
        for hooks in ("sync", "async"):
            for n in COUNTS:
                results[(hooks, n)] = time_it(runner_for(Config("def", hooks, n).plugin_names()))
    finally:
        loop.close()
    return results


# ------------------------------------------------------------------------------ main


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5, help="paired rounds (default 5)")
    parser.add_argument("--duration", type=float, default=5.0,
                        help="seconds of each wrk measurement (default 5)")
    parser.add_argument("--warmup", type=float, default=1.0, help="seconds of warm-up load (default 1)")
    parser.add_argument("--connections", type=int, default=32, help="connections (default 32)")
    parser.add_argument("--functions", default="def,async",
                        help="hello worlds to serve: def, async or both (default def,async)")
    parser.add_argument("--micro-number", type=int, default=20000,
                        help="invocations per in-process timing (default 20000)")
    parser.add_argument("--micro-repeat", type=int, default=7, help="repeats, best kept (default 7)")
    add_gate_options(parser)
    add_placement_options(parser)
    parser.add_argument("--output", type=Path, default=BENCH / "results-plugins.md")
    args = parser.parse_args(argv)
    args.runtime_src = checked_runtime_src(parser, args)
    if args.rounds < 1 or args.duration < 1:
        parser.error("--rounds and --duration must be at least 1")
    functions = [f.strip() for f in args.functions.split(",") if f.strip()]
    if not functions or any(f not in ("def", "async") for f in functions):
        parser.error("--functions takes def, async or def,async")

    require_tools("wrk", "taskset")
    server_cpu, client_cpu = pick_cpus(args.server_cpu, args.client_cpu)
    started = time.time()

    # in-process first, on the server's CPU, before any server runs there
    os.sched_setaffinity(0, {server_cpu})
    gate = make_gate(args)
    progress("in-process FunctionRunner.run timing")
    gate.settle()
    micro_us = micro(args.micro_number, args.micro_repeat, args.runtime_src)
    pin_self(client_cpu)

    cfgs = [c for c in configs(functions) if c.count]
    samples = {c.key: Samples() for c in cfgs}
    for r in range(args.rounds):
        progress(f"round {r + 1}/{args.rounds}")
        shift = r % len(cfgs)
        for cfg in cfgs[shift:] + cfgs[:shift]:
            gate.settle()
            base = Config(cfg.function, "none", 0)
            with make_server(base, free_port(), server_cpu, args.runtime_src) as plain, \
                    make_server(cfg, free_port(), server_cpu, args.runtime_src) as plugged:
                run = paired(plain, plugged, connections=args.connections,
                             duration=args.duration, warmup=args.warmup, cpu=client_cpu,
                             b_first=r % 2 == 1)
            samples[cfg.key].runs.append(run)
            progress(f"  {cfg.key:<14} {run.cpu_us_a:6.1f} -> {run.cpu_us_b:6.1f} µs/request "
                     f"(x{run.cpu_ratio:.3f})")
    elapsed = time.time() - started

    report = render(cfgs, samples, micro_us, functions, args, server_cpu, client_cpu, elapsed)
    write_results(args.output, report)
    return 0


def render(cfgs: list[Config], samples: dict[str, Samples], micro_us: dict[tuple[str, int], float],
           functions: list[str], args: argparse.Namespace, server_cpu: int, client_cpu: int,
           elapsed: float) -> str:
    def label(cfg: Config) -> str:
        return "`async def` hello" if cfg.function == "async" else "`def` hello"

    def hooks(name: str) -> str:
        return "`async def`" if name == "async" else "`def`"

    rows = []
    for cfg in cfgs:
        s = samples[cfg.key]
        ratios = [r.cpu_ratio for r in s.runs]
        rows.append([label(cfg), f"{cfg.count} x {hooks(cfg.hooks)} hooks",
                     f"{median(r.cpu_us_a for r in s.runs):.1f} µs",
                     f"{median(r.cpu_us_b for r in s.runs):.1f} µs",
                     f"{(s.ratio - 1) * 100:+.1f}% ({(min(ratios) - 1) * 100:+.1f}..{(max(ratios) - 1) * 100:+.1f})",
                     f"{(1 - 1 / s.ratio) * 100:.1f}%",
                     f"{s.added_us / cfg.count:+.2f} µs"])

    mrows = [["no plugins", f"{micro_us[('none', 0)]:.2f} µs", "-"]]
    for name in ("sync", "async"):
        for n in COUNTS:
            t = micro_us[(name, n)]
            mrows.append([f"{n} x {hooks(name)} hooks", f"{t:.2f} µs",
                          f"{(t - micro_us[('none', 0)]) / n:.2f} µs"])

    # The target is set on the hello world of samples/hello, a `def` function; the
    # `async def` one (half the CPU per request, so every microsecond weighs twice as
    # much) is held against the same figures and reported apart.
    checks: dict[str, list[list[str]]] = {"def": [], "async": []}
    for function in functions:
        for name in ("sync", "async"):
            s = samples[Config(function, name, 10).key]
            per = s.added_us / 10
            drop = 1 - 1 / s.ratio
            what = f"10 x {hooks(name)} hooks"
            checks[function].append([f"cost of one no-op plugin over HTTP, {what}",
                                     f"{per:.2f} µs", f"< {TARGET_PER_PLUGIN_US:g} µs",
                                     "yes" if per < TARGET_PER_PLUGIN_US else "**no**"])
            checks[function].append([f"throughput lost to 10 plugins, {what}",
                                     f"{drop * 100:.1f}%", f"< {TARGET_TEN_PLUGINS_DROP * 100:g}%",
                                     "yes" if drop < TARGET_TEN_PLUGINS_DROP else "**no**"])
    target_sections: list[str] = []
    if checks["def"]:
        target_sections += [
            "## Targets: the hello world (`samples/hello`, a `def` function)", "",
            table(["check", "value", "target", "holds"], checks["def"], "lrrl"), ""]
    if checks["async"]:
        target_sections += [
            "## The same targets, `async def` hello world", "",
            "A stricter case than the target's: about half the CPU per request, so each "
            "microsecond of plugins weighs twice as much.", "",
            table(["check", "value", "target", "holds"], checks["async"], "lrrl"), ""]

    per_round = []
    for cfg in cfgs:
        per_round.append([cfg.key, *[f"x{r.cpu_ratio:.3f}" for r in samples[cfg.key].runs]])

    out = [
        "# Plugin benchmark: no-op plugins around hello world",
        "",
        f"Machine: {machine_summary(server_cpu, client_cpu)}.",
        "",
        "Each listed plugin is in both `prePlugins` and `postPlugins` (FUNC_CONTEXT, "
        "`CONTEXT_MODE=self-host`), so one plugin is one pre hook and one post hook per "
        "invocation (a no-op plugin sets no attributes, so its one instance serves every "
        "invocation). Each configuration runs side by side with the same function without "
        "plugins: both servers at once, pinned to one CPU, each loaded by its own wrk "
        f"(`-t1`, {args.connections} connections) on the other CPU; {args.rounds} rounds of "
        f"{args.warmup:g} s warm-up then {args.duration:g} s, sides swapped every round. "
        "Compared is the CPU time of each process (all threads, from /proc) per request it "
        "answered; at saturation throughput is its inverse, so the throughput lost is "
        "1 - 1/ratio. Medians over the rounds (range in brackets).",
        "",
        f"Command: `.venv/bin/python bench/plugins.py --rounds {args.rounds} --duration "
        f"{args.duration:g}" + (f" --runtime-src {args.runtime_src}" if args.runtime_src else "")
        + f"` ({elapsed / 60:.1f} min).",
        "",
        "## Over HTTP, side by side with no plugins",
        "",
        table(["function", "plugins", "CPU/request, no plugins", "CPU/request, plugins",
               "vs no plugins", "throughput lost", "cost per plugin"], rows, "llrrrrr"),
        "",
        "## In-process: `FunctionRunner.run`, `async def` hello world",
        "",
        f"uvloop loop, best of {args.micro_repeat} x {args.micro_number:,} invocations, on the "
        "server's CPU before any server runs.",
        "",
        table(["plugins", "per invocation", "per plugin"], mrows, "lrr"),
        "",
        *target_sections,
        "## Per round (CPU/request with plugins ÷ without)",
        "",
        table(["configuration", *[f"round {i + 1}" for i in range(args.rounds)]], per_round),
        "",
    ]
    versions = package_version(VENV_BIN / "python", "openfunction-functions-framework", "uvicorn",
                               "starlette", "uvloop", "httptools")
    out += ["Versions: " + ", ".join(f"{k} {v}" for k, v in versions.items()) + ".", ""]
    return "\n".join(out)


if __name__ == "__main__":
    sys.exit(main())
