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
import math
import time
import types
from typing import (
    TYPE_CHECKING, Any, Awaitable, Callable, Coroutine, Iterator, Mapping, Optional, Protocol, Sequence,
)

from openfunction.errors import PluginError
from openfunction.plugins.base import Plugin
from openfunction.plugins.instances import needs_own_instance, unwatch, watch_shared

if TYPE_CHECKING:
    from openfunction.context import OutgoingMessage
    from openfunction.invocation import Invocation

logger = logging.getLogger("openfunction.plugins")

HookResult = Optional[Awaitable[None]]
HookFunction = Callable[[Plugin, "Invocation", "PluginSet"], HookResult]
"""A plugin class's `exec_pre_hook` or `exec_post_hook`."""
BoundHook = Callable[["Invocation", "PluginSet"], HookResult]
"""The same, bound to a shared instance."""


class FunctionCall(Protocol):
    """The function between the pre and post hooks (`FunctionRunner` is one), in three
    steps, so that the pipeline's coroutine awaits the function itself: no coroutine of the
    runner's sits between them (one fewer per invocation shows in throughput).

    `run` calls `start`, awaits what it returns (if anything) and gives the value to
    `finish`; one of `CALL_ERRORS` raised meanwhile goes to `fail`, which records it on the
    invocation or raises it again to end the invocation there."""

    def start(self, invocation: "Invocation") -> Awaitable[Any] | None:
        """Call the function: what to await for its return value, or None when there is
        nothing to await (the invocation is already answered)."""

    def finish(self, invocation: "Invocation", result: Any) -> None:
        """Record the function's return value on the invocation."""

    def fail(self, invocation: "Invocation", error: BaseException) -> None:
        """Record that the function (or `start` or `finish`) raised `error`."""


CALL_ERRORS = (Exception, SystemExit, KeyboardInterrupt, asyncio.CancelledError)
"""What a `FunctionCall` hands to its `fail`: anything the function's own code may raise,
but not `GeneratorExit` (the coroutine being closed)."""


async def run_call(call: FunctionCall, invocation: "Invocation") -> None:
    """`call`'s three steps in one coroutine: the function alone, or between hooks.
    (`Pipeline._run_shared` writes them out itself, to stay one coroutine with its hooks.)"""
    try:
        waiting = call.start(invocation)
        if waiting is not None:
            call.finish(invocation, await waiting)
    except CALL_ERRORS as exc:
        call.fail(invocation, exc)


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

    __slots__ = ("name", "phase", "function", "is_async", "timeout", "required")

    def __init__(self, prototype: Plugin, phase: str) -> None:
        attribute = "exec_pre_hook" if phase == "pre" else "exec_post_hook"
        self.name = prototype.name
        self.phase = phase
        # the class's function, called with the invocation's instance
        self.function: HookFunction = getattr(type(prototype), attribute)
        self.is_async = inspect.iscoroutinefunction(self.function)
        self.timeout = _timeout(prototype)
        self.required = bool(prototype.required) and phase == "pre"

    def step(self) -> tuple[str, HookFunction | None, "_Hook"]:
        """What `Pipeline.run` iterates: the function is None when the hook has a timeout
        (run bounded); otherwise it is called inline, without a coroutine of its own."""
        return (self.name, self.function if self.timeout is None else None, self)


def _timeout(plugin: Plugin) -> float | None:
    """The plugin's `timeout`: None, or a positive number of seconds."""
    timeout = plugin.timeout
    if timeout is None:
        return None
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not (
        0 < timeout < math.inf
    ):
        raise PluginError(
            f"plugin {plugin.name!r} has an invalid timeout: {timeout!r}",
            "a hook's timeout is a positive number of seconds, or None for no limit.",
            f"set timeout = 0.5 (for example) or None on {type(plugin).__name__}",
        )
    return float(timeout)


