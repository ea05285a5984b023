"""Dapr's app callback API over HTTP (`APP_PROTOCOL=http`, as the Go framework selects it).

    GET  /dapr/subscribe           the topic subscriptions: route /topics/<input name>
    GET  /dapr/config              {} (no actors)
    OPTIONS /<binding component>   200 for each binding input (daprd asks before delivering)
    POST /<binding component>      a binding event: body = data, headers = metadata;
                                   200 acknowledges, 500 asks the binding to redeliver
    POST /topics/<input name>      a topic event (CloudEvent JSON, or the raw payload with
                                   rawPayload); 200 {"status": "SUCCESS" | "RETRY" | "DROP"}
    GET  /healthz                  200 (for `--enable-app-health-check`)

With `APP_API_TOKEN` set (`app_token`), an event (POST) without that `dapr-api-token` header
gets 401.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
from typing import Any, Awaitable, Callable
from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response

from openfunction.dapr.app_token import HEADER as TOKEN_HEADER
from openfunction.dapr.app_token import AppToken
from openfunction.dapr.dispatcher import EventDispatcher, subscription_of
from openfunction.dapr.events import is_json_type
from openfunction.dapr.outcome import Outcome
from openfunction.lifespan import run_lifespan

logger = logging.getLogger("openfunction.dapr")

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]
Hook = Callable[[], Awaitable[None]]

TOPIC_ROUTE_PREFIX = "/topics/"
TRANSPORT_HEADERS = frozenset({
    "host", "user-agent", "content-length", "accept-encoding", "connection",
    "transfer-encoding",
})
CLOUDEVENT_ATTRIBUTES = frozenset({
    "id", "source", "type", "specversion", "datacontenttype", "dataschema", "subject",
    "time", "data", "data_base64",
})


def topic_route(input_name: str) -> str:
    return TOPIC_ROUTE_PREFIX + quote(input_name, safe="")


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
        self._routes = {topic_route(c.name): key for key, c in subscriptions.topics.items()}
        self._bindings = {"/" + name: name for name in subscriptions.bindings}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        response = await self._handle(Request(scope, receive))
        await response(scope, receive, send)

    async def _handle(self, request: Request) -> Response:
        path, method = request.url.path, request.method
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
            return await self._topic(request, *self._routes[path])
        return PlainTextResponse("Not Found", 404)

    async def _binding(self, request: Request, component: str) -> Response:
        body = await request.body()
        metadata = {k: v for k, v in request.headers.items() if k not in TRANSPORT_HEADERS}
        outcome, reason = await self.dispatcher.binding_event(component, body, metadata)
        if outcome is Outcome.RETRY:
            return PlainTextResponse(reason, 500)
        return Response(status_code=200)

    async def _topic(self, request: Request, pubsub: str, topic: str) -> Response:
        body = await request.body()
        content_type = request.headers.get("content-type", "")
        event = _cloudevent(body, content_type)
        if event is None:  # rawPayload: the body is the message itself
            outcome, _ = await self.dispatcher.topic_event(
                pubsub, topic, body, data_content_type=content_type, path=request.url.path)
        else:
            data, data_type = _cloudevent_data(event)
            outcome, _ = await self.dispatcher.topic_event(
                pubsub, topic, data, id=str(event.get("id", "")),
                source=str(event.get("source", "")), type=str(event.get("type", "")),
                spec_version=str(event.get("specversion", "")), data_content_type=data_type,
                path=request.url.path,
                extensions={k: v for k, v in event.items() if k not in CLOUDEVENT_ATTRIBUTES},
            )
        return JSONResponse({"status": outcome.value})

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        await run_lifespan(receive, send, self.on_startup, self.on_shutdown)


def _cloudevent(body: bytes, content_type: str) -> dict[str, Any] | None:
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
