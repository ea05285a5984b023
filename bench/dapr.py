"""Dapr paths: events per second through daprd → function → output, and the cost of `ctx.send`.

    .venv/bin/python bench/dapr.py [--events 1000] [--requests 400] [--rounds 3]

Two measurements, each against a baseline that makes the same Dapr calls with the Dapr
Python SDK's own client, in one run: the variants are interleaved round by round (the
order rotates) and the tables give medians of the rounds.

1. Async events. A topic feeds an app whose handler increments a Redis counter through a
   `bindings.redis` output (`increment`). The run publishes N events through daprd's
   gRPC API (64 in flight) and times them until the counter reads N. Two inputs:
   `pubsub.in-memory` (daprd hands events over one at a time: the per-event cost end to
   end) and `pubsub.redis` with 32 events in flight. Variants, each with its own daprd:
   - `functions-framework`: the Async runtime, `async def f(ctx, data): await ctx.send_async(...)`;
   - `sdk`: a bare `grpc.aio` AppCallback servicer calling the SDK's `dapr.aio.clients.DaprClient`
     `invoke_binding` (no framework at all: the floor for a Python app).
2. `ctx.send` from a sync function. Three Knative functions behind one daprd (no app
   port) answer a POST: `noop` returns; `send` calls `ctx.send(data)` to a
   `pubsub.in-memory` topic; `sdk` calls the SDK's sync `DaprClient.publish_event` with the
   same payload. Sequential keep-alive requests; added latency = p50(send) - p50(noop).

The function processes run on CPU 0; daprd, Redis and this script on CPU 1. Everything
listens on and talks to 127.0.0.1 only; every loop is bounded in count and time.
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import json
import os
import platform
import socket
import statistics
import sys
import tempfile
import textwrap
import time
import urllib.request
from contextlib import ExitStack, contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterator

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from support.dapr import (  # noqa: E402
    DAPR_VERSION, Daprd, SidecarPorts, component, function_context, function_env,
    redis_component, start_daprd, start_redis, topic, wait_until, write_components,
)
from support.process import FUNCTIONS_FRAMEWORK, Process, free_port, start_process  # noqa: E402

APP_CPU, OTHER_CPU = "0", "1"
BURST_TIMEOUT = 120.0

ASYNC_FUNCTION = """
    async def handler(ctx, data):
        await ctx.send_async(b"1", "count")
"""

SDK_APP = """
    import asyncio, os, sys
    import grpc
    from dapr.aio.clients import DaprClient
    from dapr.proto.runtime.v1 import appcallback_pb2 as pb, appcallback_pb2_grpc as pb_grpc

    KEY = os.environ["COUNTER_KEY"]
    TOPIC = os.environ["TOPIC"]

    class Servicer(pb_grpc.AppCallbackServicer):
        def __init__(self, client):
            self.client = client

        async def ListTopicSubscriptions(self, request, context):
            return pb.ListTopicSubscriptionsResponse(subscriptions=[
                pb.TopicSubscription(pubsub_name="bus", topic=TOPIC)])

        async def ListInputBindings(self, request, context):
            return pb.ListInputBindingsResponse()

        async def OnTopicEvent(self, request, context):
            await self.client.invoke_binding("counter", "increment", b"1", {"key": KEY})
            return pb.TopicEventResponse()

    async def main():
        client = DaprClient()
        server = grpc.aio.server()
        pb_grpc.add_AppCallbackServicer_to_server(Servicer(client), server)
        server.add_insecure_port(f"127.0.0.1:{sys.argv[1]}")
        await server.start()
        await server.wait_for_termination()

    asyncio.run(main())
"""

SYNC_FUNCTIONS = """
    import json
    import openfunction

    _client = None

    @openfunction.function
    def noop(ctx, data):
        return "ok"

    @openfunction.function
    def send(ctx, data):
        ctx.send(data, "out")
        return "ok"

    @openfunction.function
    def sdk(ctx, data):
        global _client
        if _client is None:
            from dapr.clients import DaprClient
            _client = DaprClient()
        payload = json.dumps(data, separators=(",", ":"))
        _client.publish_event("bus", "sink", payload, data_content_type="application/json")
        return "ok"
