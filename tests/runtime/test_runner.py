"""The runner with plugins, through the server: the one loop for shared plugins without
timeouts (`Pipeline.simple`), with `def`, `async def` and awaitable-returning hooks."""

import asyncio
import textwrap

import pytest

from openfunction.invocation import BINDING, HTTP, Invocation
from openfunction.request import BadRequest

PLUGINS = """
    import asyncio
    from openfunction.plugins import Plugin


    class _Recording(Plugin):
        def exec_pre_hook(self, ctx, plugins):
            ctx.state.setdefault("order", []).append(f"pre:{self.name}")

        def exec_post_hook(self, ctx, plugins):
            ctx.state["order"].append(f"post:{self.name}:{ctx.status_code}")
            if ctx.response is not None:
                ctx.response.headers["x-order"] = ",".join(ctx.state["order"])


    class First(_Recording):
        name = "first"


    class Second(_Recording):
        name = "second"


    class Deferred(_Recording):
        # `def` hooks that return an awaitable: awaited in order
        name = "deferred"

        def exec_pre_hook(self, ctx, plugins):
            return self._later(ctx, "pre")

        def exec_post_hook(self, ctx, plugins):
            return self._later(ctx, "post")

        async def _later(self, ctx, phase):
            await asyncio.sleep(0)
            ctx.state.setdefault("order", []).append(f"{phase}:deferred")


    class Strict(_Recording):
        name = "strict"
        required = True

        def exec_pre_hook(self, ctx, plugins):
            super().exec_pre_hook(ctx, plugins)
            raise RuntimeError("no entry")


    class Async(_Recording):
        name = "async"

        async def exec_pre_hook(self, ctx, plugins):
            super().exec_pre_hook(ctx, plugins)
"""

FUNCTIONS = {
    "def": "def main(request):\n    return 'ok'\n",
    "async def": "async def main(request):\n    return 'ok'\n",
}


@pytest.fixture
def serve(make_client, tmp_path):
    (tmp_path / "plugins").mkdir()
    (tmp_path / "plugins" / "recording.py").write_text(textwrap.dedent(PLUGINS))

    def factory(function, pre, post):
        """`function`: a key of FUNCTIONS, or the source of a function `main`."""
        context = {"name": "fn", "runtime": "Knative", "prePlugins": pre, "postPlugins": post}
        return make_client(FUNCTIONS.get(function, function), target="main", func_context=context)

    return factory


@pytest.mark.parametrize("function", FUNCTIONS)
def test_def_hooks_run_in_order(serve, function):
    client = serve(function, ["first", "second"], ["second", "first"])
    assert client.function.pipeline.simple
    response = client.get("/")
    assert response.text == "ok"
    assert response.headers["x-order"] == "pre:first,pre:second,post:second:200,post:first:200"


@pytest.mark.parametrize("function", FUNCTIONS)
def test_awaitables_returned_by_def_hooks_are_awaited_in_order(serve, function):
    client = serve(function, ["first", "deferred", "second"], ["deferred", "second", "first"])
    assert client.function.pipeline.simple
    response = client.get("/")
    assert response.text == "ok"
    assert response.headers["x-order"] == (
        "pre:first,pre:deferred,pre:second,post:deferred,post:second:200,post:first:200")


@pytest.mark.parametrize("function", FUNCTIONS)
def test_required_def_hook_failing_stops_the_function(serve, function, caplog):
    client = serve(function, ["first", "strict", "second"], ["first"])
    assert client.function.pipeline.simple
    response = client.get("/")
    assert response.status_code == 500
    assert "pre hook of required plugin 'strict' failed (request id" in response.text
    assert "no entry" not in response.text  # the cause is logged, not answered
    assert "plugin 'strict' pre hook failed" in caplog.text and "no entry" in caplog.text
    assert "failed (request" in caplog.text and "function 'main' failed" not in caplog.text


def test_an_async_hook_runs_in_order_among_def_hooks(serve):
    client = serve("async def", ["first", "async", "second"], ["first"])
    assert client.function.pipeline.simple
    response = client.get("/")
    assert response.text == "ok"
    assert response.headers["x-order"] == "pre:first,pre:async,pre:second,post:first:200"


def test_required_hook_failing_after_an_async_hook_stops_the_function(serve):
    client = serve("async def", ["async", "strict", "second"], ["first"])
    response = client.get("/")
    assert response.status_code == 500
    assert "pre hook of required plugin 'strict' failed" in response.text


CE_HEADERS = {"ce-specversion": "1.0", "ce-type": "t", "ce-source": "/s", "ce-id": "1",
              "content-type": "application/json", "x-request-id": "req-1"}


