"""The events Dapr delivers, as the function sees them in `ctx.event`.

    def handler(ctx, data):
        ctx.input_name            # "cron", the key in FUNC_CONTEXT.inputs
        ctx.event.metadata        # binding metadata / bulk entry metadata
        ctx.event.data            # the payload exactly as delivered (bytes)

`data` (the function's second argument) is the payload decoded: JSON when it is JSON,
`str` for `text/*` content, else `bytes`; the user data of an inner event.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Mapping

_EMPTY: Mapping[str, Any] = MappingProxyType({})


@dataclass(frozen=True)
class BindingEvent:
    """An event from an input binding (`bindings.*`)."""

    input: str
    """The input's name in FUNC_CONTEXT.inputs."""
    component: str
    """The binding component's name."""
    data: bytes
    metadata: Mapping[str, str] = field(default_factory=lambda: _EMPTY)

    @property
    def content_type(self) -> str:
        for key in ("content-type", "Content-Type", "contentType", "content_type"):
            if key in self.metadata:
                return self.metadata[key]
        return ""


@dataclass(frozen=True)
class TopicEvent:
    """A message from a pub/sub topic (`pubsub.*`), with its CloudEvent attributes."""

    input: str
    pubsub: str
    topic: str
    data: bytes
    id: str = ""
    source: str = ""
    type: str = ""
    spec_version: str = ""
    data_content_type: str = ""
    path: str = ""
    extensions: Mapping[str, Any] = field(default_factory=lambda: _EMPTY)
    """Other CloudEvent attributes Dapr sets (`traceparent`, `pubsubname`, ...)."""
    metadata: Mapping[str, str] = field(default_factory=lambda: _EMPTY)
    """Per-message metadata (bulk subscriptions)."""

    @property
    def content_type(self) -> str:
        return self.data_content_type


def is_json_type(content_type: str) -> bool:
    media = content_type.split(";", 1)[0].strip().lower()
    return media in ("application/json", "text/json") or media.endswith("+json")


def decode_data(raw: bytes, content_type: str = "") -> Any:
    """What the function receives as `data` for a payload and its content type.

    Empty: None. JSON content type, or none given: JSON-decoded when it parses.
    `text/*`: str. Anything else (or JSON that does not parse): the bytes.
    """
    if not raw:
        return None
    media = content_type.split(";", 1)[0].strip().lower()
    if not media or is_json_type(media):
        try:
            return json.loads(raw)
        except (ValueError, UnicodeDecodeError, RecursionError):
            pass
    if media.startswith("text/"):
        try:
            return raw.decode()
        except UnicodeDecodeError:
            return raw
    return raw
