"""One invocation of the function: its input, its outcome, and per-invocation state.

An `Invocation` is created for every HTTP request or Dapr event. Plugins receive it as
their `ctx`: it is never shared between two invocations, so what a pre hook records is
seen by the post hook of the same invocation and by no other.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from openfunction.config import Component, FunctionConfig

if TYPE_CHECKING:
    from starlette.requests import Request
    from starlette.responses import Response

    from openfunction.context import Context
    from openfunction.plugins.pipeline import PluginSet
    from openfunction.request import BadRequest

# what started the invocation
HTTP = "http"
CLOUDEVENT = "cloudevent"
BINDING = "bindings"
TOPIC = "pubsub"


@dataclass(eq=False)
class Invocation:
    config: FunctionConfig
    trigger: str
    request: "Request | None" = None
    event: Any = None
    data: Any = None
    input: Component | None = None
    carrier: dict[str, str] = field(default_factory=dict)
    """Incoming trace context: HTTP headers, or the inner event's metadata for Dapr events."""
    request_id: str = ""
    started_at: float = field(default_factory=time.time)
    ended_at: float = 0.0
    result: Any = None
    status_code: int = 0
    response: "Response | None" = None
    error: BaseException | None = None
    context: "Context | None" = None
    plugins: "PluginSet | None" = None
    state: dict[str, Any] = field(default_factory=dict)
    """Free per-invocation scratch space for plugins."""
    rejected: "BadRequest | None" = None
    """Why the server could not decode the input (a `BadRequest`): the runner answers 400
    without calling the function; the plugins run as for any invocation."""

    @property
    def name(self) -> str:
        return self.config.name

    @property
    def input_name(self) -> str:
        return self.input.name if self.input else ""

    @property
    def duration(self) -> float:
        """Seconds the function (with its hooks so far) has taken."""
        return (self.ended_at or time.time()) - self.started_at

    @property
    def failed(self) -> bool:
        return self.error is not None or self.status_code >= 500
