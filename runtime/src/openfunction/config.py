"""The function's configuration, read once at start-up.

OpenFunction's controller writes the function context as JSON into `FUNC_CONTEXT`.
Two shapes exist and both are accepted:

* the v1beta1 shape (OpenFunction 0.6): `name`, `version`, `runtime` (`Knative` |
  `Async`), `port`, `httpPattern`, `inputs` / `outputs` / `states` (maps of name to
  `{componentName, componentType, uri, metadata, operation}`), `prePlugins`,
  `postPlugins`, `pluginsTracing`;
* the v1beta2 shape (OpenFunction 1.x): `name`, `version`, `triggers` (`http` with a
  `port`, `dapr` with a list of `{name, type, topic, inputName}`), `inputs` / `outputs` /
  `states` with `topic` instead of `uri`, `preHooks`, `postHooks`, `tracing`.

Both are parsed into one frozen `FunctionConfig`. `POD_NAME`, `POD_NAMESPACE` and
`CONTEXT_MODE` are read as OpenFunction's Go framework reads them. Without
`FUNC_CONTEXT` the function runs as a local Knative-style sync function.
"""

from __future__ import annotations

import builtins
import json
import os
import re
from dataclasses import dataclass, field
from enum import Enum
from types import MappingProxyType
from typing import Any, Mapping

from openfunction.errors import ConfigError

FUNC_CONTEXT_ENV = "FUNC_CONTEXT"
DEFAULT_PORT = 8080
DEFAULT_HTTP_PATTERN = "/"
KUBERNETES_MODE = "kubernetes"
SELF_HOST_MODE = "self-host"
TRACING_PROVIDERS = ("skywalking", "opentelemetry")
BUILDING_BLOCKS = ("bindings", "pubsub", "state")

_EMPTY: Mapping[str, str] = MappingProxyType({})


class Runtime(str, Enum):
    KNATIVE = "Knative"
    ASYNC = "Async"

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class Component:
    """A Dapr component the function reads from, writes to or keeps state in."""

    name: str
    component_name: str
    component_type: str
    uri: str = ""
    metadata: Mapping[str, str] = field(default_factory=lambda: _EMPTY)
    operation: str = ""

    @property
    def building_block(self) -> str:
        """`bindings`, `pubsub` or `state`."""
        return self.component_type.split(".", 1)[0]

    @property
    def is_binding(self) -> bool:
        return self.building_block == "bindings"

    @property
    def is_pubsub(self) -> bool:
        return self.building_block == "pubsub"

    @property
    def topic(self) -> str:
        return self.uri

    @property
    def target(self) -> str:
        """What a trace names as the peer: the topic of a pub/sub, else the component."""
        return self.uri or self.component_name


@dataclass(frozen=True)
class Exporter:
    name: str = ""
    endpoint: str = ""
    headers: str = ""
    compression: str = ""
    timeout: str = ""
    protocol: str = ""


@dataclass(frozen=True)
class TracingProvider:
    name: str
    oap_server: str = ""
    exporter: Exporter | None = None


@dataclass(frozen=True)
class TracingConfig:
    enabled: bool
    provider: TracingProvider | None = None
    tags: Mapping[str, str] = field(default_factory=lambda: _EMPTY)
    baggage: Mapping[str, str] = field(default_factory=lambda: _EMPTY)
    field_name: str = "pluginsTracing"
    """The `FUNC_CONTEXT` field it was read from (`tracing` in the v1beta2 shape), for errors."""

    def where(self, path: str = "") -> str:
        """`FUNC_CONTEXT.<field>.<path>`: how error messages name one of its fields."""
        return f"{FUNC_CONTEXT_ENV}.{self.field_name}{'.' + path if path else ''}"


@dataclass(frozen=True)
class DaprEndpoint:
    """Where the Dapr sidecar listens (`DAPR_HOST`, `DAPR_GRPC_PORT`, `DAPR_HTTP_PORT`)."""

    host: str = "127.0.0.1"
    grpc_port: int = 50001
    http_port: int = 3500

    @property
    def grpc_address(self) -> str:
        return f"{self.host}:{self.grpc_port}"


