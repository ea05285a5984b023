"""Dapr's app API token: with `APP_API_TOKEN` set, only calls that carry it are served.

A daprd started with `APP_API_TOKEN` in its environment (in Kubernetes: the
`dapr.io/app-token-secret` annotation) adds that token to every call it makes to the app, as
the `dapr-api-token` HTTP header or gRPC metadata entry. When the function's own environment
has `APP_API_TOKEN` as well, the Async runtime takes events (bindings, topics, bulk topics,
invocations) only from calls carrying the same token and answers the others with gRPC
UNAUTHENTICATED / HTTP 401, running nothing; so a process that reaches the function's port
without going through its sidecar cannot feed it events. The calls that deliver nothing -
the subscription lists and the health check - are answered without it, as daprd asks for the
gRPC lists without the token. daprd sends the token with gRPC events from 1.16.2 on (before,
only HTTP apps got it with events). Without `APP_API_TOKEN` every call is served.
"""

from __future__ import annotations

import hmac
import logging
import time
from typing import Any, Awaitable, Callable, Mapping

logger = logging.getLogger("openfunction.dapr")

ENV = "APP_API_TOKEN"
HEADER = "dapr-api-token"
REJECTION_LOG_INTERVAL = 60.0
"""Seconds between two log lines about rejected calls (the first one is always logged)."""


class AppToken:
    """The token calls from daprd must carry."""

    def __init__(self, token: str) -> None:
        self._token = token.encode()
        self._last_logged = float("-inf")
        self.rejected = 0

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> "AppToken | None":
        token = environ.get(ENV, "")
        return cls(token) if token else None

    def accepts(self, presented: str | bytes | None) -> bool:
        """Whether `presented` (the call's `dapr-api-token`) is the token; counts and logs
        the calls it turns away."""
        if presented is not None:
            value = presented.encode() if isinstance(presented, str) else presented
            if hmac.compare_digest(value, self._token):
                return True
        self.rejected += 1
        now = time.monotonic()
        if now - self._last_logged >= REJECTION_LOG_INTERVAL:
            self._last_logged = now
            logger.error(
                "rejected an event without the app API token (%s, %d so far): %s is set, so "
                "events are taken only from a daprd started with the same %s. Give the "
                "sidecar the same token (Kubernetes: the dapr.io/app-token-secret "
                "annotation) - with the gRPC app protocol daprd sends it with events from "
                "1.16.2 on (older: APP_PROTOCOL=http) - or unset %s in the function's "
                "environment",
                "no dapr-api-token" if presented is None else "a different dapr-api-token",
                self.rejected, ENV, ENV, ENV)
        return False


OPEN_GRPC_METHODS = frozenset({"ListInputBindings", "ListTopicSubscriptions", "HealthCheck"})
"""App callback methods that deliver nothing, answered without the token."""


def grpc_interceptor(token: AppToken) -> Any:
    """A `grpc.aio` server interceptor: event-delivering calls need `token` in their metadata."""
    import grpc
    import grpc.aio

    async def deny(request: Any, context: Any) -> None:
        await context.abort(grpc.StatusCode.UNAUTHENTICATED,
                            f"missing or wrong {HEADER} (the app's {ENV})")

    denied = grpc.unary_unary_rpc_method_handler(deny)

    class TokenInterceptor(grpc.aio.ServerInterceptor):
        async def intercept_service(
            self, continuation: Callable[[Any], Awaitable[Any]], details: Any
        ) -> Any:
            if details.method.rsplit("/", 1)[-1] in OPEN_GRPC_METHODS:
                return await continuation(details)
            presented = None
            for key, value in details.invocation_metadata or ():
                if key == HEADER:
                    presented = value
                    break
            if token.accepts(presented):
                return await continuation(details)
            return denied

    return TokenInterceptor()
