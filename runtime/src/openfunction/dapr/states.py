"""`ctx.states`: the state stores named in `FUNC_CONTEXT.states`, through Dapr.

    async def handler(ctx, data):
        seen = await ctx.states.get("cache", "last")       # bytes, or None
        await ctx.states.save("cache", "last", data)       # bytes, str or JSON-able
        await ctx.states.delete("cache", "old")

    def handler(ctx, data):                                # in a def function
        seen = ctx.states.get_blocking("cache", "last")

`store` is the state's name in `FUNC_CONTEXT.states`; the Dapr component is its
`componentName`.
"""

from __future__ import annotations

import asyncio
from typing import Any, Callable, Coroutine, TypeVar

from openfunction.config import FunctionConfig
from openfunction.context import encode_payload
from openfunction.dapr.connection import DaprConnection
from openfunction.errors import OutputError

T = TypeVar("T")


class DaprStateStores:
    """The `StateStores` of a function with a Dapr sidecar."""

    def __init__(
        self,
        config: FunctionConfig,
        connection: DaprConnection,
        loop: Callable[[], asyncio.AbstractEventLoop | None] = lambda: None,
    ) -> None:
        self.config = config
        self.connection = connection
        self._loop = loop

    def component(self, store: str) -> str:
        states = self.config.states
        if store not in states:
            known = ", ".join(sorted(states)) or "none"
            raise OutputError(
                f"unknown state store {store!r}",
                f"the state stores of {self.config.name!r} are: {known}.",
                "pass one of these names, or declare the store in FUNC_CONTEXT.states "
                "(spec.serving.states in the Function CR)",
            )
        return states[store].component_name

    async def get(self, store: str, key: str) -> bytes | None:
        data = await self.connection.get_state(self.component(store), key)
        return data or None

    async def save(self, store: str, key: str, value: Any) -> None:
        await self.connection.save_state(self.component(store), key, encode_payload(value))

    async def delete(self, store: str, key: str) -> None:
        await self.connection.delete_state(self.component(store), key)

    # blocking forms, for def functions (they run in worker threads)
    def get_blocking(self, store: str, key: str) -> bytes | None:
        return self._block(self.get(store, key))

    def save_blocking(self, store: str, key: str, value: Any) -> None:
        self._block(self.save(store, key, value))

    def delete_blocking(self, store: str, key: str) -> None:
        self._block(self.delete(store, key))

    def _block(self, coro: Coroutine[Any, Any, T]) -> T:
        loop = self._loop()
        try:
            running: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if loop is None or running is not None:
            coro.close()
            raise RuntimeError(
                "ctx.states.*_blocking() is for def functions (they run in worker threads); "
                "in an async function use `await ctx.states.get(...)`"
            )
        return asyncio.run_coroutine_threadsafe(coro, loop).result()