@dataclass(frozen=True)
class FunctionConfig:
    name: str = "function"
    version: str = ""
    runtime: Runtime = Runtime.KNATIVE
    port: int = DEFAULT_PORT
    http_pattern: str = DEFAULT_HTTP_PATTERN
    inputs: Mapping[str, Component] = field(default_factory=lambda: MappingProxyType({}))
    outputs: Mapping[str, Component] = field(default_factory=lambda: MappingProxyType({}))
    states: Mapping[str, Component] = field(default_factory=lambda: MappingProxyType({}))
    pre_plugins: tuple[str, ...] = ()
    post_plugins: tuple[str, ...] = ()
    pre_field: str = "prePlugins"
    post_field: str = "postPlugins"
    """The `FUNC_CONTEXT` fields the plugin lists were read from (`preHooks` / `postHooks` in
    the v1beta2 shape), for errors."""
    tracing: TracingConfig | None = None
    mode: str = SELF_HOST_MODE
    pod_name: str = ""
    pod_namespace: str = ""
    dapr: DaprEndpoint = field(default_factory=DaprEndpoint)
    from_func_context: bool = False

    @property
    def tracing_enabled(self) -> bool:
        return bool(self.tracing and self.tracing.enabled and self.tracing.provider)

    @property
    def tracing_provider(self) -> str:
        if self.tracing_enabled:
            assert self.tracing and self.tracing.provider
            return self.tracing.provider.name
        return ""


def load_config(environ: Mapping[str, str] | None = None) -> FunctionConfig:
    """Read the configuration from the environment (`os.environ` by default)."""
    env = os.environ if environ is None else environ
    raw = env.get(FUNC_CONTEXT_ENV, "")
    dapr = _dapr_endpoint(env)
    if not raw.strip():
        return FunctionConfig(
            name=env.get("FUNCTION_TARGET") or env.get("FUNC_NAME") or "function",
            mode=SELF_HOST_MODE,
            pod_name=env.get("POD_NAME", ""),
            pod_namespace=env.get("POD_NAMESPACE", ""),
            dapr=dapr,
        )
    return parse_function_context(raw, env, dapr=dapr)


def parse_function_context(
    raw: str, environ: Mapping[str, str] | None = None, *, dapr: DaprEndpoint | None = None
) -> FunctionConfig:
    """Parse the JSON text of `FUNC_CONTEXT` (either shape)."""
    env = {} if environ is None else environ
    try:
        doc = json.loads(raw)
    except RecursionError:
        raise ConfigError(
            f"{FUNC_CONTEXT_ENV} is not valid JSON",
            "it is nested too deeply to be read.",
            f"set {FUNC_CONTEXT_ENV} to the JSON object OpenFunction writes",
        ) from None
    except json.JSONDecodeError as exc:
        raise ConfigError(
            f"{FUNC_CONTEXT_ENV} is not valid JSON",
            f"{exc.msg} at line {exc.lineno} column {exc.colno}",
            f"set {FUNC_CONTEXT_ENV} to the JSON object OpenFunction writes, "
            'e.g. {"name": "hello", "version": "v1", "runtime": "Knative"}',
        ) from None
    reader = _Reader(FUNC_CONTEXT_ENV)
    obj = reader.object(doc, "")
    if "triggers" in obj or "preHooks" in obj or "postHooks" in obj or "tracing" in obj:
        fields = _parse_v1beta2(reader, obj)
    else:
        fields = _parse_v1beta1(reader, obj)

    mode = _context_mode(env)
    pod_name = env.get("POD_NAME", "")
    pod_namespace = env.get("POD_NAMESPACE", "")
    if mode == KUBERNETES_MODE:
        for var, value in (("POD_NAME", pod_name), ("POD_NAMESPACE", pod_namespace)):
            if not value:
                raise ConfigError(
                    f"{var} is not set",
                    f"{FUNC_CONTEXT_ENV} is set and CONTEXT_MODE is 'kubernetes' (the default), "
                    f"which needs the pod's name and namespace.",
                    f"in Kubernetes OpenFunction sets {var}; for a local run set "
                    f"CONTEXT_MODE=self-host (or set {var} yourself)",
                )

    tracing: TracingConfig | None = fields.pop("tracing")
    pre: list[str] = fields.pop("pre_plugins")
    post: list[str] = fields.pop("post_plugins")
    if tracing is not None and tracing.enabled:
        provider = tracing.provider
        if provider is None or not provider.name:
            raise ConfigError(
                f"{tracing.where('provider')} is missing",
                "tracing is enabled but no provider is named.",
                'add "provider": {"name": "skywalking", "oapServer": "<host>:11800"} '
                'or {"name": "opentelemetry", ...}, or set "enabled": false',
            )
        if provider.name not in TRACING_PROVIDERS:
            raise ConfigError(
                f"{tracing.where('provider.name')} is invalid: {provider.name!r}",
                f"known providers: {', '.join(TRACING_PROVIDERS)}.",
                "use one of the known providers",
            )
        # As OpenFunction's Go framework does: the provider runs last before the
        # function and first after it, so its span wraps the function.
        if provider.name not in pre:
            pre.append(provider.name)
        if provider.name not in post:
            post.insert(0, provider.name)

    return FunctionConfig(
        **fields,
        pre_plugins=tuple(pre),
        post_plugins=tuple(post),
        tracing=tracing,
        mode=mode,
        pod_name=pod_name,
        pod_namespace=pod_namespace,
        dapr=dapr or _dapr_endpoint(env),
        from_func_context=True,
    )


