"""Plugin benchmark: what 0, 1 and 10 no-op plugins cost each invocation.

    .venv/bin/python bench/plugins.py [--rounds 3] [--duration 5]

Serves the hello world (`def` and `async def`) with our runtime and a FUNC_CONTEXT
(CONTEXT_MODE=self-host) listing 0, 1 or 10 no-op plugins from bench/fixtures/noop_plugins.py
in both prePlugins and postPlugins, with plain `def` hooks or `async def` hooks. The
configurations are measured side by side: requests/s at 32 connections with wrk, server
pinned to one CPU and wrk to another, on 127.0.0.1, interleaved over the rounds (fresh
process each time, order rotated), medians reported.

With the server saturating its one CPU, 1/(req/s) is the CPU time of one request, so the
cost of a plugin is (1/rps_N - 1/rps_0) / N. A cleaner figure comes from timing
`Pipeline.run` in-process around a no-op call (timeit, best of several repeats).
The markdown report goes to stdout and bench/results-plugins.md; progress to stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
import timeit
from dataclasses import dataclass, field
from pathlib import Path

# Keep this folder behind the standard library on sys.path (bench/http.py is named like
# the standard library's `http` package); `_common` is still found here.
_HERE = os.path.dirname(os.path.realpath(__file__))
sys.path[:] = [p for p in sys.path if os.path.realpath(p or ".") != _HERE] + [_HERE]

from _common import (  # noqa: E402
    BENCH,
    FIXTURES,
    HOST,
    VENV_BIN,
    Gate,
    Server,
    add_gate_options,
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
    rps: list[float] = field(default_factory=list)


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
    """µs per invocation: Pipeline.run around a no-op call (count 0: the call alone)."""
    sys.path.insert(0, str(FIXTURES))
    if runtime_src:
        sys.path.insert(0, str(runtime_src))
    import noop_plugins  # noqa: F401 - bench/fixtures
    from openfunction.config import FunctionConfig
    from openfunction.invocation import HTTP, Invocation
    from openfunction.plugins import PluginResolver
    from openfunction.plugins.pipeline import Pipeline

    try:
        import uvloop

        loop = uvloop.new_event_loop()
    except ImportError:  # pragma: no cover
        loop = asyncio.new_event_loop()
    config = FunctionConfig()
    invocation = Invocation(config, HTTP)

    async def call(inv: Invocation) -> None:
        inv.result = None

    async def batch(make, n: int) -> None:  # type: ignore[no-untyped-def]
        for _ in range(n):
            await make()

    def time_it(make) -> float:  # type: ignore[no-untyped-def]
        timer = timeit.Timer(lambda: loop.run_until_complete(batch(make, number)))
        timer.timeit(1)  # warm-up
        return min(timer.repeat(repeat=repeat, number=1)) / number * 1e6

    results: dict[tuple[str, int], float] = {}
    try:
        results[("none", 0)] = time_it(lambda: call(invocation))
        for hooks in ("sync", "async"):
            for n in COUNTS:
                resolver = PluginResolver()
                plugins = resolver.resolve_all(Config("def", hooks, n).plugin_names(), "prePlugins")
                pipeline = Pipeline(plugins, plugins)
                results[(hooks, n)] = time_it(lambda p=pipeline: p.run(invocation, call))
    finally:
        loop.close()
    return results


# ------------------------------------------------------------------------------ main


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds (default 3)")
    parser.add_argument("--duration", type=float, default=5.0,
                        help="seconds of each wrk measurement (default 5)")
    parser.add_argument("--warmup", type=float, default=1.0, help="seconds of warm-up load (default 1)")
    parser.add_argument("--connections", type=int, default=32, help="connections (default 32)")
    parser.add_argument("--functions", default="def,async",
                        help="hello worlds to serve: def, async or both (default def,async)")
    parser.add_argument("--micro-number", type=int, default=20000,
                        help="invocations per in-process timing (default 20000)")
    parser.add_argument("--micro-repeat", type=int, default=7, help="repeats, best kept (default 7)")
    parser.add_argument("--server-cpu", type=int, help="CPU the servers run on (default: the first)")
    parser.add_argument("--client-cpu", type=int, help="CPU wrk runs on (default: another one)")
    add_gate_options(parser)
    parser.add_argument("--runtime-src", type=Path,
                        help="measure the runtime package found in this folder instead of the "
                             "installed one (to try a change; e.g. a copy of runtime/src)")
    parser.add_argument("--output", type=Path, default=BENCH / "results-plugins.md")
    args = parser.parse_args(argv)
    if args.runtime_src:
        args.runtime_src = args.runtime_src.resolve()
        if not (args.runtime_src / "openfunction" / "__init__.py").is_file():
            parser.error(f"--runtime-src: no openfunction package in {args.runtime_src}")
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
    progress("in-process Pipeline.run timing")
    gate.settle()
    micro_us = micro(args.micro_number, args.micro_repeat, args.runtime_src)
    pin_self(client_cpu)

    cfgs = configs(functions)
    samples = {c.key: Samples() for c in cfgs}
    for r in range(args.rounds):
        progress(f"round {r + 1}/{args.rounds}")
        shift = r % len(cfgs)
        for cfg in cfgs[shift:] + cfgs[:shift]:
            gate.settle()
            port = free_port()
            with make_server(cfg, port, server_cpu, args.runtime_src) as server:
                wrk(port, connections=args.connections, duration=args.warmup, cpu=client_cpu)
                result = gate.run(lambda: wrk(port, connections=args.connections,
                                              duration=args.duration, cpu=client_cpu, server=server))
            samples[cfg.key].rps.append(result.rps)
            progress(f"  {cfg.key:<14} {result.rps:>9,.0f} req/s   (others: {result.foreign:.2f} CPU)")
    elapsed = time.time() - started

    report = render(cfgs, samples, micro_us, functions, args, server_cpu, client_cpu, elapsed, gate)
    write_results(args.output, report)
    return 0


def render(cfgs: list[Config], samples: dict[str, Samples], micro_us: dict[tuple[str, int], float],
           functions: list[str], args: argparse.Namespace, server_cpu: int, client_cpu: int,
           elapsed: float, gate: Gate) -> str:
    rps = {k: median(s.rps) for k, s in samples.items()}

    def ratio(cfg: Config) -> float:
        """Median over the rounds of req/s relative to no plugins in the same round (the
        machine's speed drifts between rounds; within a round both run back to back)."""
        base_runs = samples[Config(cfg.function, "none", 0).key].rps
        return median([v / b for v, b in zip(samples[cfg.key].rps, base_runs)])

    rows = []
    for cfg in cfgs:
        base = rps[Config(cfg.function, "none", 0).key]
        v = base * ratio(cfg)
        if cfg.count:
            per = (1e6 / v - 1e6 / base) / cfg.count
            rows.append([f"`{'async def' if cfg.function == 'async' else 'def'}` hello",
                         f"{cfg.count} x {'`async def`' if cfg.hooks == 'async' else '`def`'} hooks",
                         fmt_rps(v), f"{(v / base - 1) * 100:+.1f}%", f"{per:+.1f} µs"])
        else:
            rows.append([f"`{'async def' if cfg.function == 'async' else 'def'}` hello", "no plugins",
                         fmt_rps(v), "-", "-"])

    mrows = [["no plugins (the call alone)", f"{micro_us[('none', 0)]:.2f} µs", "-"]]
    for hooks in ("sync", "async"):
        for n in COUNTS:
            t = micro_us[(hooks, n)]
            mrows.append([f"{n} x {'`async def`' if hooks == 'async' else '`def`'} hooks",
                          f"{t:.2f} µs", f"{(t - micro_us[('none', 0)]) / n:.2f} µs"])

    checks = []
    for hooks in ("sync", "async"):
        per = (micro_us[(hooks, 10)] - micro_us[("none", 0)]) / 10
        checks.append([f"cost of one no-op plugin, {hooks} hooks (in-process, 10 plugins)",
                       f"{per:.2f} µs", f"< {TARGET_PER_PLUGIN_US:g} µs",
                       "yes" if per < TARGET_PER_PLUGIN_US else "**no**"])
    for function in functions:
        base = rps[Config(function, "none", 0).key]
        for hooks in ("sync", "async"):
            v = base * ratio(Config(function, hooks, 10))
            per = (1e6 / v - 1e6 / base) / 10
            drop = 1 - v / base
            label = "async def" if function == "async" else "def"
            share = (micro_us[(hooks, 10)] - micro_us[("none", 0)]) / (1e6 / base)
            checks.append([f"10 plugins' in-process cost / CPU time of one request, `{label}` "
                           f"hello, {hooks} hooks", f"{share * 100:.1f}%",
                           f"< {TARGET_TEN_PLUGINS_DROP * 100:g}%",
                           "yes" if share < TARGET_TEN_PLUGINS_DROP else "**no**"])
            checks.append([f"cost of one no-op plugin over HTTP, `{label}` hello, {hooks} hooks",
                           f"{per:.1f} µs", f"< {TARGET_PER_PLUGIN_US:g} µs",
                           "yes" if per < TARGET_PER_PLUGIN_US else "**no**"])
            checks.append([f"req/s lost to 10 plugins, `{label}` hello, {hooks} hooks",
                           f"{drop * 100:.1f}%", f"< {TARGET_TEN_PLUGINS_DROP * 100:g}%",
                           "yes" if drop < TARGET_TEN_PLUGINS_DROP else "**no**"])

    out = [
        "# Plugin benchmark: no-op plugins around hello world",
        "",
        f"Machine: {machine_summary(server_cpu, client_cpu)}.",
        "",
        "Each listed plugin is in both `prePlugins` and `postPlugins` (FUNC_CONTEXT, "
        "`CONTEXT_MODE=self-host`), so one plugin is one pre hook and one post hook per "
        "invocation (a no-op plugin sets no attributes, so its one instance serves every "
        f"invocation, without a per-invocation copy). One server process pinned to one CPU, wrk (`-t1`, "
        f"{args.connections} connections) pinned to the other; {args.rounds} interleaved rounds, "
        f"{args.warmup:g} s warm-up then {args.duration:g} s; req/s are medians, and \"vs no "
        "plugins\" is the median of each round's ratio to the no-plugin run of the same round. "
        "Cost per plugin over HTTP = (1/rps_N - 1/rps_0) / N: the server saturates its CPU, so "
        "1/rps is the CPU time of one request (noisy at the µs level: a 1% swing of req/s is "
        "about 1 µs per plugin at 10 plugins).",
        "",
        gate.note(),
        "",
        f"Command: `.venv/bin/python bench/plugins.py --rounds {args.rounds} --duration "
        f"{args.duration:g}" + (f" --runtime-src {args.runtime_src}" if args.runtime_src else "")
        + f"` ({elapsed / 60:.1f} min).",
        "",
        "## Over HTTP",
        "",
        table(["function", "plugins", f"req/s ({args.connections} conn)", "vs no plugins",
               "cost per plugin"], rows, "llrrr"),
        "",
        "## In-process: `Pipeline.run` around a no-op call",
        "",
        f"uvloop loop, best of {args.micro_repeat} x {args.micro_number:,} invocations, on the "
        "server's CPU before any server runs.",
        "",
        table(["plugins", "per invocation", "per plugin"], mrows, "lrr"),
        "",
        "## Targets",
        "",
        table(["check", "value", "target", "holds"], checks, "lrrl"),
        "",
        "## Per round (req/s)",
        "",
        table(["configuration", *[f"round {i + 1}" for i in range(args.rounds)]],
              [[c.key, *[fmt_rps(v) for v in samples[c.key].rps]] for c in cfgs]),
        "",
    ]
    versions = package_version(VENV_BIN / "python", "openfunction-functions-framework", "uvicorn",
                               "starlette", "uvloop", "httptools")
    out += ["Versions: " + ", ".join(f"{k} {v}" for k, v in versions.items()) + ".", ""]
    return "\n".join(out)


if __name__ == "__main__":
    sys.exit(main())
