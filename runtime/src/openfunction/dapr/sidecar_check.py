"""Compare what `FUNC_CONTEXT` expects of the sidecar with what the sidecar has loaded.

An input naming a component daprd does not have, or an app protocol daprd does not speak,
leaves an Async function waiting forever without a word (daprd logs it, if at all, at info
level in its own log). Once the sidecar is ready, its metadata (`GET /v1.0/metadata`) is read
and each mismatch is logged as an error naming the `FUNC_CONTEXT` field. The check never
stops the function: a sidecar that cannot answer it is only noted at debug level.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any, Mapping

from openfunction.config import Component, FunctionConfig
from openfunction.dapr.connection import http_get

logger = logging.getLogger("openfunction.dapr")

METADATA_PATH = "/v1.0/metadata"
TIMEOUT = 2.0
"""Seconds the metadata request may take."""


def mismatches(config: FunctionConfig, metadata: Mapping[str, Any], protocol: str) -> list[str]:
    """What in `config` the sidecar described by `metadata` cannot serve, one line each."""
    loaded = {
        str(item.get("name", "")): str(item.get("type", ""))
        for item in metadata.get("components") or ()
        if isinstance(item, Mapping)
    }
    problems: list[str] = []
    groups: tuple[tuple[str, Mapping[str, Component]], ...] = (
        ("inputs", config.inputs), ("outputs", config.outputs), ("states", config.states))
    for field, components in groups:
        for key, component in components.items():
            where = f"FUNC_CONTEXT.{field}.{key}"
            actual = loaded.get(component.component_name)
            if actual is None:
                problems.append(
                    f"{where} names the component {component.component_name!r}, which the Dapr "
                    f"sidecar has not loaded (it has: {', '.join(sorted(loaded)) or 'none'}); "
                    + ("no event will arrive from it" if field == "inputs" else
                       "using it will fail")
                    + ": fix componentName, or the component's metadata.name")
            elif _block(actual) != _block(component.component_type):
                problems.append(
                    f"{where} is a {component.component_type} component, but the sidecar's "
                    f"{component.component_name!r} is {actual}: fix componentType")
    connection = metadata.get("appConnectionProperties")
    served = connection.get("protocol") if isinstance(connection, Mapping) else None
    if isinstance(served, str) and served and served.lower() != protocol:
        problems.append(
            f"the function serves Dapr's app callbacks over {protocol}, but the sidecar calls "
            f"the app over {served}: set APP_PROTOCOL={served.lower()}, or daprd's "
            f"--app-protocol {protocol}")
    return problems


def _block(component_type: str) -> str:
    """`bindings`, `pubsub` or `state` of a type such as `bindings.cron`."""
    return component_type.partition(".")[0]


async def check_sidecar(config: FunctionConfig, host: str, http_port: int, protocol: str) -> None:
    """Log each mismatch between `config` and the sidecar at `host:http_port` as an error."""
    try:
        status, body = await asyncio.wait_for(http_get(host, http_port, METADATA_PATH), TIMEOUT)
        if status != 200:
            raise ValueError(f"GET {METADATA_PATH} answered HTTP {status}")
        metadata = json.loads(body)
    except (OSError, asyncio.TimeoutError, ValueError) as exc:
        logger.debug("the Dapr sidecar's metadata could not be read (%s); not checked", exc)
        return
    if not isinstance(metadata, Mapping):
        return
    for problem in mismatches(config, metadata, protocol):
        logger.error("%s", problem)