def _context_mode(env: Mapping[str, str]) -> str:
    text = env.get("CONTEXT_MODE", "")
    if text.strip() in ("", KUBERNETES_MODE):
        return KUBERNETES_MODE
    if text.strip() == SELF_HOST_MODE:
        return SELF_HOST_MODE
    raise ConfigError(
        f"CONTEXT_MODE is invalid: {text!r}",
        f"it is '{KUBERNETES_MODE}' (the default: in a pod, which needs POD_NAME and "
        f"POD_NAMESPACE) or '{SELF_HOST_MODE}' (anywhere else).",
        f"set CONTEXT_MODE={SELF_HOST_MODE} for a local run, or unset it",
    )


def _parse_v1beta1(reader: "_Reader", obj: Mapping[str, Any]) -> dict[str, Any]:
    name = reader.string(obj.get("name", ""), "name") or "function"
    version = reader.string(obj.get("version", ""), "version")
    return {
        "name": name,
        "version": version,
        "runtime": _runtime(reader, obj.get("runtime"), "runtime"),
        "port": reader.port(obj.get("port"), "port"),
        "http_pattern": _http_pattern(reader, obj.get("httpPattern")),
        "inputs": _components(reader, obj.get("inputs"), "inputs", ("bindings", "pubsub")),
        "outputs": _components(reader, obj.get("outputs"), "outputs", ("bindings", "pubsub")),
        "states": _components(reader, obj.get("states"), "states", ("state",)),
        "pre_plugins": reader.string_list(obj.get("prePlugins"), "prePlugins"),
        "post_plugins": reader.string_list(obj.get("postPlugins"), "postPlugins"),
        "tracing": _tracing(reader, obj.get("pluginsTracing"), "pluginsTracing"),
    }


def _parse_v1beta2(reader: "_Reader", obj: Mapping[str, Any]) -> dict[str, Any]:
    triggers = reader.object(obj.get("triggers") or {}, "triggers")
    http = reader.object(triggers.get("http") or {}, "triggers.http")
    dapr_triggers = reader.list(triggers.get("dapr"), "triggers.dapr")
    inputs = dict(_components(reader, obj.get("inputs"), "inputs", ("bindings", "pubsub")))
    for index, item in enumerate(dapr_triggers):
        where = f"triggers.dapr[{index}]"
        trig = reader.object(item, where)
        name = reader.string(trig.get("name"), f"{where}.name", required=True)
        ctype = reader.string(trig.get("type", ""), f"{where}.type")
        key = reader.string(trig.get("inputName", ""), f"{where}.inputName") or name
        if key in inputs:
            continue
        if ctype:
            _check_component_type(reader, ctype, f"{where}.type", ("bindings", "pubsub"))
        topic = reader.string(trig.get("topic", ""), f"{where}.topic")
        inputs[key] = Component(
            name=key,
            component_name=name,
            component_type=ctype or ("pubsub" if topic else "bindings"),
            uri=topic or (name if ctype.startswith("bindings") else ""),
        )
    runtime = Runtime.ASYNC if dapr_triggers else Runtime.KNATIVE
    if "runtime" in obj:
        runtime = _runtime(reader, obj.get("runtime"), "runtime")
    tracing_field = "tracing" if "tracing" in obj else "pluginsTracing"
    pre_field = "preHooks" if "preHooks" in obj else "prePlugins"
    post_field = "postHooks" if "postHooks" in obj else "postPlugins"
    return {
        "name": reader.string(obj.get("name", ""), "name") or "function",
        "version": reader.string(obj.get("version", ""), "version"),
        "runtime": runtime,
        "port": reader.port(http.get("port", obj.get("port")), "triggers.http.port"),
        "http_pattern": _http_pattern(reader, obj.get("httpPattern")),
        "inputs": MappingProxyType(inputs),
        "outputs": _components(reader, obj.get("outputs"), "outputs", ("bindings", "pubsub")),
        "states": _components(reader, obj.get("states"), "states", ("state",)),
        "pre_plugins": reader.string_list(obj.get(pre_field), pre_field),
        "post_plugins": reader.string_list(obj.get(post_field), post_field),
        "pre_field": pre_field,
        "post_field": post_field,
        "tracing": _tracing(reader, obj.get(tracing_field), tracing_field),
    }


