"""`ctx.states`: the state stores named in `FUNC_CONTEXT.states`, through Dapr.

    async def handler(ctx, data):
        seen = await ctx.states.get("cache", "last")       # bytes, or None
        await ctx.states.save("cache", "last", data)       # bytes, str or JSON-able
        await ctx.states.delete("cache", "old")

    def handler(ctx, data):                                # in a def function
        seen = ctx.states.get_blocking("cache", "last")

`store` is the state's name in `FUNC_CONTEXT.states`; the Dapr component is its
`componentName`. A key is a non-empty str: anything else raises TypeError / ValueError
naming the call, before the sidecar is asked. A value goes as `ctx.send` data does (bytes
as they are, str as UTF-8, anything else as strict JSON), or raises `PayloadError`.
"""

from __future__ import annotations

import asyncio
import reprlib
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

    def component(self, store: str, call: str = "ctx.states") -> str:
        if not isinstance(store, str):
            raise TypeError(
                f"{call}(): store must be the name of a state store in FUNC_CONTEXT.states "
                f"(a str), not {type(store).__name__} ({reprlib.repr(store)})"
            )
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

    def _checked(self, call: str, store: str, key: str) -> str:
        """The component of `store`, once `store` and `key` are known to be valid."""
        check_key(key, f"ctx.states.{call}")
        return self.component(store, f"ctx.states.{call}")

    async def get(self, store: str, key: str) -> bytes | None:
        return await self._get(self._checked("get", store, key), key)

    async def save(self, store: str, key: str, value: Any) -> None:
        component = self._checked("save", store, key)
        await self.connection.save_state(component, key, _encode(value, store, key))

    async def delete(self, store: str, key: str) -> None:
        await self.connection.delete_state(self._checked("delete", store, key), key)

    async def _get(self, component: str, key: str) -> bytes | None:
        data = await self.connection.get_state(component, key)
        return data or None

    # blocking forms, for def functions (they run in worker threads): the arguments are
    # checked and the value encoded in the worker, then the call runs on the event loop
    def get_blocking(self, store: str, key: str) -> bytes | None:
        loop = self._blocking_loop()
        component = self._checked("get_blocking", store, key)
        return self._block(loop, self._get(component, key))

    def save_blocking(self, store: str, key: str, value: Any) -> None:
        loop = self._blocking_loop()
        component = self._checked("save_blocking", store, key)
        payload = _encode(value, store, key)
        self._block(loop, self.connection.save_state(component, key, payload))

    def delete_blocking(self, store: str, key: str) -> None:
        loop = self._blocking_loop()
        component = self._checked("delete_blocking", store, key)
        self._block(loop, self.connection.delete_state(component, key))

    def _blocking_loop(self) -> asyncio.AbstractEventLoop:
        loop = self._loop()
        try:
            running: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if loop is None or running is not None:
            raise RuntimeError(
                "ctx.states.*_blocking() is for def functions (they run in worker threads); "
                "in an async function use `await ctx.states.get(...)`"
            )
        return loop

    @staticmethod
    def _block(loop: asyncio.AbstractEventLoop, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, loop).result()


def check_key(key: Any, call: str) -> None:
    """A state key is a non-empty str: TypeError / ValueError naming `call` otherwise."""
    if not isinstance(key, str):
        raise TypeError(
            f"{call}(): key must be a non-empty str, not {type(key).__name__} "
            f"({reprlib.repr(key)}); pass the key as text, e.g. f\"order-{{order_id}}\""
        )
    if not key:
        raise ValueError(
            f"{call}(): key is empty; Dapr state keys are non-empty str (an empty key "
            "reads nothing and deletes nothing): pass the key of the value"
        )


def _encode(value: Any, store: str, key: str) -> bytes:
    return encode_payload(value, f"key {key!r} of state store {store!r}")
