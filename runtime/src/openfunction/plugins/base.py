"""The plugin interface.

A plugin runs code before (`exec_pre_hook`) and after (`exec_post_hook`) every
invocation of the function. It mirrors the interface of OpenFunction's Go framework
(`Name`, `Version`, `Init`, `ExecPreHook`, `ExecPostHook`, `Get`):

    from openfunction.plugins import Plugin

    class Timer(Plugin):
        name = "timer"
        version = "v1"

        def exec_pre_hook(self, ctx, plugins):
            self.started = time.perf_counter()

        def exec_post_hook(self, ctx, plugins):
            self.elapsed = time.perf_counter() - self.started

        def get(self, key):
            return getattr(self, key, None)

The plugin object named in `prePlugins`/`postPlugins` is created once per process.
When its hooks set attributes (like `Timer` above), every invocation gets a fresh instance
from `init()` (a shallow copy by default), so attributes set in the pre hook are seen by
the post hook of the same invocation and by no concurrent one. State meant to be shared by
all invocations (counters, clients) lives in objects created in `__init__`, which the
shallow copies share. A plugin that sets no attributes in its hooks is not copied: its one
instance serves every invocation (see `openfunction.plugins.instances`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Awaitable, ClassVar

if TYPE_CHECKING:
    from openfunction.invocation import Invocation
    from openfunction.plugins.pipeline import PluginSet


class Plugin:
    name: ClassVar[str] = ""
    version: ClassVar[str] = "v1"
    required: ClassVar[bool] = False
    """When True a pre hook that raises stops the invocation (HTTP 500 / Dapr retry).
    Otherwise the error is logged and the invocation goes on, as in the Go framework."""
    timeout: ClassVar[float | None] = None
    """Seconds a hook may take; past that it is abandoned and counted as a failure."""
    per_invocation: ClassVar[bool | None] = None
    """True: a fresh instance (`init()`) for every invocation. False: the one instance made
    at start-up serves every invocation. None (default): decided at start-up from the
    class's code: methods that set attributes mean a fresh instance per invocation."""

    def init(self) -> "Plugin":
        """A fresh instance for one invocation: a shallow copy of this one."""
        clone = object.__new__(type(self))
        clone.__dict__.update(self.__dict__)
        return clone

    def exec_pre_hook(self, ctx: "Invocation", plugins: "PluginSet") -> Awaitable[None] | None:
        return None

    def exec_post_hook(self, ctx: "Invocation", plugins: "PluginSet") -> Awaitable[None] | None:
        return None

    def get(self, key: str) -> Any:
        """A value this plugin exposes to other plugins (None when it has none)."""
        return None

    # Optional: called for each `ctx.send` of the invocation, before the message leaves.
    # Tracing plugins use it to open an exit span and put trace context in `message.metadata`.
    on_send: ClassVar[Any] = None

    # Optional: called once at start-up with the function's configuration.
    def setup(self, config: Any) -> None:
        return None

    # Optional: called once at shutdown.
    def close(self) -> Awaitable[None] | None:
        return None

    def __repr__(self) -> str:
        return f"<plugin {self.name} {self.version}>"