"""

SCENARIOS = {
    # daprd hands events to the app one at a time: the per-event cost end to end
    "in-memory": ("pubsub.in-memory", {}),
    # Redis streams, up to 32 events in flight: what concurrent delivery reaches
    "redis": ("pubsub.redis", {"concurrency": "32", "queueDepth": "256"}),
}


def pinned(cpu: str, cmd: list[str]) -> list[str]:
    return ["taskset", "-c", cpu, *cmd]


def write(directory: Path, name: str, text: str) -> Path:
    path = directory / name
    path.write_text(textwrap.dedent(text))
    return path


# ---------------------------------------------------------------- async events


def _daprd_healthy(daprd: Daprd) -> bool:
    try:
        url = f"http://127.0.0.1:{daprd.http_port}/v1.0/healthz"
        with urllib.request.urlopen(url, timeout=1) as response:
            return response.status == 204
    except OSError:
        return False


@contextmanager
def async_stack(kind: str, work: Path, resources: Path,
                pubsub_type: str) -> Iterator[tuple[Daprd, str, str]]:
    """One app (`functions-framework` or `sdk`) with its own daprd.

    Yields (daprd, topic, counter key): each app has its own topic and counter, as the
    apps share Redis.
    """
    port, ports = free_port(), SidecarPorts.free()
    topic_name, key = f"bench-{kind}", f"count-{kind}"
    env = {**ports.env, "COUNTER_KEY": key, "TOPIC": topic_name, "LOG_LEVEL": "WARNING"}
    if kind == "functions-framework":
        ctx = function_context(
            "bench", port, inputs={"in": topic("bus", topic_name, pubsub_type)},
            outputs={"count": {"componentName": "counter", "componentType": "bindings.redis",
                               "operation": "increment", "metadata": {"key": key}}})
        env = {**env, **function_env(ctx, ports)}
        cmd = [FUNCTIONS_FRAMEWORK, "--source", str(write(work, "fn.py", ASYNC_FUNCTION)),
               "--target", "handler", "--host", "127.0.0.1", "--port", str(port)]
    else:
        cmd = [sys.executable, str(write(work, "sdk_app.py", SDK_APP)), str(port)]
    with ExitStack() as stack:
        if kind == "sdk":  # the SDK client waits for the sidecar: start daprd first
            daprd = stack.enter_context(start_daprd(resources, port, ports=ports, app_id=kind,
                                                    wait="outbound", log_level="warn"))
            stack.enter_context(start_process(pinned(APP_CPU, cmd), env=env, port=port, name=kind))
            wait_until(lambda: _daprd_healthy(daprd), timeout=30, what=f"{kind} daprd ready")
        else:
            stack.enter_context(start_process(pinned(APP_CPU, cmd), env=env, port=port, name=kind))
            daprd = stack.enter_context(start_daprd(resources, port, ports=ports, app_id=kind,
                                                    wait="app", log_level="warn"))
        yield daprd, topic_name, key


class RedisCounter:
    """Reads one integer key over a kept-open connection (polling with redis-cli would
    spend the driver's CPU on process start-ups)."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        self.reader = self.sock.makefile("rb")

    def command(self, *args: str) -> bytes | None:
        parts = [f"*{len(args)}\r\n".encode()]
        for arg in args:
            parts.append(f"${len(arg.encode())}\r\n{arg}\r\n".encode())
        self.sock.sendall(b"".join(parts))
        line = self.reader.readline()
        if line.startswith(b"$"):
            size = int(line[1:])
            return None if size < 0 else self.reader.read(size + 2)[:-2]
        if line.startswith(b"-"):
            raise RuntimeError(line.decode().strip())
        return line[1:].strip()

    def get_int(self, key: str) -> int:
        return int(self.command("GET", key) or 0)

    def close(self) -> None:
        self.reader.close()
        self.sock.close()


async def publish_burst(daprd: Daprd, topic_name: str, count: int, in_flight: int = 64) -> None:
    import grpc.aio
    from dapr.proto.runtime.v1 import pubsub_pb2

    async with grpc.aio.insecure_channel(f"127.0.0.1:{daprd.grpc_port}") as channel:
        publish = channel.unary_unary(
            "/dapr.proto.runtime.v1.Dapr/PublishEvent",
            request_serializer=pubsub_pb2.PublishEventRequest.SerializeToString,
            response_deserializer=lambda raw: raw)
        request = pubsub_pb2.PublishEventRequest(
            pubsub_name="bus", topic=topic_name, data=b'{"n":1}',
            data_content_type="application/json")
        gate = asyncio.Semaphore(in_flight)

        async def one() -> None:
            async with gate:
                await publish(request, timeout=30)

        await asyncio.wait_for(asyncio.gather(*(one() for _ in range(count))), BURST_TIMEOUT)


def events_per_second(daprd: Daprd, topic_name: str, counter: RedisCounter, key: str,
                      count: int) -> float:
    counter.command("DEL", key)
    started = time.perf_counter()
    asyncio.run(publish_burst(daprd, topic_name, count))
    deadline = time.monotonic() + BURST_TIMEOUT
    while counter.get_int(key) < count:
        if time.monotonic() > deadline:
            raise TimeoutError(f"{key}: only {counter.get_int(key)} of {count} events arrived")
        time.sleep(0.02)
    return count / (time.perf_counter() - started)


def bench_async(work: Path, scenario: str, events: int, rounds: int) -> dict[str, list[float]]:
    pubsub_type, metadata = SCENARIOS[scenario]
    results: dict[str, list[float]] = {"functions-framework": [], "sdk": []}
    with start_redis() as redis:
        bus = (redis_component("bus", pubsub_type, redis, **metadata)
               if pubsub_type == "pubsub.redis" else component("bus", pubsub_type))
        resources = write_components(work / f"resources-{scenario}", [
            bus, redis_component("counter", "bindings.redis", redis)])
        with async_stack("functions-framework", work, resources, pubsub_type) as ours, \
                async_stack("sdk", work, resources, pubsub_type) as sdk:
            stacks = {"functions-framework": ours, "sdk": sdk}
            counter = RedisCounter(redis.port)
            try:
                for daprd, topic_name, key in stacks.values():  # warm-up
                    events_per_second(daprd, topic_name, counter, key, min(200, events))
                order = list(stacks)
                for index in range(rounds):
                    for name in order[index % 2:] + order[:index % 2]:
                        daprd, topic_name, key = stacks[name]
                        rate = events_per_second(daprd, topic_name, counter, key, events)
                        results[name].append(rate)
                        print(f"  {scenario} round {index + 1} {name}: {rate:.0f} events/s",
                              flush=True)
            finally:
                counter.close()
    return results


# ---------------------------------------------------------------- ctx.send latency


def latencies(port: int, count: int) -> list[float]:
    body = json.dumps({"order": 42, "items": ["a", "b"]})
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    samples = []
    deadline = time.monotonic() + 120
    try:
        for _ in range(count):
            if time.monotonic() > deadline:
                break
            started = time.perf_counter()
            connection.request("POST", "/", body, {"content-type": "application/json"})
            response = connection.getresponse()
            response.read()
            samples.append((time.perf_counter() - started) * 1000)
            if response.status != 200:
                raise RuntimeError(f"HTTP {response.status} from port {port}")
    finally:
        connection.close()
    return samples


def bench_send(work: Path, requests: int, rounds: int) -> dict[str, list[float]]:
    targets = ("noop", "send", "sdk")
    results: dict[str, list[float]] = {t: [] for t in targets}
    resources = write_components(work / "resources-sync", [component("bus", "pubsub.in-memory")])
    source = write(work, "sync_fn.py", SYNC_FUNCTIONS)
    ports = SidecarPorts.free()
    with ExitStack() as stack:
        stack.enter_context(start_daprd(resources, None, ports=ports, app_id="sync-bench",
                                        log_level="warn"))
        servers: dict[str, Process] = {}
        for target in targets:
            port = free_port()
            ctx = function_context("sync-bench", port, runtime="Knative",
                                   outputs={"out": topic("bus", "sink", "pubsub.in-memory")})
            env = {**function_env(ctx, ports), "LOG_LEVEL": "WARNING"}
            cmd = [FUNCTIONS_FRAMEWORK, "--source", str(source), "--target", target,
                   "--host", "127.0.0.1", "--port", str(port)]
            servers[target] = stack.enter_context(
                start_process(pinned(APP_CPU, cmd), env=env, port=port, name=target))
            servers[target].port = port
        for target in targets:  # warm-up: connections, lazy clients, code paths
            latencies(servers[target].port, 100)
        for index in range(rounds):
            for target in targets[index % 3:] + targets[:index % 3]:
                p50 = statistics.median(latencies(servers[target].port, requests))
                results[target].append(p50)
                print(f"  send round {index + 1} {target}: p50 {p50:.3f} ms", flush=True)
    return results


# ---------------------------------------------------------------- report


def report(async_results: dict[str, dict[str, list[float]]],
           send_results: dict[str, list[float]], args: argparse.Namespace,
           load: tuple[float, float]) -> str:
    lat = {k: statistics.median(v) for k, v in send_results.items()}
    cpu = platform.processor() or platform.machine()
    lines = [
        "# Dapr paths: events per second and `ctx.send` latency",
        "",
        f"Measured {datetime.now(timezone.utc):%Y-%m-%d} with `.venv/bin/python bench/dapr.py "
        f"--events {args.events} --requests {args.requests} --rounds {args.rounds}` on "
        f"{os.cpu_count()} CPUs ({cpu}), Python {platform.python_version()}, daprd "
        f"{DAPR_VERSION} (built from its Go module by `make daprd`), loopback only. Function "
        "processes on CPU 0; daprd, Redis and the driver on CPU 1. Medians of the rounds; the "
        "variants are interleaved and their order rotates from round to round. 1-minute load "
        f"average {load[0]:.1f} at the start and {load[1]:.1f} at the end (above about 2 "
        "other work shared the two CPUs: compare the per-round values, not just medians).",
        "",
        "## Async runtime: daprd → function → output",
        "",
        "Each event goes daprd → app (`OnTopicEvent`) → `InvokeBinding` on a `bindings.redis` "
        "output (`increment`). Rate = N events / time from the first publish until the "
        "counter reads N. Baseline: a bare `grpc.aio` AppCallback servicer (no framework) "
        "calling the SDK's `dapr.aio.clients.DaprClient.invoke_binding`; each app has its "
        "own daprd.",
        "",
        "| input | app | events/s (median) | best round | rounds |",
        "|---|---|---:|---:|---|",
    ]
    labels = {"in-memory": "`pubsub.in-memory` (one at a time)",
              "redis": "`pubsub.redis` (32 in flight)"}
    apps = (("functions-framework",
             "functions-framework Async runtime, `async def` + `await ctx.send_async`"),
            ("sdk", "bare servicer + SDK `dapr.aio` client"))
    for scenario, results in async_results.items():
        for name, text in apps:
            values = results[name]
            lines.append(f"| {labels[scenario]} | {text} | {statistics.median(values):.0f} | "
                         f"{max(values):.0f} | " + ", ".join(f"{v:.0f}" for v in values) + " |")
    ratios = ", ".join(
        f"{scenario} {100 * statistics.median(r['functions-framework']) / statistics.median(r['sdk']):.0f}%"
        for scenario, r in async_results.items())
    lines += [
        "",
        f"Framework rate as a share of the baseline's: {ratios}.",
        "",
        "## `ctx.send` from a sync (Knative) function",
        "",
        "Sequential keep-alive POSTs (one connection) to three functions behind one daprd "
        "(no app port); the sends go to a `pubsub.in-memory` topic (`PublishEvent`). Added "
        "latency = p50 − p50 of `noop`.",
        "",
        "| function | p50 per request (ms) | added by the send (ms) | best round (ms) | "
        "rounds (p50 ms) |",
        "|---|---:|---:|---:|---|",
    ]
    rows = (("noop", "`noop` (returns)"),
            ("send", "`send`: `ctx.send(data, \"out\")`"),
            ("sdk", "`sdk`: SDK sync `DaprClient.publish_event`"))
    for name, text in rows:
        added = "-" if name == "noop" else f"{lat[name] - lat['noop']:.3f}"
        lines.append(f"| {text} | {lat[name]:.3f} | {added} | {min(send_results[name]):.3f} | "
                     + ", ".join(f"{v:.3f}" for v in send_results[name]) + " |")
    lines.append("")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1000, help="events per async burst")
    parser.add_argument("--requests", type=int, default=400, help="requests per latency sample")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", default=str(ROOT / "bench" / "results-dapr.md"))
    args = parser.parse_args()
    os.sched_setaffinity(0, {int(OTHER_CPU)})  # daprd and Redis inherit it
    work = Path(tempfile.mkdtemp(prefix="ofn-bench-dapr-"))
    load_start = os.getloadavg()[0]
    async_results = {}
    for scenario in SCENARIOS:
        print(f"async events, {scenario}:", flush=True)
        async_results[scenario] = bench_async(work, scenario, args.events, args.rounds)
    print("ctx.send latency:", flush=True)
    send_results = bench_send(work, args.requests, args.rounds)
    text = report(async_results, send_results, args, (load_start, os.getloadavg()[0]))
    Path(args.out).write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
