"""The ASGI application serving a function over HTTP (OpenFunction's Knative runtime).

A bare ASGI callable rather than a router: one route (`httpPattern`, default `/` which
matches every path), every method, and nothing else on the request path.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import re
from typing import Any, Awaitable, Callable

from starlette.responses import PlainTextResponse, Response
from starlette.routing import compile_path
from starlette.types import Receive, Scope, Send

from openfunction import cloudevent
from openfunction.config import FunctionConfig
from openfunction.invocation import CLOUDEVENT, HTTP, Invocation
from openfunction.plugins.pipeline import PreHookFailed
from openfunction.request import BadRequest, Request, parse_json
from openfunction.responses import ReturnValueError
from openfunction.runner import FunctionRunner
from openfunction.signature import SignatureType
from openfunction.lifespan import run_lifespan

logger = logging.getLogger("openfunction")

Hook = Callable[[], Awaitable[None]]


class FunctionApp:
    def __init__(
        self,
        config: FunctionConfig,
        runner: FunctionRunner,
        *,
        on_startup: list[Hook] | None = None,
        on_shutdown: list[Hook] | None = None,
        expose_errors: bool = False,
    ) -> None:
        self.config = config
        self.runner = runner
        self.signature = runner.function.signature
        self.on_startup = list(on_startup or [])
        self.on_shutdown = list(on_shutdown or [])
        self.expose_errors = expose_errors
        self._match_all = config.http_pattern == "/"
        self._path_regex: re.Pattern[str] | None = None
        if not self._match_all:
            self._path_regex, _, _ = compile_path(config.http_pattern)
        self._ids = itertools.count(1)
        self._id_prefix = f"{os.getpid():x}-"
        if self.signature is SignatureType.CLOUDEVENT:
            self._handle = self._handle_cloudevent
        elif self.signature is SignatureType.OPENFUNCTION:
            self._handle = self._handle_openfunction
        else:
            self._handle = self._handle_http

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            try:
                if self._match_all:
                    await self._handle(scope, receive, send)
                    return
                match = self._path_regex.match(scope["path"])  # type: ignore[union-attr]
                if match is None:
                    await PlainTextResponse("Not Found", 404)(scope, receive, send)
                    return
                scope["path_params"] = match.groupdict()
                await self._handle(scope, receive, send)
            except asyncio.CancelledError:
                await self._cancelled(scope, receive, send)
        elif kind == "lifespan":
            await self._lifespan(receive, send)
        elif kind == "websocket":
            await send({"type": "websocket.close", "code": 1000})

    async def _cancelled(self, scope: Scope, receive: Receive, send: Send) -> None:
        """The server cancelled the request (it stopped, past its grace period): answer 503
        rather than let the cancellation surface as an application error."""
        logger.warning("%s %s: cancelled, the server stopped before the function finished",
                       scope.get("method", ""), scope.get("path", ""))
        with contextlib.suppress(Exception):
            await PlainTextResponse("Service Unavailable: the server is stopping\n", 503)(
                scope, receive, send)

    def _request_id(self, scope: Scope) -> str:
        for name, value in scope["headers"]:
            if name == b"x-request-id":
                return value.decode("latin-1")
        return f"{self._id_prefix}{next(self._ids)}"

    async def _handle_http(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        if not self.runner.function.is_async:
            await request.body()
        invocation = Invocation(
            self.config, HTTP, request=request, request_id=self._request_id(scope)
        )
        await self.runner.run(invocation)
        await self._respond(invocation, scope, receive, send)

    async def _handle_cloudevent(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        body = await request.body()
        try:
            event = cloudevent.parse(request.headers, body)
        except cloudevent.InvalidCloudEvent as exc:
            await self._reject(request, exc, scope, receive, send)
            return
        invocation = Invocation(
            self.config,
            CLOUDEVENT,
            request=request,
            event=event,
            data=event.data,
            request_id=self._request_id(scope),
        )
        await self.runner.run(invocation)
        await self._respond(invocation, scope, receive, send)

    async def _handle_openfunction(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        body = await request.body()
        headers = request.headers
        event = None
        trigger = HTTP
        data: Any = None
        malformed: BadRequest | None = None
        if cloudevent.is_cloudevent(headers):
            try:
                event = cloudevent.parse(headers, body)
            except cloudevent.InvalidCloudEvent as exc:
                await self._reject(request, exc, scope, receive, send)
                return
            trigger = CLOUDEVENT
            try:
                ctype = event.get("datacontenttype") or ""
                data = decode_data(event.data, ctype, "CloudEvent data")
            except BadRequest as exc:
                malformed = exc
        else:
            try:
                data = decode_data(body, headers.get("content-type", ""))
            except BadRequest as exc:
                malformed = exc
        invocation = Invocation(
            self.config,
            trigger,
            request=request,
            event=event,
            data=data,
            request_id=self._request_id(scope),
            rejected=malformed,  # answered 400 by the runner, through the plugins and metrics
        )
        await self.runner.run(invocation)
        await self._respond(invocation, scope, receive, send)

    async def _reject(self, request: Request, error: Exception, scope: Scope, receive: Receive,
                      send: Send) -> None:
        """A request that is not a valid CloudEvent: answered 400 with its request id, through
        the plugins and metrics, without calling the function."""
        invocation = Invocation(self.config, HTTP, request=request,
                                request_id=self._request_id(scope),
                                rejected=BadRequest(f"not a valid CloudEvent: {error}"))
        await self.runner.run(invocation)
        await self._respond(invocation, scope, receive, send)

    async def _respond(self, invocation: Invocation, scope: Scope, receive: Receive, send: Send) -> None:
        response = invocation.response
        if invocation.error is not None or response is None:
            response = self._error_response(invocation)
        await response(scope, receive, send)

    def _error_response(self, invocation: Invocation) -> Response:
        error = invocation.error
        if isinstance(error, PreHookFailed):
            # the cause is the plugin's business, shown like the function's own errors
            text = (f"Internal Server Error: {error}" if self.expose_errors else
                    f"Internal Server Error: pre hook of required plugin {error.plugin!r} failed")
        elif self.expose_errors and error is not None:
            text = f"Internal Server Error: {type(error).__name__}: {error}"
        elif isinstance(error, ReturnValueError):
            text = "Internal Server Error: the function's return value is invalid"
        else:
            text = "Internal Server Error: the function raised an exception"
        return PlainTextResponse(
            f"{text} (request id {invocation.request_id})\n",
            500,
            headers={"x-request-id": invocation.request_id},
        )

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        await run_lifespan(receive, send, self.on_startup, self.on_shutdown)


def decode_data(body: Any, content_type: str, what: str = "body") -> Any:
    """What an OpenFunction-signature function receives as `data`.

    JSON bodies are decoded (`BadRequest` when they are not valid JSON); `text/*` becomes
    `str`; anything else stays `bytes`; an empty body is None.
    """
    if body is None:
        return None
    if not isinstance(body, (bytes, bytearray)):
        return body  # the CloudEvents SDK already decoded it
    if not body:
        return None
    ctype = content_type.split(";", 1)[0].strip().lower()
    if "json" in ctype:
        return parse_json(body, what)
    if ctype.startswith("text/"):
        return body.decode(errors="replace")
    if not ctype:
        try:
            return parse_json(body, what)
        except BadRequest:
            return bytes(body)
    return bytes(body)

