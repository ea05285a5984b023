"""Dapr's app callback API over HTTP (`APP_PROTOCOL=http`, as the Go framework selects it).

    GET  /dapr/subscribe           the topic subscriptions: route /topics/<input name>
    GET  /dapr/config              {} (no actors)
    OPTIONS /<binding component>   200 for each binding input (daprd asks before delivering)
    POST /<binding component>      a binding event: body = data, headers = metadata;
                                   200 acknowledges, 500 asks the binding to redeliver
    POST /topics/<input name>      a topic event (CloudEvent JSON, or the raw payload with
                                   rawPayload); 200 {"status": "SUCCESS" | "RETRY" | "DROP"}
    GET  /healthz                  200 (for `--enable-app-health-check`)

A request still running when uvicorn's grace period ran out is cancelled and answered 503:
not acknowledged (daprd delivers a topic event again).

With `APP_API_TOKEN` set (`app_token`), an event (POST) without that `dapr-api-token` header
gets 401; the header is not part of a binding event's metadata.

Routes are matched on the decoded path: an input name that needs percent-encoding in its
route (`my input`, `a/b`, `ü`) is served whichever way daprd encodes it. A POST to no
route is answered 404 (daprd then drops the event) and logged.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import logging
from typing import Any, Awaitable, Callable
from urllib.parse import quote, unquote

from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.types import Receive, Scope, Send

from openfunction.config import Component
from openfunction.dapr.app_token import HEADER as TOKEN_HEADER
from openfunction.dapr.app_token import AppToken
from openfunction.dapr.dispatcher import EventDispatcher, subscription_of
from openfunction.dapr.events import is_json_type
from openfunction.dapr.outcome import Outcome
from openfunction.lifespan import run_lifespan

logger = logging.getLogger("openfunction.dapr")

Hook = Callable[[], Awaitable[None]]

TOPIC_ROUTE_PREFIX = "/topics/"
TRANSPORT_HEADERS = frozenset({
    "host", "user-agent", "content-length", "accept-encoding", "connection",
    "transfer-encoding", TOKEN_HEADER,
})
"""Headers of a binding event that are the transport's, not the event's metadata (the app
API token among them: the function never sees it)."""
CLOUDEVENT_ATTRIBUTES = frozenset({
    "id", "source", "type", "specversion", "datacontenttype", "dataschema", "subject",
    "time", "data", "data_base64",
})


def topic_route(input_name: str) -> str:
    """The route daprd is given for the subscription of a topic input (percent-encoded)."""
    return TOPIC_ROUTE_PREFIX + quote(input_name, safe="")


def binding_route(component: str) -> str:
    """The path daprd posts a binding's events to (its component name)."""
    return "/" + component


