"""The runner's own path for `def` hooks (`Pipeline.inline`): same semantics as `Pipeline.run`."""

import textwrap

import pytest

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
        context = {"name": "fn", "runtime": "Knative", "prePlugins": pre, "postPlugins": post}
        return make_client(FUNCTIONS[function], target="main", func_context=context)

    return factory


@pytest.mark.parametrize("function", FUNCTIONS)
def test_def_hooks_run_inline_in_order(serve, function):
    client = serve(function, ["first", "second"], ["second", "first"])
    assert client.function.pipeline.inline
    response = client.get("/")
    assert response.text == "ok"
    assert response.headers["x-order"] == "pre:first,pre:second,post:second:200,post:first:200"


@pytest.mark.parametrize("function", FUNCTIONS)
def test_awaitables_returned_by_def_hooks_are_awaited_in_order(serve, function):
    client = serve(function, ["first", "deferred", "second"], ["deferred", "second", "first"])
    assert client.function.pipeline.inline
    response = client.get("/")
    assert response.text == "ok"
    assert response.headers["x-order"] == (
        "pre:first,pre:deferred,pre:second,post:deferred,post:second:200,post:first:200")


@pytest.mark.parametrize("function", FUNCTIONS)
def test_required_def_hook_failing_stops_the_function(serve, function, caplog):
    client = serve(function, ["first", "strict", "second"], ["first"])
    assert client.function.pipeline.inline
    response = client.get("/")
    assert response.status_code == 500
    assert "pre hook of required plugin 'strict' failed" in response.text
    assert "plugin 'strict' pre hook failed" in caplog.text


def test_an_async_hook_takes_the_coroutine_path(serve):
    client = serve("async def", ["first", "async", "second"], ["first"])
    assert not client.function.pipeline.inline
    response = client.get("/")
    assert response.text == "ok"
    assert response.headers["x-order"] == "pre:first,pre:async,pre:second,post:first:200"


def test_required_hook_failing_after_an_async_hook_stops_the_function(serve):
    client = serve("async def", ["async", "strict", "second"], ["first"])
    response = client.get("/")
    assert response.status_code == 500
    assert "pre hook of required plugin 'strict' failed" in response.text
