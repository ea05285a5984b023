"""Real Dapr building blocks for integration tests: daprd, Redis and Mosquitto.

    with start_redis() as redis, start_mosquitto() as mqtt:
        resources = write_components(tmp_path / "resources", [
            component("cron", "bindings.cron", schedule="@every 1s"),
            redis_component("sink", "bindings.redis", redis),
        ])
        with start_daprd(resources, app_port=port) as daprd:
            ...

Every server listens on a free 127.0.0.1 port and writes its configuration and data
into a temporary directory. A missing binary fails the test with the package or make
target that provides it; nothing is skipped.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

import pytest

from support.process import Process, free_port, start_process, wait_for_port

DAPR_VERSION = "1.16.5"
DEFAULT_DAPRD = Path(os.environ.get("OFN_CACHE", Path.home() / ".cache/ofn-python")) / (
    f"bin/daprd-v{DAPR_VERSION}/daprd"
)


# ---------------------------------------------------------------- binaries


def daprd_binary() -> str:
    """The daprd built by `make daprd` (`OFN_DAPRD` when set)."""
    path = Path(os.environ.get("OFN_DAPRD") or DEFAULT_DAPRD)
    if not path.is_file() or not os.access(path, os.X_OK):
        pytest.fail(
            f"daprd is missing: no executable at {path}. "
            "Build it with `make daprd` (it compiles github.com/dapr/dapr/cmd/daprd at the "
            "pinned DAPR_VERSION into the tool cache), or point OFN_DAPRD at a daprd binary.",
            pytrace=False,
        )
    return str(path)


def system_binary(name: str, package: str) -> str:
    path = shutil.which(name) or next(
        (str(p) for p in (Path("/usr/sbin") / name, Path("/usr/bin") / name) if p.exists()), None
    )
    if path is None:
        pytest.fail(
            f"{name} is missing: it is not on PATH. Install the Debian package "
            f"`{package}` (`apt-get install {package}`, or `make system`).",
            pytrace=False,
        )
    return path


# ---------------------------------------------------------------- Redis


@dataclass
class Redis:
    process: Process
    port: int

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def cli(self, *args: str, timeout: float = 10.0) -> str:
        cli = system_binary("redis-cli", "redis-tools")
        result = subprocess.run(
            [cli, "-h", "127.0.0.1", "-p", str(self.port), "--raw", *args],
            capture_output=True, text=True, timeout=timeout, check=True,
        )
        return result.stdout.rstrip("\n")

    def stream(self, key: str) -> list[dict[str, Any]]:
        """The messages `pubsub.redis` published to the topic `key`: their CloudEvents."""
        out = self.cli("XRANGE", key, "-", "+")
        lines = out.splitlines()
        events = []
        for index, line in enumerate(lines):
            if line == "data" and index + 1 < len(lines):
                events.append(json.loads(lines[index + 1]))
        return events


@contextmanager
def start_redis() -> Iterator[Redis]:
    binary = system_binary("redis-server", "redis-server")
    workdir = Path(tempfile.mkdtemp(prefix="ofn-redis-"))
    port = free_port()
    conf = workdir / "redis.conf"
    conf.write_text(
        f"port {port}\nbind 127.0.0.1\nprotected-mode no\nsave \"\"\nappendonly no\n"
        f"dir {workdir}\ndaemonize no\n"
    )
    with start_process([binary, str(conf)], port=port, name="redis") as process:
        yield Redis(process, port)
    shutil.rmtree(workdir, ignore_errors=True)


# ---------------------------------------------------------------- Mosquitto


@dataclass
class Mosquitto:
    process: Process
    port: int

    @property
    def url(self) -> str:
        return f"tcp://127.0.0.1:{self.port}"

    @contextmanager
    def subscribe(self, topic: str) -> Iterator["MqttSubscription"]:
        """Collect messages published to `topic` (a `mosquitto_sub` process)."""
        binary = system_binary("mosquitto_sub", "mosquitto-clients")
        cmd = [binary, "-h", "127.0.0.1", "-p", str(self.port), "-t", topic, "-q", "1", "-v",
               "-i", f"ofn-test-{free_port()}"]
        with start_process(cmd, name="mqtt-sub") as process:
            time.sleep(0.3)  # let the subscription reach the broker
            yield MqttSubscription(process, topic)


@dataclass
class MqttSubscription:
    process: Process
    topic: str

    def messages(self) -> list[str]:
        prefix = f"{self.topic} "
        return [line[len(prefix):] for line in self.process.log.splitlines()
                if line.startswith(prefix)]

    def wait_for(self, count: int, timeout: float = 20.0) -> list[str]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            messages = self.messages()
            if len(messages) >= count:
                return messages
            time.sleep(0.1)
        raise AssertionError(
            f"timed out after {timeout}s waiting for {count} MQTT messages on {self.topic!r}; "
            f"got {self.messages()!r}"
        )


@contextmanager
def start_mosquitto() -> Iterator[Mosquitto]:
    binary = system_binary("mosquitto", "mosquitto")
    workdir = Path(tempfile.mkdtemp(prefix="ofn-mosquitto-"))
    port = free_port()
    conf = workdir / "mosquitto.conf"
    conf.write_text(
        f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n"
        "log_dest stdout\n"
    )
    with start_process([binary, "-c", str(conf)], port=port, name="mosquitto") as process:
        yield Mosquitto(process, port)
    shutil.rmtree(workdir, ignore_errors=True)


# ---------------------------------------------------------------- components


def component(name: str, ctype: str, version: str = "v1", **metadata: Any) -> dict[str, Any]:
    """A Dapr Component resource (`spec.type` = `ctype`, metadata from keyword arguments)."""
    return {
        "apiVersion": "dapr.io/v1alpha1",
        "kind": "Component",
        "metadata": {"name": name},
        "spec": {
            "type": ctype,
            "version": version,
            "metadata": [{"name": key, "value": str(value)} for key, value in metadata.items()],
        },
    }


def redis_component(name: str, ctype: str, redis: Redis, **metadata: Any) -> dict[str, Any]:
    """A `bindings.redis`, `pubsub.redis` or `state.redis` component on `redis`."""
    return component(name, ctype, redisHost=redis.address, redisPassword="", **metadata)


def mqtt_component(name: str, ctype: str, broker: Mosquitto, **metadata: Any) -> dict[str, Any]:
    """A `pubsub.mqtt3` (or `bindings.mqtt3`) component on `broker`."""
    defaults = {"url": broker.url, "qos": "1", "retain": "false", "cleanSession": "false",
                "consumerID": f"ofn-{name}-{free_port()}"}
    return component(name, ctype, **{**defaults, **metadata})


def resiliency(name: str, component_name: str, *, direction: str = "inbound",
               retries: int = 10, interval: str = "200ms") -> dict[str, Any]:
    """A Resiliency resource retrying `component_name` at a constant interval."""
    return {
        "apiVersion": "dapr.io/v1alpha1",
        "kind": "Resiliency",
        "metadata": {"name": name},
        "spec": {
            "policies": {"retries": {"fast": {
                "policy": "constant", "duration": interval, "maxRetries": retries}}},
            "targets": {"components": {component_name: {direction: {"retry": "fast"}}}},
        },
    }


def write_components(directory: str | os.PathLike[str],
                     resources: Sequence[Mapping[str, Any]]) -> Path:
    """Write each resource as its own YAML file (JSON is valid YAML) into `directory`."""
    path = Path(directory)
    path.mkdir(parents=True, exist_ok=True)
    for index, resource in enumerate(resources):
        name = resource["metadata"]["name"]
        (path / f"{index:02d}-{name}.yaml").write_text(json.dumps(resource, indent=2) + "\n")
    return path


def configuration(name: str, spec: Mapping[str, Any]) -> dict[str, Any]:
    """A Dapr Configuration resource (for `--config`)."""
    return {"apiVersion": "dapr.io/v1alpha1", "kind": "Configuration",
            "metadata": {"name": name}, "spec": dict(spec)}


# ---------------------------------------------------------------- daprd


@dataclass(frozen=True)
class SidecarPorts:
    """The sidecar's API ports, chosen before it starts (the function may start first)."""

    grpc: int
    http: int

    @classmethod
    def free(cls) -> "SidecarPorts":
        return cls(free_port(), free_port())

    @property
    def env(self) -> dict[str, str]:
        """What the function process needs to find this sidecar."""
        return {"DAPR_HOST": "127.0.0.1", "DAPR_GRPC_PORT": str(self.grpc),
                "DAPR_HTTP_PORT": str(self.http)}


