"""What both tracing providers record: names, tags, baggage and incoming trace context.

The tags are those of OpenFunction's Go framework, so a trace looks the same whichever
language served the function:

| tag | value |
|---|---|
| `func` | the function's name |
| `instance` | `POD_NAME` (else the host name) |
| `namespace` | `POD_NAMESPACE` |
| `layer` | `faas` |
| `runtime` | `Knative` or `Async` |
| `http.method`, `url` | HTTP requests: the method and `host/path` |
| `component.type` | Dapr events: `bindings` or `pubsub` |

plus every `pluginsTracing.tags` entry (`func`, `instance` and `namespace` always win, as in Go).
"""

from __future__ import annotations

import base64
import os
import socket
from dataclasses import dataclass
from typing import Any, Mapping
from urllib.parse import unquote

from openfunction.config import FunctionConfig
from openfunction.errors import ConfigError
from openfunction.invocation import BINDING, TOPIC, Invocation

FAAS_LAYER = "faas"
ERROR_ON_STATUS = "Error on handling request"


@dataclass(frozen=True)
class TraceSettings:
    """The per-process part of every span, computed once at start-up."""

    service: str
    instance: str
    namespace: str
    runtime: str
    tags: tuple[tuple[str, str], ...]
    baggage: Mapping[str, str]

    @classmethod
    def from_config(
        cls, config: FunctionConfig, environ: Mapping[str, str] | None = None
    ) -> "TraceSettings":
        env = os.environ if environ is None else environ
        instance = instance_name(config, env)
        tracing = config.tracing
        user_tags = dict(tracing.tags) if tracing else {}
        tags = {"layer": FAAS_LAYER, **user_tags, "func": config.name, "instance": instance}
        if config.pod_namespace:
            tags["namespace"] = config.pod_namespace
        return cls(
            service=config.name,
            instance=instance,
            namespace=config.pod_namespace,
            runtime=str(config.runtime),
            tags=tuple(tags.items()),
            baggage=expand_baggage(tracing.baggage, tracing.where("baggage")) if tracing else {},
        )


def instance_name(config: FunctionConfig, environ: Mapping[str, str]) -> str:
    return config.pod_name or environ.get("HOSTNAME") or socket.gethostname()


def event_kind(invocation: Invocation) -> str:
    """`bindings` or `pubsub` for a Dapr event, else ``""``."""
    return trigger_kind(invocation.trigger)


def trigger_kind(trigger: str) -> str:
    """`bindings` or `pubsub` for the trigger of a Dapr event, else ``""``."""
    return trigger if trigger in (BINDING, TOPIC) else ""


def failure(invocation: Invocation) -> str | None:
    """Why the invocation counts as failed (it raised or answered 5xx), or None."""
    error = invocation.error
    if error is not None:
        return f"{type(error).__name__}: {error}"
    if invocation.status_code >= 500:
        return f"{ERROR_ON_STATUS} (status {invocation.status_code})"
    return None


def expand_baggage(baggage: Mapping[str, str],
                   field: str = "FUNC_CONTEXT.pluginsTracing.baggage") -> dict[str, str]:
    """The correlation entries `pluginsTracing.baggage` stands for.

    OpenFunction documents two forms. The header form names a propagation header and its
    encoded value: ``{"key": "sw8-correlation", "value": "<b64 key>:<b64 value>,..."}`` or
    ``{"key": "baggage", "value": "k1=v1,k2=v2"}``; its entries are decoded (an entry that
    cannot be is a `ConfigError` naming `field`). Any other map is taken entry by entry.
    """
    if set(baggage) == {"key", "value"}:
        header, value = baggage["key"].strip().lower(), baggage["value"]
        if header == "sw8-correlation":
            return _decode_sw8_correlation(value, f"{field}.value")
        if header == "baggage":
            return _decode_w3c_baggage(value)
    return dict(baggage)


def _decode_sw8_correlation(value: str, field: str) -> dict[str, str]:
    entries: dict[str, str] = {}
    for item in value.split(","):
        if not item.strip():
            continue
        key, sep, val = item.strip().partition(":")
        try:
            if not sep:
                raise ValueError
            entries[_b64(key)] = _b64(val)
        except (ValueError, UnicodeDecodeError):  # a base64 error is a ValueError
            raise ConfigError(
                f"{field} has an invalid entry: {item.strip()!r}",
                "the sw8-correlation form is a comma-separated list of <base64 key>:<base64 "
                "value> (UTF-8 text, base64-encoded).",
                "encode each entry (tenant=acme is dGVuYW50:YWNtZQ==), or give the baggage "
                'as a map: {"tenant": "acme"}',
            ) from None
    return entries


def _decode_w3c_baggage(value: str) -> dict[str, str]:
    entries: dict[str, str] = {}
    for item in value.split(","):
        member = item.split(";", 1)[0]
        key, sep, val = member.partition("=")
        if sep and key.strip():
            entries[unquote(key.strip())] = unquote(val.strip())
    return entries


def _b64(text: str) -> str:
    return base64.b64decode(text.encode(), validate=True).decode()


def scan_headers(scope: Mapping[str, Any], wanted: frozenset[bytes] | None
                 ) -> tuple[bytes, dict[str, str] | None]:
    """The `Host` header of an HTTP request and its headers named in `wanted` (lower case;
    None: all of them), in one pass; None when it has none of those."""
    host = b""
    found: dict[str, str] | None = None
    for name, value in scope.get("headers", ()):
        if name == b"host":
            host = value
        elif wanted is None or name in wanted:
            if found is None:
                found = {}
            found[name.decode("latin-1")] = value.decode("latin-1")
    return host, found


def host_header(host: bytes, scope: Mapping[str, object]) -> str:
    """The `Host` header's value, else the address the server listens on."""
    if host:
        return host.decode("latin-1")
    server: Any = scope.get("server")
    if server:
        address, port = server
        return f"{address}:{port}"
    return ""
