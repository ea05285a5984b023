"""Plugins shipped with the runtime (besides the tracing providers).

* `logger`: one log line per invocation with its trigger, outcome, status and duration.
* `counter`: counts invocations, errors and in-flight invocations for the process;
  other plugins read them with `plugins.value("counter", "invocations")`.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any

from openfunction.plugins.base import Plugin

if TYPE_CHECKING:
    from openfunction.invocation import Invocation
    from openfunction.plugins.pipeline import PluginSet

_log = logging.getLogger("openfunction.invocations")


class InvocationLogger(Plugin):
    """One log line per invocation. The duration runs from its pre hook to its post hook, or
    from the start of the invocation when it is listed only in the post plugins; the start
    is kept in `ctx.state`, so one instance serves every invocation."""

    name = "logger"
    version = "v1"
    per_invocation = False

    def exec_pre_hook(self, ctx: "Invocation", plugins: "PluginSet") -> None:
        ctx.state["logger.started"] = time.perf_counter()

    def exec_post_hook(self, ctx: "Invocation", plugins: "PluginSet") -> None:
        started = ctx.state.pop("logger.started", None)
        elapsed_ms = ((time.perf_counter() - started) if started is not None
                      else ctx.duration) * 1000
        outcome = "error" if ctx.failed else "ok"
        detail = f" error={type(ctx.error).__name__}" if ctx.error is not None else ""
        source = f" input={ctx.input_name}" if ctx.input_name else ""
        _log.info(
            "function=%s trigger=%s%s outcome=%s status=%s duration_ms=%.2f request_id=%s%s",
            ctx.name, ctx.trigger, source, outcome, ctx.status_code or "-", elapsed_ms,
            ctx.request_id or "-", detail,
        )


class _Counts:
    __slots__ = ("invocations", "errors", "in_flight")

    def __init__(self) -> None:
        self.invocations = 0
        self.errors = 0
        self.in_flight = 0


class InvocationCounter(Plugin):
    name = "counter"
    version = "v1"

    def __init__(self) -> None:
        self.counts = _Counts()  # shared by the per-invocation copies

    per_invocation = False  # keeps nothing on `self` per invocation: one shared instance

    def setup(self, config: Any) -> None:
        if self.name not in config.post_plugins:
            logging.getLogger("openfunction.plugins").warning(
                "plugin %r is not listed in %s: it counts invocations and errors in its post "
                "hook, so it will count none; list it there (and in %s for in-flight counts)",
                self.name, config.post_field, config.pre_field)

    def exec_pre_hook(self, ctx: "Invocation", plugins: "PluginSet") -> None:
        ctx.state["counter.entered"] = True
        self.counts.in_flight += 1

    def exec_post_hook(self, ctx: "Invocation", plugins: "PluginSet") -> None:
        counts = self.counts
        if ctx.state.pop("counter.entered", False):
            counts.in_flight -= 1
        counts.invocations += 1
        if ctx.failed:
            counts.errors += 1

    def get(self, key: str) -> Any:
        return getattr(self.counts, key, None)
