"""The ASGI lifespan protocol: start-up and shutdown hooks around serving."""

from __future__ import annotations

import logging
from typing import Awaitable, Callable, Sequence

from starlette.types import Receive, Send

logger = logging.getLogger("openfunction")

Hook = Callable[[], Awaitable[None]]


async def run_lifespan(
    receive: Receive, send: Send, on_startup: Sequence[Hook], on_shutdown: Sequence[Hook]
) -> None:
    """Run start-up hooks (a failure aborts start-up), then shutdown hooks (each one runs)."""
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            try:
                for hook in on_startup:
                    await hook()
            except BaseException as exc:  # noqa: BLE001 - reported to the server
                logger.error("start-up failed: %s", exc)
                await send({"type": "lifespan.startup.failed", "message": str(exc)})
                return
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            for hook in on_shutdown:
                try:
                    await hook()
                except Exception:  # noqa: BLE001
                    logger.exception("shutdown hook failed")
            await send({"type": "lifespan.shutdown.complete"})
            return