@dataclass
class Daprd:
    process: Process
    app_id: str
    app_port: int | None
    ports: SidecarPorts

    @property
    def grpc_port(self) -> int:
        return self.ports.grpc

    @property
    def http_port(self) -> int:
        return self.ports.http

    @property
    def env(self) -> dict[str, str]:
        return self.ports.env

    @property
    def log(self) -> str:
        return self.process.log

    def metadata(self) -> dict[str, Any]:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.http_port}/v1.0/metadata",
                                    timeout=5) as response:
            return json.loads(response.read())

    def publish(self, pubsub: str, topic: str, data: bytes | str | Any,
                content_type: str = "application/json") -> None:
        """Publish through the sidecar's HTTP API."""
        if not isinstance(data, (bytes, str)):
            data = json.dumps(data)
        body = data.encode() if isinstance(data, str) else data
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.http_port}/v1.0/publish/{pubsub}/{topic}",
            data=body, method="POST", headers={"content-type": content_type})
        with urllib.request.urlopen(request, timeout=10) as response:
            assert response.status == 204, response.status

    def get_state(self, store: str, key: str) -> bytes | None:
        """A value of a state store, through the sidecar's HTTP API (None when absent)."""
        url = f"http://127.0.0.1:{self.http_port}/v1.0/state/{store}/{key}"
        with urllib.request.urlopen(url, timeout=10) as response:
            body = response.read()
            return body if response.status == 200 and body else None

    def terminate(self, timeout: float = 15.0) -> int:
        return self.process.terminate(timeout=timeout)


