import asyncio
import logging
import time

import pytest

from openfunction.config import FunctionConfig
from openfunction.errors import PluginError
from openfunction.invocation import HTTP, Invocation
from openfunction.plugins import Pipeline, Plugin, PreHookFailed
from support.calls import CallOf


class Recorder(Plugin):
    def __init__(self, name, log, *, fail_pre=False, fail_post=False, required=False,
                 timeout=None, sleep=0.0, is_async=False):
        self.__dict__["name"] = name
        self.log = log
        self.fail_pre, self.fail_post = fail_pre, fail_post
        self.required = required
        self.timeout = timeout
        self.sleep = sleep

    def exec_pre_hook(self, ctx, plugins):
        self.log.append(f"pre:{self.name}")
        if self.sleep:
            time.sleep(self.sleep)
        if self.fail_pre:
            raise RuntimeError("pre failed")

    def exec_post_hook(self, ctx, plugins):
        self.log.append(f"post:{self.name}:{type(ctx.error).__name__ if ctx.error else 'ok'}")
        if self.fail_post:
            raise RuntimeError("post failed")


class AsyncRecorder(Plugin):
    name = "async"

    def __init__(self, log, sleep=0.0, timeout=None):
        self.log = log
        self.sleep = sleep
        self.timeout = timeout

    async def exec_pre_hook(self, ctx, plugins):
        await asyncio.sleep(self.sleep)
        self.log.append("pre:async")

    async def exec_post_hook(self, ctx, plugins):
        self.log.append("post:async")


def run(pipeline, fail=False, log=None):
    invocation = Invocation(FunctionConfig(name="fn"), HTTP)

    async def call(inv):
        if log is not None:
            log.append("function")
        if fail:
            inv.error = ValueError("boom")
            inv.status_code = 500

    asyncio.run(pipeline.run(invocation, CallOf(call)))
    return invocation


def test_order_pre_function_post():
    log = []
    a, b, c = Recorder("a", log), Recorder("b", log), Recorder("c", log)
    run(Pipeline([a, b], [c, a]), log=log)
    assert log == ["pre:a", "pre:b", "function", "post:c:ok", "post:a:ok"]


def test_post_hooks_see_the_error():
    log = []
    run(Pipeline([], [Recorder("a", log)]), fail=True, log=log)
    assert log == ["function", "post:a:ValueError"]


def test_failing_hook_is_logged_and_invocation_goes_on(caplog):
    log = []
    with caplog.at_level(logging.ERROR):
        bad = Recorder("bad", log, fail_pre=True, fail_post=True)
        inv = run(Pipeline([bad], [bad]), log=log)
    assert "function" in log and inv.error is None
    assert "plugin 'bad' pre hook failed" in caplog.text
    assert "plugin 'bad' post hook failed" in caplog.text


def test_required_plugin_failure_stops_the_function_but_post_hooks_run():
    log = []
    guard = Recorder("guard", log, fail_pre=True, required=True)
    after = Recorder("after", log)
    inv = run(Pipeline([guard, after], [after]), log=log)
    assert "function" not in log and "pre:after" not in log
    assert log[-1] == "post:after:PreHookFailed"
    assert isinstance(inv.error, PreHookFailed) and inv.status_code == 500


def test_a_hook_the_plugin_does_not_define_is_not_called(monkeypatch):
    log = []
    base_calls = []
    monkeypatch.setattr(Plugin, "exec_pre_hook", lambda self, ctx, plugins: base_calls.append(1))

    class PostOnly(Plugin):
        name = "post-only"

        def exec_post_hook(self, ctx, plugins):
            log.append("post:post-only")

    plugin = PostOnly()
    run(Pipeline([plugin], [plugin]), log=log)
    assert log == ["function", "post:post-only"]
    assert base_calls == []


def test_async_hooks():
    log = []
    run(Pipeline([AsyncRecorder(log)], [AsyncRecorder(log)]), log=log)
    assert log == ["pre:async", "function", "post:async"]


def test_timeout_of_async_hook(caplog):
    log = []
    slow = AsyncRecorder(log, sleep=2.0, timeout=0.05)
    started = time.perf_counter()
    run(Pipeline([slow], []), log=log)
    assert time.perf_counter() - started < 1.0
    assert log == ["function"] and "timed out" in caplog.text


def test_timeout_of_sync_hook(caplog):
    log = []
    slow = Recorder("slow", log, sleep=0.5, timeout=0.05)

    async def main():
        inv = Invocation(FunctionConfig(name="fn"), HTTP)

        async def call(i):
            log.append("function")

        started = time.perf_counter()
        await Pipeline([slow], []).run(inv, CallOf(call))
        return time.perf_counter() - started

    elapsed = asyncio.run(main())
    assert elapsed < 0.4  # the function did not wait for the abandoned hook
    assert "function" in log and "timed out" in caplog.text


def test_state_is_per_invocation_under_concurrency():
    class Stateful(Plugin):
        name = "stateful"

        async def exec_pre_hook(self, ctx, plugins):
            self.mine = ctx.request_id
            await asyncio.sleep(0.01)

        async def exec_post_hook(self, ctx, plugins):
            await asyncio.sleep(0.01)
            ctx.state["seen"] = self.mine

    class Reader(Plugin):
        name = "reader"

        def exec_post_hook(self, ctx, plugins):
            ctx.state["via_plugins"] = plugins["stateful"].mine

    pipeline = Pipeline([Stateful()], [Stateful(), Reader()])

    async def main():
        invocations = [Invocation(FunctionConfig(), HTTP, request_id=str(i)) for i in range(200)]

        async def call(inv):
            await asyncio.sleep(0.001)

        await asyncio.gather(*(pipeline.run(inv, CallOf(call)) for inv in invocations))
        return invocations

    for inv in asyncio.run(main()):
        assert inv.state == {"seen": inv.request_id, "via_plugins": inv.request_id}


def test_get_and_plugin_set_value():
    class Exposer(Plugin):
        name = "exposer"

        def exec_pre_hook(self, ctx, plugins):
            self.value = 7

        def get(self, key):
            return getattr(self, key, None)

    class Consumer(Plugin):
        name = "consumer"

        def exec_post_hook(self, ctx, plugins):
            ctx.state["got"] = plugins.value("exposer", "value")
            ctx.state["missing"] = plugins.value("nobody", "value")

    inv = run(Pipeline([Exposer()], [Consumer()]))
    assert inv.state == {"got": 7, "missing": None}


@pytest.mark.parametrize("timeout", ["0.5", 0, -1, float("nan"), True])
def test_an_invalid_timeout_stops_start_up(timeout):
    class Slow(Plugin):
        name = "slow"

        def exec_pre_hook(self, ctx, plugins):
            pass

    Slow.timeout = timeout
    with pytest.raises(PluginError, match=r"plugin 'slow' has an invalid timeout"):
        Pipeline([Slow()], [])