@pytest.mark.parametrize("pre", [["first"], ["first", "async"]])
@pytest.mark.parametrize("headers", [CE_HEADERS, {"content-type": "application/json", "x-request-id": "req-1"}])
def test_malformed_input_goes_through_the_hooks_as_a_400(serve, pre, headers):
    client = serve("def main(ctx, data):\n    raise AssertionError('not called')\n", pre, ["first"])
    response = client.post("/", headers=headers, content=b"{nope")
    assert response.status_code == 400 and response.text.endswith("(request id req-1)\n")
    assert response.headers["x-order"] == ",".join(f"pre:{name}" for name in pre) + ",post:first:400"


@pytest.mark.parametrize("function", [
    "import sys\ndef main(request):\n    sys.exit(1)\n",
    "import sys\nasync def main(request):\n    sys.exit(1)\n",
])
def test_sys_exit_is_a_failure_the_post_hooks_see(serve, function, caplog):
    client = serve(function, ["first"], ["first"])
    response = client.get("/", headers={"x-request-id": "req-2"})
    assert response.status_code == 500 and "req-2" in response.text
    assert "SystemExit: 1" in caplog.text and "Exception in ASGI application" not in caplog.text


def test_bad_request_read_by_the_function_goes_through_the_hooks(serve):
    client = serve("def main(request):\n    return request.get_json()\n", ["first"], ["first"])
    response = client.post("/", content=b"{nope", headers={"content-type": "application/json"})
    assert response.status_code == 400
    assert response.headers["x-order"] == "pre:first,post:first:400"


def _run(client, trigger, **fields):
    runner = client.function.runner
    invocation = Invocation(client.function.config, trigger, request_id="r", **fields)
    asyncio.run(runner.run(invocation))
    return invocation


# with and without plugins: the pipeline awaits the function itself (the runner is its
# FunctionCall), so it must record every outcome as the runner alone does
WITH_AND_WITHOUT_PLUGINS = pytest.mark.parametrize("plugins", [[], ["first"]], ids=["alone", "plugins"])


@WITH_AND_WITHOUT_PLUGINS
@pytest.mark.parametrize("raised", ["KeyboardInterrupt()", "asyncio.CancelledError()"])
@pytest.mark.parametrize("kind", ["def", "async def"])
def test_keyboard_interrupt_and_cancelled_error_raised_by_the_function_are_failures(
        serve, raised, kind, plugins):
    client = serve(f"import asyncio\n{kind} main(request):\n    raise {raised}\n", plugins, plugins)
    invocation = _run(client, HTTP)
    expected = KeyboardInterrupt if raised.startswith("Keyboard") else asyncio.CancelledError
    assert isinstance(invocation.error, expected) and invocation.status_code == 500
    assert invocation.state.get("order", []) == (["pre:first", "post:first:500"] if plugins else [])


@WITH_AND_WITHOUT_PLUGINS
@pytest.mark.parametrize("kind", ["def", "async def"])
def test_a_return_value_that_makes_no_response_is_a_failure(serve, kind, plugins):
    client = serve(f"{kind} main(request):\n    return object()\n", plugins, plugins)
    invocation = _run(client, HTTP)
    assert type(invocation.error).__name__ == "ReturnValueError"
    assert invocation.status_code == 500 and invocation.response is None
    assert invocation.state.get("order", []) == (["pre:first", "post:first:500"] if plugins else [])


@WITH_AND_WITHOUT_PLUGINS
def test_cancelling_the_invocation_still_cancels_it(serve, plugins):
    client = serve("import asyncio\nasync def main(request):\n    await asyncio.sleep(10)\n",
                   plugins, plugins)
    invocation = Invocation(client.function.config, HTTP, request_id="r")

    async def cancel_it():
        task = asyncio.ensure_future(client.function.runner.run(invocation))
        await asyncio.sleep(0.05)
        task.cancel()
        await task

    with pytest.raises(asyncio.CancelledError):
        asyncio.run(cancel_it())
    assert invocation.error is None
    # the invocation ends where it was cancelled: no post hook runs
    assert invocation.state.get("order", []) == (["pre:first"] if plugins else [])


def test_bad_request_in_a_dapr_event_is_a_failure(make_client):
    client = make_client("""
        from openfunction.request import parse_json
        def main(ctx, data):
            return parse_json(data)
    """, "main")
    invocation = _run(client, BINDING, data=b"{nope")
    assert isinstance(invocation.error, BadRequest) and invocation.status_code == 500
    assert invocation.response is None


@pytest.mark.parametrize("value", ["abc", "0", "-3", "\u00b2"])
def test_an_invalid_thread_count_names_the_variable(value):
    from openfunction.errors import ConfigError
    from openfunction.runner import thread_count

    with pytest.raises(ConfigError, match="FUNCTION_THREADS is invalid"):
        thread_count({"FUNCTION_THREADS": value})
    assert thread_count({}) == 40 and thread_count({"FUNCTION_THREADS": "8"}) == 8