class DaprHttpApp:
    """An ASGI app answering daprd's HTTP callbacks."""

    def __init__(self, dispatcher: EventDispatcher, *, on_startup: list[Hook] | None = None,
                 on_shutdown: list[Hook] | None = None, token: AppToken | None = None) -> None:
        self.dispatcher = dispatcher
        self.token = token
        self.on_startup = list(on_startup or [])
        self.on_shutdown = list(on_shutdown or [])
        subscriptions = dispatcher.subscriptions
        self._subscriptions = []
        for (pubsub, topic), component in subscriptions.topics.items():
            metadata, dead_letter = subscription_of(component)
            entry = {"pubsubname": pubsub, "topic": topic, "route": topic_route(component.name),
                     "metadata": metadata}
            if dead_letter:
                entry["deadLetterTopic"] = dead_letter
            self._subscriptions.append(entry)
        # keyed by decoded path, as ASGI servers give `scope["path"]`
        self._routes = {unquote(topic_route(c.name)): c for c in subscriptions.topics.values()}
        self._bindings = {unquote(binding_route(name)): name for name in subscriptions.bindings}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        try:
            response = await self._handle(Request(scope, receive))
        except asyncio.CancelledError:
            # uvicorn cancels what still runs when the grace period ran out (the dispatcher
            # logged the event): answered as not acknowledged, instead of a traceback
            response = PlainTextResponse("cancelled: the function is stopping", 503)
        await response(scope, receive, send)

    async def _handle(self, request: Request) -> Response:
        path, method = request.scope["path"], request.method
        if method in ("POST", "PUT") and self.token is not None and not self.token.accepts(
                request.headers.get(TOKEN_HEADER)):
            return PlainTextResponse(f"Unauthorized: missing or wrong {TOKEN_HEADER}\n", 401)
        if method == "GET":
            if path == "/dapr/subscribe":
                return JSONResponse(self._subscriptions)
            if path == "/dapr/config":
                return JSONResponse({})
            if path == "/healthz":
                return PlainTextResponse("ok")
            return PlainTextResponse("Not Found", 404)
        if path in self._bindings:
            if method == "OPTIONS":
                return Response(status_code=200)
            if method in ("POST", "PUT"):
                return await self._binding(request, self._bindings[path])
        if path in self._routes and method == "POST":
            return await self._topic(request, self._routes[path])
        if method in ("POST", "PUT"):
            logger.error(
                "event dropped: %s %s is no route of this function, answered 404, so daprd drops "
                "the event (routes served: %s)", method, _shown_path(request), ", ".join(
                    [f"{binding_route(b)} (binding {b!r})" for b in self._bindings.values()]
                    + [f"{topic_route(c.name)} (input {c.name!r})" for c in self._routes.values()]))
        return PlainTextResponse("Not Found", 404)

    async def _binding(self, request: Request, component: str) -> Response:
        body = await request.body()
        metadata = {k: v for k, v in request.headers.items() if k not in TRANSPORT_HEADERS}
        outcome, reason = await self.dispatcher.binding_event(component, body, metadata)
        if outcome is Outcome.RETRY:
            return PlainTextResponse(reason, 500)
        return Response(status_code=200)

    async def _topic(self, request: Request, input_: Component) -> Response:
        body = await request.body()
        content_type = request.headers.get("content-type", "")
        pubsub, path = input_.component_name, request.scope["path"]
        try:
            event = _cloudevent(body, content_type)
            if event is not None:
                data, data_type = _cloudevent_data(event)
        except RecursionError:  # malformed for Python, like invalid JSON: taken as it came
            logger.warning("a message for input %r nests JSON more deeply than Python decodes: "
                           "the function gets the request body as bytes", input_.name)
            event = None
        if event is None:  # rawPayload (or malformed): the body is the message itself
            outcome, _ = await self.dispatcher.topic_event(
                pubsub, input_.topic, body, data_content_type=content_type, path=path,
                input_name=input_.name)
        else:
            # the message's own topic (under a wildcard subscription, not the filter)
            topic = event.get("topic")
            outcome, _ = await self.dispatcher.topic_event(
                pubsub, topic if isinstance(topic, str) and topic else input_.topic, data,
                id=str(event.get("id", "")),
                source=str(event.get("source", "")), type=str(event.get("type", "")),
                spec_version=str(event.get("specversion", "")), data_content_type=data_type,
                path=path, input_name=input_.name,
                extensions={k: v for k, v in event.items() if k not in CLOUDEVENT_ATTRIBUTES},
            )
        return JSONResponse({"status": outcome.value})

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        await run_lifespan(receive, send, self.on_startup, self.on_shutdown)


def _shown_path(request: Request) -> str:
    raw = request.scope.get("raw_path")
    return raw.decode("latin-1") if isinstance(raw, bytes) else request.scope["path"]


def _cloudevent(body: bytes, content_type: str) -> dict[str, Any] | None:
    """The structured-mode CloudEvent `body` is, or None: then the body is the message itself
    (rawPayload), as is a body that is not valid JSON. RecursionError: JSON nested too
    deeply to decode."""
    media = content_type.split(";", 1)[0].strip().lower()
    if media != "application/cloudevents+json" and not is_json_type(media):
        return None
    try:
        doc = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return None
    if isinstance(doc, dict) and "specversion" in doc and (
        media == "application/cloudevents+json" or "id" in doc
    ):
        return doc
    return None


def _cloudevent_data(event: dict[str, Any]) -> tuple[bytes, str]:
    """The data of a structured-mode CloudEvent as bytes, and its content type."""
    content_type = str(event.get("datacontenttype") or "")
    if isinstance(event.get("data_base64"), str):
        try:
            return base64.b64decode(event["data_base64"], validate=True), content_type
        except (binascii.Error, ValueError):
            return event["data_base64"].encode(), content_type
    if "data" not in event or event["data"] is None:
        return b"", content_type
    data = event["data"]
    if isinstance(data, str) and not is_json_type(content_type):
        return data.encode(), content_type
    return json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode(), (
        content_type or "application/json")