def _runtime(reader: "_Reader", value: Any, where: str) -> Runtime:
    if value is None or value == "":
        raise ConfigError(
            f"{FUNC_CONTEXT_ENV}.{where} is missing",
            "OpenFunction always sets it: 'Knative' (sync, HTTP) or 'Async' (events through Dapr).",
            f'add "{where}": "Knative" (or "Async")',
        )
    text = reader.string(value, where)
    for runtime in Runtime:
        if text.lower() == runtime.value.lower():
            return runtime
    raise ConfigError(
        f"{FUNC_CONTEXT_ENV}.{where} is invalid: {text!r}",
        "the runtime must be 'Knative' (sync, HTTP) or 'Async' (events through Dapr).",
        f'set "{where}": "Knative" or "{where}": "Async"',
    )


def _http_pattern(reader: "_Reader", value: Any) -> str:
    pattern = reader.string(value if value is not None else "", "httpPattern")
    if not pattern:
        return DEFAULT_HTTP_PATTERN
    if not pattern.startswith("/"):
        raise ConfigError(
            f"{FUNC_CONTEXT_ENV}.httpPattern is invalid: {pattern!r}",
            "an HTTP route must start with '/'.",
            f'use "httpPattern": "/{pattern}"',
        )
    from starlette.routing import compile_path

    try:
        compile_path(pattern)
    except (AssertionError, ValueError, re.error) as exc:
        raise ConfigError(
            f"{FUNC_CONTEXT_ENV}.httpPattern is invalid: {pattern!r}",
            f"{exc}. A route is a path with {{name}} parameters, optionally typed "
            "{name:str}, {name:int}, {name:float}, {name:uuid} or {name:path}.",
            'use e.g. "httpPattern": "/hello/{name}"',
        ) from None
    return pattern


def _check_component_type(
    reader: "_Reader", ctype: str, where: str, allowed: tuple[str, ...]
) -> None:
    block, dot, rest = ctype.partition(".")
    if not dot or not rest or block not in allowed:
        kinds = " or ".join(f"'{b}.*'" for b in allowed)
        raise ConfigError(
            f"{reader.prefix}.{where} is invalid: {ctype!r}",
            f"a component type here must be {kinds}, e.g. "
            f"'{allowed[0]}.{'cron' if allowed[0] == 'bindings' else 'redis'}'.",
            "use the type of the Dapr component (its spec.type)",
        )


def _components(
    reader: "_Reader", value: Any, where: str, allowed: tuple[str, ...]
) -> Mapping[str, Component]:
    if value is None:
        return MappingProxyType({})
    items = reader.object(value, where)
    result: dict[str, Component] = {}
    for key, spec in items.items():
        path = f"{where}.{key}"
        obj = reader.object(spec, path)
        cname = reader.string(obj.get("componentName", ""), f"{path}.componentName")
        ctype = reader.string(obj.get("componentType", ""), f"{path}.componentType", required=True)
        _check_component_type(reader, ctype, f"{path}.componentType", allowed)
        uri = reader.string(obj.get("uri", ""), f"{path}.uri") or reader.string(
            obj.get("topic", ""), f"{path}.topic"
        )
        if not uri and ctype.startswith("bindings"):
            uri = cname or key
        if not uri and where == "outputs" and ctype.startswith("pubsub"):
            raise ConfigError(
                f"{reader.prefix}.{path}.uri is missing",
                "a pub/sub output publishes to a topic, which its uri (topic in the v1beta2 "
                "shape) names.",
                f'add "uri": "<topic>" to {path}',
            )
        metadata = reader.string_map(obj.get("metadata"), f"{path}.metadata")
        result[key] = Component(
            name=key,
            component_name=cname or key,
            component_type=ctype,
            uri=uri,
            metadata=metadata,
            operation=reader.string(obj.get("operation", ""), f"{path}.operation"),
        )
    return MappingProxyType(result)


