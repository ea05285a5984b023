"""Tracing benchmark: what SkyWalking and OpenTelemetry cost hello world, against tracing off.

    .venv/bin/python bench/tracing.py [--rounds 5] [--duration 5]

Every mode runs side by side with tracing off (`_common.paired`): for every round both
`functions-framework` processes run at once, pinned to the same CPU, each loaded by its own
wrk on the other CPU (where this script, the SkyWalking collector and the OTLP receiver of
the tests run too, so the agent and the exporter do their real work: build, encode and send
every span over gRPC). Compared is the CPU time of each process (all threads) per request
it answered: at saturation throughput is its inverse, so the throughput a mode costs is
1 - 1/ratio. p99 and req/s are those of the pair (each process has half a CPU). Modes:

* `disabled`: `pluginsTracing` present with `enabled: false` (must cost nothing);
* `plugin`: no tracing, the built-in `counter` plugin as pre and post hook (what running
  any plugin pipeline costs, which the tracing providers pay too);
* `skywalking`, `opentelemetry`: `pluginsTracing` enabled with that provider;
* `opentelemetry-sampled`: the same, keeping one trace in ten (the OpenTelemetry sampler
  settings docs/tracing.md suggests when the cost matters).

The markdown report goes to stdout and bench/results-tracing.md; progress to stderr.
Nothing leaves the machine.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from _common import (
    BENCH,
    FIXTURES,
    HOST,
    REPO,
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

sys.path.insert(0, str(REPO / "tests"))
from support.otlp_receiver import OTLPReceiver  # noqa: E402
from support.skywalking_collector import SkyWalkingCollector  # noqa: E402

MODES = ("disabled", "plugin", "skywalking", "opentelemetry", "opentelemetry-sampled")
TRACED = ("skywalking", "opentelemetry")
"""The modes the target applies to: every request traced."""
SAMPLED_RATIO = "0.1"
SAMPLER_ENV = {"OTEL_TRACES_SAMPLER": "parentbased_traceidratio",
               "OTEL_TRACES_SAMPLER_ARG": SAMPLED_RATIO}
"""`opentelemetry-sampled`: OpenTelemetry with one trace in ten kept, as docs/tracing.md
suggests when the cost matters."""
TARGET_DROP = 0.15
HELLO = FIXTURES / "hello.py"


@dataclass
class Samples:
    """Paired runs of one mode against tracing off (`a` = off)."""

    runs: list[PairedResult] = field(default_factory=list)
    spans: list[int] = field(default_factory=list)
    """Spans received per run for the measured requests (a few more than wrk counts: the
    requests in flight when it stopped), and the requests wrk counted."""
    requests: list[int] = field(default_factory=list)

    @property
    def ratio(self) -> float:
        return median(r.cpu_ratio for r in self.runs)


def func_context(mode: str, collector: SkyWalkingCollector, receiver: OTLPReceiver) -> dict:
    ctx: dict = {"name": "hello", "version": "v1", "runtime": "Knative"}
    if mode == "plugin":
        ctx["prePlugins"] = ctx["postPlugins"] = ["counter"]
    elif mode == "disabled":
        ctx["pluginsTracing"] = {"enabled": False, "provider": {
            "name": "skywalking", "oapServer": collector.address}}
    elif mode == "skywalking":
        ctx["pluginsTracing"] = {"enabled": True, "provider": {
            "name": "skywalking", "oapServer": collector.address}}
    elif mode.startswith("opentelemetry"):
        ctx["pluginsTracing"] = {"enabled": True, "provider": {
            "name": "opentelemetry", "exporter": {"name": "otlp", "endpoint": receiver.endpoint}}}
    return ctx


def make_server(mode: str, cpu: int, collector: SkyWalkingCollector,
                receiver: OTLPReceiver, runtime_src: Path | None) -> Server:
    port = free_port()
    return Server(
        name=f"tracing-{mode}-{port}",
        argv=[str(VENV_BIN / "functions-framework"), "--source", str(HELLO), "--target", "hello",
              "--signature-type", "http", "--host", HOST, "--port", str(port)],
        port=port,
        cpu=cpu,
        env={"FUNC_CONTEXT": json.dumps(func_context(mode, collector, receiver)),
             "CONTEXT_MODE": "self-host", "LOG_LEVEL": "WARNING",
             **(SAMPLER_ENV if mode == "opentelemetry-sampled" else {}),
             **({"PYTHONPATH": str(runtime_src)} if runtime_src else {})},
    )


def spans_since(mode: str, since: float, collector: SkyWalkingCollector,
                receiver: OTLPReceiver) -> int:
    """Spans received that started at `since` (a time.time()) or later."""
    if mode == "skywalking":
        ms = since * 1000
        return sum(1 for s in list(collector.segments) for span in s.spans if span.startTime >= ms)
    if mode.startswith("opentelemetry"):
        ns = since * 1e9
        return sum(1 for s in list(receiver.spans) if s.span.start_time_unix_nano >= ns)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5, help="paired rounds (default 5)")
    parser.add_argument("--duration", type=float, default=5.0,
                        help="seconds of each measurement (default 5)")
    parser.add_argument("--warmup", type=float, default=1.0, help="seconds of warm-up (default 1)")
    parser.add_argument("--connections", type=int, default=32, help="connections (default 32)")
    parser.add_argument("--modes", default=",".join(MODES),
                        help=f"modes to compare with tracing off (default {','.join(MODES)})")
    add_gate_options(parser)
    add_placement_options(parser)
    parser.add_argument("--output", type=Path, default=BENCH / "results-tracing.md")
    args = parser.parse_args(argv)
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    if not modes or any(m not in MODES for m in modes):
        parser.error(f"--modes takes some of {', '.join(MODES)}")
    if args.rounds < 1 or args.duration < 1:
        parser.error("--rounds and --duration must be at least 1")
    args.runtime_src = checked_runtime_src(parser, args)

    require_tools("wrk", "taskset")
    server_cpu, client_cpu = pick_cpus(args.server_cpu, args.client_cpu)
    pin_self(client_cpu)  # the collector and the receiver run in this process
    gate = make_gate(args)
    started = time.time()
    samples = {m: Samples() for m in modes}
    collector, receiver = SkyWalkingCollector(), OTLPReceiver()
    collector.start()
    receiver.start()
    try:
        for r in range(args.rounds):
            progress(f"round {r + 1}/{args.rounds}")
            shift = r % len(modes)
            for mode in modes[shift:] + modes[:shift]:
                gate.settle()
                collector.clear()
                receiver.spans.clear()
                with make_server("off", server_cpu, collector, receiver, args.runtime_src) as off, \
                        make_server(mode, server_cpu, collector, receiver, args.runtime_src) as on:
                    measured: list[float] = []
                    run = paired(off, on, connections=args.connections,
                                 duration=args.duration, warmup=args.warmup, cpu=client_cpu,
                                 b_first=r % 2 == 1,
                                 before_measure=lambda: measured.append(time.time()))
                time.sleep(0.5)  # the last batch reaches the collector (sent on shutdown)
                samples[mode].runs.append(run)
                samples[mode].spans.append(spans_since(mode, measured[0], collector, receiver))
                samples[mode].requests.append(run.b.requests)
                progress(f"  {mode:<14} {run.cpu_us_a:6.1f} -> {run.cpu_us_b:6.1f} µs/request "
                         f"(x{run.cpu_ratio:.3f}), spans {samples[mode].spans[-1]:,}")
    finally:
        receiver.stop()
        collector.stop()
    report = render(modes, samples, args, server_cpu, client_cpu, time.time() - started)
    write_results(args.output, report)
    return 0


def render(modes: list[str], samples: dict[str, Samples], args: argparse.Namespace,
           server_cpu: int, client_cpu: int, elapsed: float) -> str:
    rows, checks = [], []
    for mode in modes:
        s = samples[mode]
        ratios = [r.cpu_ratio for r in s.runs]
        off_cpu = median(r.cpu_us_a for r in s.runs)
        on_cpu = median(r.cpu_us_b for r in s.runs)
        drop = 1 - 1 / s.ratio
        delivered = "-"
        if mode.startswith(TRACED):  # a mode that makes spans
            delivered = f"{sum(s.spans):,} / {sum(s.requests):,}"
        rows.append([mode, f"{off_cpu:.1f} µs", f"{on_cpu:.1f} µs",
                     f"{(s.ratio - 1) * 100:+.1f}% ({(min(ratios) - 1) * 100:+.1f}..{(max(ratios) - 1) * 100:+.1f})",
                     f"{drop * 100:.1f}%",
                     f"{median(r.a.rps for r in s.runs):,.0f} / {median(r.b.rps for r in s.runs):,.0f}",
                     f"{median(r.a.p99_ms for r in s.runs):.1f} / {median(r.b.p99_ms for r in s.runs):.1f}",
                     delivered])
        if mode in TRACED:
            checks.append([f"throughput lost to {mode} tracing, `def` hello", f"{drop * 100:.1f}%",
                           f"< {TARGET_DROP * 100:g}%",
                           "yes" if drop < TARGET_DROP else "**no**"])
        if mode == "disabled":
            checks.append(["throughput lost with tracing disabled", f"{drop * 100:.1f}%",
                           "0 (within noise)", "yes" if abs(s.ratio - 1) < 0.03 else "**no**"])
    per_round = [[m, *[f"x{r.cpu_ratio:.3f}" for r in samples[m].runs]] for m in modes]
    out = [
        "# Tracing benchmark: hello world, tracing off against each mode",
        "",
        f"Machine: {machine_summary(server_cpu, client_cpu)}.",
        "",
        "Each mode runs side by side with tracing off: both `functions-framework` processes at "
        "once, pinned to one CPU, each loaded by its own wrk (`-t1`, "
        f"{args.connections} connections) on the other CPU, with the SkyWalking collector and "
        "the OTLP receiver of the tests (every span is built, encoded and sent over gRPC); "
        f"{args.rounds} rounds of {args.warmup:g} s warm-up then {args.duration:g} s, sides "
        "swapped every round. Compared is the CPU time of each process (all threads, from /proc) "
        "per request it answered; at saturation throughput is its inverse, so the throughput "
        "lost is 1 - 1/ratio. req/s and p99 are those of the pair (each process gets about half "
        "of the CPU). Medians over the rounds (range in brackets). `opentelemetry-sampled` "
        f"keeps one trace in {round(1 / float(SAMPLED_RATIO))} "
        f"(`OTEL_TRACES_SAMPLER=parentbased_traceidratio`, `OTEL_TRACES_SAMPLER_ARG="
        f"{SAMPLED_RATIO}`); the target applies to the modes that trace every request.",
        "",
        f"Command: `.venv/bin/python bench/tracing.py --rounds {args.rounds} --duration "
        f"{args.duration:g}` ({elapsed / 60:.1f} min).",
        "",
        table(["mode", "CPU/request, off", "CPU/request, mode", "vs off", "throughput lost",
               "req/s off / mode", "p99 ms off / mode", "spans received / requests"],
              rows, "lrrrrrrr"),
        "",
        "## Targets",
        "",
        table(["check", "value", "target", "holds"], checks, "lrrl"),
        "",
        "## Per round (CPU/request with the mode ÷ tracing off)",
        "",
        table(["mode", *[f"round {i + 1}" for i in range(args.rounds)]], per_round),
        "",
    ]
    versions = package_version(VENV_BIN / "python", "openfunction-functions-framework",
                               "apache-skywalking", "opentelemetry-sdk", "uvicorn", "uvloop")
    out += ["Versions: " + ", ".join(f"{k} {v}" for k, v in versions.items()) + ".", ""]
    return "\n".join(out)


if __name__ == "__main__":
    sys.exit(main())
