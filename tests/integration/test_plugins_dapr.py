"""Plugins around Dapr events: a real daprd delivers cron events to an async function."""

import textwrap

import pytest

from support.dapr import (
    SidecarPorts, component, function_context, function_env, input_binding, start_daprd,
    wait_until, write_components,
)
from support.process import free_port, run_function

pytestmark = pytest.mark.integration

PLUGIN = """
    import os

    from openfunction.plugins import Plugin

    class Trail(Plugin):
        name = "trail"

        def exec_pre_hook(self, ctx, plugins):
            ctx.state["trail"] = [f"pre:{ctx.trigger}:{ctx.input_name}"]

        async def exec_post_hook(self, ctx, plugins):
            ctx.state["trail"].append("post:" + ("error" if ctx.error else "ok"))
            with open(os.environ["TRAIL_FILE"], "a") as out:
                out.write(",".join(ctx.state["trail"]) + "\\n")
"""

FUNCTION = """
    def handler(ctx, data):
        ctx.invocation.state["trail"].append("function")
"""


def test_hooks_wrap_each_dapr_event_in_order(tmp_path):
    (tmp_path / "plugins").mkdir()
    (tmp_path / "plugins" / "trail.py").write_text(textwrap.dedent(PLUGIN))
    (tmp_path / "main.py").write_text(textwrap.dedent(FUNCTION))
    resources = write_components(tmp_path / "resources",
                                 [component("cron", "bindings.cron", schedule="@every 1s")])
    port, ports = free_port(), SidecarPorts.free()
    ctx = function_context("trailed", port, inputs={"cron": input_binding("cron")})
    ctx.update(prePlugins=["counter", "trail"], postPlugins=["trail", "counter", "logger"])
    trail = tmp_path / "trailed.trail"
    env = function_env(ctx, ports, TRAIL_FILE=str(trail))
    with run_function(tmp_path / "main.py", "handler", env=env, port=port) as fn, \
            start_daprd(resources, port, ports=ports, wait="app"):
        def two_events():
            lines = trail.read_text().splitlines() if trail.exists() else []
            return lines[:2] if len(lines) >= 2 else None

        lines = wait_until(two_events, timeout=20, what="two cron events through the plugins")
        assert fn.terminate() == 0
    assert lines == ["pre:bindings:cron,function,post:ok"] * 2
    assert "function=trailed trigger=bindings input=cron outcome=ok" in fn.log