def _tracing(reader: "_Reader", value: Any, where: str) -> TracingConfig | None:
    if value is None:
        return None
    obj = reader.object(value, where)
    enabled = obj.get("enabled", False)
    if not isinstance(enabled, bool):
        raise reader.type_error(f"{where}.enabled", "true or false", enabled)
    provider = None
    if obj.get("provider") is not None:
        pobj = reader.object(obj["provider"], f"{where}.provider")
        exporter = None
        if pobj.get("exporter") is not None:
            eobj = reader.object(pobj["exporter"], f"{where}.provider.exporter")
            exporter = Exporter(
                **{
                    key: reader.string(eobj.get(key, ""), f"{where}.provider.exporter.{key}")
                    for key in ("name", "endpoint", "headers", "compression", "timeout", "protocol")
                }
            )
        provider = TracingProvider(
            name=reader.string(pobj.get("name", ""), f"{where}.provider.name"),
            oap_server=reader.string(pobj.get("oapServer", ""), f"{where}.provider.oapServer"),
            exporter=exporter,
        )
    return TracingConfig(
        enabled=enabled,
        provider=provider,
        tags=reader.string_map(obj.get("tags"), f"{where}.tags"),
        baggage=reader.string_map(obj.get("baggage"), f"{where}.baggage"),
        field_name=where,
    )


def _dapr_endpoint(env: Mapping[str, str]) -> DaprEndpoint:
    def port(var: str, default: int) -> int:
        text = env.get(var, "")
        if not text:
            return default
        if not (text.isascii() and text.isdigit()) or not 0 < int(text) < 65536:
            raise ConfigError(
                f"{var} is invalid: {text!r}",
                "it must be a TCP port number.",
                f"set {var} to the sidecar's port, or unset it for the default {default}",
            )
        return int(text)

    return DaprEndpoint(
        host=env.get("DAPR_HOST") or "127.0.0.1",
        grpc_port=port("DAPR_GRPC_PORT", 50001),
        http_port=port("DAPR_HTTP_PORT", 3500),
    )


class _Reader:
    """Typed access to the decoded JSON, with errors that name the field."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix

    def _path(self, where: str) -> str:
        return f"{self.prefix}.{where}" if where else self.prefix

    def type_error(self, where: str, expected: str, value: Any) -> ConfigError:
        return ConfigError(
            f"{self._path(where)} has the wrong type",
            f"expected {expected}, got {_json_type(value)} ({json.dumps(value)[:60]}).",
            f"make {self._path(where)} {expected}",
        )

    def object(self, value: Any, where: str) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise self.type_error(where, "a JSON object", value)
        return value

    def list(self, value: Any, where: str) -> list[Any]:
        if value is None:
            return []
        if not isinstance(value, list):
            raise self.type_error(where, "a JSON array", value)
        return value

    def string(self, value: Any, where: str, *, required: bool = False) -> str:
        if not isinstance(value, str):
            raise self.type_error(where, "a string", value)
        if required and not value:
            raise ConfigError(
                f"{self._path(where)} is missing",
                "this field is required.",
                f"set {self._path(where)}",
            )
        return value

    def string_list(self, value: Any, where: str) -> "builtins.list[str]":
        items = self.list(value, where)
        for index, item in enumerate(items):
            self.string(item, f"{where}[{index}]")
        return list(items)

    def string_map(self, value: Any, where: str) -> Mapping[str, str]:
        if value is None:
            return _EMPTY
        obj = self.object(value, where)
        for key, item in obj.items():
            self.string(item, f"{where}.{key}")
        return MappingProxyType(dict(obj))

    def port(self, value: Any, where: str) -> int:
        if value is None or value == "":
            return DEFAULT_PORT
        if isinstance(value, bool) or not isinstance(value, (int, str)):
            raise self.type_error(where, "a port number", value)
        text = str(value)
        if not (text.isascii() and text.isdigit()) or not 0 < int(text) < 65536:
            raise ConfigError(
                f"{self._path(where)} is invalid: {value!r}",
                "a port is a number from 1 to 65535.",
                f"set {self._path(where)} to a port number such as \"8080\"",
            )
        return int(text)


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__