def _defines(plugin: Plugin, hook: str) -> bool:
    """Whether `plugin`'s class has its own `hook`, rather than the base class's no-op."""
    return getattr(type(plugin), hook) is not getattr(Plugin, hook)


class Pipeline:
    """The process-wide plugin configuration; `run` wraps one invocation."""

    def __init__(self, pre: Sequence[Plugin], post: Sequence[Plugin]) -> None:
        self._prototypes: dict[str, Plugin] = {}
        for plugin in [*pre, *post]:
            self._prototypes.setdefault(plugin.name, plugin)
        # Plugins that keep per-invocation state get a fresh instance (`init()`) each
        # invocation; the others serve every invocation with their one instance.
        self._shared: dict[str, Plugin] = {}
        self._copied: list[tuple[str, Plugin]] = []
        for name, plugin in self._prototypes.items():
            if needs_own_instance(plugin):
                self._copied.append((name, plugin))
            else:
                self._shared[name] = plugin
                watch_shared(plugin, self._give_own_instances)
        self._shared_set = PluginSet(self._shared)
        # A hook a plugin does not define (the base class's, which does nothing) is not called.
        self._pre = [_Hook(p, "pre").step() for p in pre if _defines(p, "exec_pre_hook")]
        self._post = [_Hook(p, "post").step() for p in post if _defines(p, "exec_post_hook")]
        self._hooks = {(step[0], step[2].phase): step[2] for step in [*self._pre, *self._post]}
        self._bound = self._bind()
        self.run: Callable[["Invocation", FunctionCall], Coroutine[Any, Any, None]] = (
            self._run_shared if self.simple else self._run_general)
        self.pre_names = tuple(p.name for p in pre)
        self.post_names = tuple(p.name for p in post)

    @property
    def simple(self) -> bool:
        """True while every plugin is shared and no hook has a timeout: `run` then calls
        the hooks from one loop, a `def` hook as a plain call (no coroutine is made for it
        unless it returns an awaitable)."""
        return self._bound is not None and not self._copied

    @property
    def plugins(self) -> Mapping[str, Plugin]:
        return self._prototypes

    @property
    def shared(self) -> tuple[str, ...]:
        """Names of the plugins whose one instance serves every invocation."""
        copied = {name for name, _ in self._copied}
        return tuple(name for name in self._prototypes if name not in copied)

    def __bool__(self) -> bool:
        return bool(self._prototypes)

    def _bind(self) -> tuple[tuple[BoundHook, ...], tuple[BoundHook, ...]] | None:
        """The pre and post hooks as bound methods of the shared instances, for the common
        case where every plugin is shared and no hook has a timeout; None otherwise."""
        if self._copied:
            return None
        pre: list[BoundHook] = []
        post: list[BoundHook] = []
        for steps, bound in ((self._pre, pre), (self._post, post)):
            for name, function, _ in steps:
                if function is None:
                    return None
                bound.append(types.MethodType(function, self._shared[name]))
        return tuple(pre), tuple(post)

    def _give_own_instances(self, plugin: Plugin) -> None:
        if all(name != plugin.name for name, _ in self._copied):
            self._copied.append((plugin.name, plugin))
        # `_bound` stays: an invocation whose pre hooks ran with the shared instances runs
        # its post hooks with the same instances
        self.run = self._run_general

    async def _run_shared(self, invocation: "Invocation", call: FunctionCall) -> None:
        """Every plugin is shared and no hook has a timeout: the hooks are called in this
        one coroutine, each awaited only when it returns an awaitable."""
        if self._copied:  # a plugin asked for its own instances since this run was chosen
            await self._run_general(invocation, call)
            return
        pre, post = self._bound  # type: ignore[misc]  # set whenever this loop is chosen
        plugins = self._shared_set
        invocation.plugins = plugins
        for hook in pre:
            try:
                result = hook(invocation, plugins)
                if result is not None:
                    await result
            except Exception as exc:  # noqa: BLE001 - hooks never take the process down
                if not self._hook_failed(hook, "pre", invocation, exc):
                    break
        else:  # `run_call`, written out: no coroutine between the hooks and the function
            try:
                waiting = call.start(invocation)
                if waiting is not None:
                    call.finish(invocation, await waiting)
            except CALL_ERRORS as exc:
                call.fail(invocation, exc)
        invocation.ended_at = time.time()
        for hook in post:
            try:
                result = hook(invocation, plugins)
                if result is not None:
                    await result
            except Exception as exc:  # noqa: BLE001
                self._hook_failed(hook, "post", invocation, exc)

    def _hook_failed(
        self, hook: BoundHook, phase: str, invocation: "Invocation", exc: BaseException
    ) -> bool:
        """Log a failed hook; False when it stops the invocation (a required pre hook)."""
        owner: Plugin = hook.__self__  # type: ignore[attr-defined]
        info = self._hooks[owner.name, phase]
        self._failed(info, invocation, exc)
        if info.required:  # only ever true for pre hooks
            invocation.error = PreHookFailed(info.name, exc)
            invocation.status_code = 500
            return False
        return True

    async def _run_general(self, invocation: "Invocation", call: FunctionCall) -> None:
        """Any plugin with its own instance per invocation, or a hook with a timeout."""
        if self._copied:
            instances = self._shared.copy()
            for name, prototype in self._copied:
                instances[name] = prototype.init()
            plugins = PluginSet(instances)
        else:
            instances = self._shared
            plugins = self._shared_set
        invocation.plugins = plugins
        for name, function, hook in self._pre:
            if function is not None:
                try:
                    result = function(instances[name], invocation, plugins)
                    if result is not None:
                        await result
                    continue
                except Exception as exc:  # noqa: BLE001 - hooks never take the process down
                    error: BaseException | None = self._failed(hook, invocation, exc)
            else:
                error = await self._run_bounded(hook, instances[name], invocation, plugins)
            if error is not None and hook.required:
                invocation.error = PreHookFailed(name, error)
                invocation.status_code = 500
                break
        else:
            await run_call(call, invocation)
        invocation.ended_at = time.time()
        for name, function, hook in self._post:
            if function is not None:
                try:
                    result = function(instances[name], invocation, plugins)
                    if result is not None:
                        await result
                except Exception as exc:  # noqa: BLE001
                    self._failed(hook, invocation, exc)
            else:
                await self._run_bounded(hook, instances[name], invocation, plugins)

    @staticmethod
    def _failed(hook: _Hook, invocation: "Invocation", exc: BaseException) -> BaseException:
        logger.error(
            "plugin %r %s hook failed (request %s)",
            hook.name, hook.phase, invocation.request_id or "-", exc_info=exc,
        )
        return exc

    async def _run_bounded(
        self, hook: _Hook, plugin: Plugin, invocation: "Invocation", plugins: PluginSet
    ) -> BaseException | None:
        """A hook with a timeout: abandoned (and counted as failed) past it."""
        try:
            if hook.is_async:
                coroutine = hook.function(plugin, invocation, plugins)
                assert coroutine is not None  # an `async def` hook
                await asyncio.wait_for(coroutine, hook.timeout)
            else:
                loop = asyncio.get_running_loop()
                await asyncio.wait_for(
                    loop.run_in_executor(None, hook.function, plugin, invocation, plugins),
                    hook.timeout,
                )
            return None
        except asyncio.TimeoutError as exc:
            logger.error(
                "plugin %r %s hook timed out after %ss (request %s)",
                hook.name, hook.phase, hook.timeout, invocation.request_id or "-",
            )
            return exc
        except Exception as exc:  # noqa: BLE001
            return self._failed(hook, invocation, exc)

    async def close(self) -> None:
        for plugin in self._prototypes.values():
            unwatch(plugin)
            try:
                result = plugin.close()
                if inspect.isawaitable(result):
                    await result
            except Exception:  # noqa: BLE001
                logger.exception("plugin %r failed to close", plugin.name)
