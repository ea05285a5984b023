"""Run plugins around the function.

Pre hooks run in listed order before the function; post hooks run in listed order after
it, also when it raised (they see `ctx.error`). A hook that raises is logged with the
plugin's name and phase and the invocation goes on, unless the plugin is `required`: a
failing required pre hook stops the invocation before the function runs.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import time
from typing import TYPE_CHECKING, Awaitable, Callable, Iterator, Mapping, Sequence

from openfunction.plugins.base import Plugin

if TYPE_CHECKING:
    from openfunction.context import OutgoingMessage
    from openfunction.invocation import Invocation

logger = logging.getLogger("openfunction.plugins")

Call = Callable[["Invocation"], Awaitable[None]]


class PreHookFailed(Exception):
    """A required plugin's pre hook failed, so the function was not run."""

    def __init__(self, plugin: str, cause: BaseException) -> None:
        super().__init__(f"pre hook of required plugin {plugin!r} failed: {cause!r}")
        self.plugin = plugin
        self.cause = cause


class PluginSet(Mapping[str, Plugin]):
    """The plugin instances of one invocation, by name."""

    __slots__ = ("_instances",)

    def __init__(self, instances: dict[str, Plugin]) -> None:
        self._instances = instances

    def __getitem__(self, name: str) -> Plugin:
        return self._instances[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._instances)

    def __len__(self) -> int:
        return len(self._instances)

    def value(self, plugin: str, key: str) -> object:
        """`plugins[plugin].get(key)`, or None when that plugin is not listed."""
        instance = self._instances.get(plugin)
        return instance.get(key) if instance is not None else None

    async def on_send(self, invocation: "Invocation", message: "OutgoingMessage") -> None:
        for instance in self._instances.values():
            hook = getattr(instance, "on_send", None)
            if hook is None:
                continue
            try:
                result = hook(invocation, message)
                if inspect.isawaitable(result):
                    await result
            except Exception:  # noqa: BLE001 - a plugin must not lose the message
                logger.exception("plugin %r failed in its send hook", instance.name)


class _Hook:
    """One listed hook, with what is known about it at start-up."""

    __slots__ = ("name", "phase", "is_async", "timeout", "required")

    def __init__(self, prototype: Plugin, phase: str) -> None:
        method = prototype.exec_pre_hook if phase == "pre" else prototype.exec_post_hook
        self.name = prototype.name
        self.phase = phase
        self.is_async = inspect.iscoroutinefunction(method)
        self.timeout = prototype.timeout
        self.required = bool(prototype.required) and phase == "pre"


class Pipeline:
    """The process-wide plugin configuration; `run` wraps one invocation."""

    def __init__(self, pre: Sequence[Plugin], post: Sequence[Plugin]) -> None:
        self._prototypes: dict[str, Plugin] = {}
        for plugin in [*pre, *post]:
            self._prototypes.setdefault(plugin.name, plugin)
        self._pre = [_Hook(p, "pre") for p in pre]
        self._post = [_Hook(p, "post") for p in post]
        self.pre_names = tuple(p.name for p in pre)
        self.post_names = tuple(p.name for p in post)

    @property
    def plugins(self) -> Mapping[str, Plugin]:
        return self._prototypes

    def __bool__(self) -> bool:
        return bool(self._prototypes)

    async def run(self, invocation: "Invocation", call: Call) -> None:
        plugins = PluginSet({name: proto.init() for name, proto in self._prototypes.items()})
        invocation.plugins = plugins
        stopped = False
        for hook in self._pre:
            error = await self._run_hook(hook, plugins[hook.name], invocation, plugins)
            if error is not None and hook.required:
                invocation.error = PreHookFailed(hook.name, error)
                invocation.status_code = 500
                stopped = True
                break
        if not stopped:
            await call(invocation)
        invocation.ended_at = time.time()
        for hook in self._post:
            await self._run_hook(hook, plugins[hook.name], invocation, plugins)

    async def _run_hook(
        self, hook: _Hook, plugin: Plugin, invocation: "Invocation", plugins: PluginSet
    ) -> BaseException | None:
        method = plugin.exec_pre_hook if hook.phase == "pre" else plugin.exec_post_hook
        try:
            if hook.timeout is None:
                result = method(invocation, plugins)
                if result is not None and inspect.isawaitable(result):
                    await result
            elif hook.is_async:
                await asyncio.wait_for(method(invocation, plugins), hook.timeout)  # type: ignore[arg-type]
            else:
                loop = asyncio.get_running_loop()
                await asyncio.wait_for(
                    loop.run_in_executor(None, method, invocation, plugins), hook.timeout
                )
            return None
        except asyncio.TimeoutError as exc:
            logger.error(
                "plugin %r %s hook timed out after %ss (request %s)",
                hook.name, hook.phase, hook.timeout, invocation.request_id or "-",
            )
            return exc
        except Exception as exc:  # noqa: BLE001 - hooks never take the process down
            logger.exception(
                "plugin %r %s hook failed (request %s)",
                hook.name, hook.phase, invocation.request_id or "-",
            )
            return exc

    async def close(self) -> None:
        for plugin in self._prototypes.values():
            try:
                result = plugin.close()
                if inspect.isawaitable(result):
                    await result
            except Exception:  # noqa: BLE001
                logger.exception("plugin %r failed to close", plugin.name)