def _http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as response:
            return 200 <= response.status < 300
    except (urllib.error.URLError, OSError):
        return False


def wait_for_daprd(daprd: Daprd, *, timeout: float = 30.0, app: bool = True) -> None:
    """Wait for `/v1.0/healthz/outbound` (components loaded), then `/v1.0/healthz`."""
    base = f"http://127.0.0.1:{daprd.http_port}/v1.0/healthz"
    deadline = time.monotonic() + timeout
    for url in ([f"{base}/outbound", base] if app else [f"{base}/outbound"]):
        while not _http_ok(url):
            if daprd.process.proc.poll() is not None:
                raise RuntimeError(f"daprd exited with {daprd.process.proc.returncode}:\n{daprd.log}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"daprd not ready ({url}) after {timeout}s:\n{daprd.log}")
            time.sleep(0.1)


@contextmanager
def start_daprd(resources: str | os.PathLike[str], app_port: int | None, *,
                ports: SidecarPorts | None = None,
                app_id: str = "function", app_protocol: str = "grpc",
                config: str | os.PathLike[str] | None = None,
                wait: str = "outbound", timeout: float = 30.0,
                log_level: str = "info", extra_args: Sequence[str] = (),
                env: Mapping[str, str] | None = None) -> Iterator[Daprd]:
    """Run daprd standalone (no placement, no scheduler, no Kubernetes) on loopback ports.

    `app_port` None: a sidecar for outputs only (no app callbacks). `wait`: "outbound"
    returns once components are loaded, "app" also waits for `/v1.0/healthz` (daprd
    connected to the running app), "none" returns at once.

    With the gRPC app protocol start the function first: daprd asks a gRPC app for its
    input bindings once, and when its connection to the app is still backing off from
    an earlier refused attempt the answer is lost and the bindings stay unsubscribed.
    """
    binary = daprd_binary()
    ports = ports or SidecarPorts.free()
    internal_port, metrics_port = free_port(), free_port()
    cmd = [binary, "--app-id", app_id, "--mode", "standalone"]
    if app_port is not None:
        cmd += ["--app-port", str(app_port), "--app-protocol", app_protocol,
                "--app-channel-address", "127.0.0.1"]
    cmd += [
        "--dapr-listen-addresses", "127.0.0.1",
        "--dapr-grpc-port", str(ports.grpc), "--dapr-http-port", str(ports.http),
        "--dapr-internal-grpc-port", str(internal_port),
        "--metrics-port", str(metrics_port), "--enable-metrics=false",
        "--placement-host-address", "", "--scheduler-host-address", "",
        "--resources-path", str(resources),
        "--dapr-graceful-shutdown-seconds", "1",
        "--log-level", log_level,
    ]
    if config is not None:
        cmd += ["--config", str(config)]
    cmd += list(extra_args)
    home = Path(tempfile.mkdtemp(prefix="ofn-daprd-home-"))
    # Kubernetes-style name resolution only formats DNS names: unlike the default mDNS
    # it announces nothing on the network.
    quiet = home / "nameresolution.yaml"
    quiet.write_text(json.dumps(configuration("ofn-nameresolution", {
        "nameResolution": {"component": "kubernetes"}})))
    cmd += ["--config", str(quiet)]
    with start_process(cmd, env={"HOME": str(home), "DAPR_HOST_IP": "127.0.0.1", **(env or {})},
                       name="daprd") as process:
        daprd = Daprd(process, app_id, app_port, ports)
        if wait != "none":
            wait_for_port(ports.http, process.proc, timeout, process.log_path)
        if wait in ("outbound", "app"):
            wait_for_daprd(daprd, timeout=timeout, app=wait == "app")
        yield daprd
    shutil.rmtree(home, ignore_errors=True)


# ---------------------------------------------------------------- functions


def input_binding(component: str, ctype: str = "bindings.cron") -> dict[str, Any]:
    return {"componentName": component, "componentType": ctype}


def topic(component: str, name: str, ctype: str = "pubsub.redis",
          **metadata: str) -> dict[str, Any]:
    spec: dict[str, Any] = {"componentName": component, "componentType": ctype, "uri": name}
    if metadata:
        spec["metadata"] = metadata
    return spec


def output_binding(component: str, ctype: str = "bindings.redis", operation: str = "create",
                   **metadata: str) -> dict[str, Any]:
    return {"componentName": component, "componentType": ctype, "operation": operation,
            "metadata": metadata}


def function_context(name: str, port: int, *, runtime: str = "Async",
                     inputs: Mapping[str, Any] | None = None,
                     outputs: Mapping[str, Any] | None = None,
                     states: Mapping[str, Any] | None = None,
                     tracing: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """A FUNC_CONTEXT (OpenFunction's v1beta1 shape) for a function on `port`."""
    ctx: dict[str, Any] = {"name": name, "version": "v1", "runtime": runtime, "port": str(port)}
    for key, value in (("inputs", inputs), ("outputs", outputs), ("states", states),
                       ("pluginsTracing", tracing)):
        if value:
            ctx[key] = dict(value)
    return ctx


def function_env(func_context: Mapping[str, Any], ports: SidecarPorts,
                 **extra: str) -> dict[str, str]:
    """The environment OpenFunction gives a function with a sidecar, outside Kubernetes."""
    return {"FUNC_CONTEXT": json.dumps(func_context), "CONTEXT_MODE": "self-host",
            **ports.env, **extra}


def wait_until(check, *, timeout: float = 20.0, what: str = "a condition",
               interval: float = 0.1) -> Any:
    """Poll `check()` until it returns something truthy; bounded."""
    deadline = time.monotonic() + timeout
    value = None
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}; last value {value!r}")
