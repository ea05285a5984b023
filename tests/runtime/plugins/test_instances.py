import asyncio
import logging

import pytest

from openfunction.config import FunctionConfig
from openfunction.invocation import HTTP, Invocation
from openfunction.plugins import Pipeline, Plugin
from openfunction.plugins.builtin import InvocationCounter, InvocationLogger
from openfunction.plugins.instances import needs_own_instance
from support.calls import CallOf


class Noop(Plugin):
    name = "noop"

    def exec_pre_hook(self, ctx, plugins):
        return None


class SetsInHook(Plugin):
    name = "sets"

    def exec_pre_hook(self, ctx, plugins):
        self.started = 1


class SetsInInitOnly(Plugin):
    name = "init-only"

    def __init__(self):
        self.shared = {}

    def setup(self, config):
        self.config = config

    def exec_pre_hook(self, ctx, plugins):
        self.shared[ctx.request_id] = True  # a shared object, mutated: no own instance needed


class UsesSetattr(Plugin):
    name = "setattr"

    def exec_pre_hook(self, ctx, plugins):
        setattr(self, "started", 1)


class SetsInClosure(Plugin):
    name = "closure"

    def exec_pre_hook(self, ctx, plugins):
        def remember():
            self.seen = True

        remember()


class SetsInHelperMethod(Plugin):
    name = "helper"

    def exec_pre_hook(self, ctx, plugins):
        self._remember(ctx)

    def _remember(self, ctx):
        self.last = ctx.request_id


class Base(Plugin):
    def exec_post_hook(self, ctx, plugins):
        self.done = True


class InheritsWrite(Base):
    name = "inherits"


class OwnInit(Plugin):
    name = "own-init"

    def init(self):
        return self


class DeclaredShared(SetsInHook):
    name = "declared-shared"
    per_invocation = False


class DeclaredOwn(Noop):
    name = "declared-own"
    per_invocation = True


def test_decision_from_the_class_code():
    assert not needs_own_instance(Noop())
    assert not needs_own_instance(SetsInInitOnly())
    assert needs_own_instance(SetsInHook())
    assert needs_own_instance(UsesSetattr())
    assert needs_own_instance(SetsInClosure())
    assert needs_own_instance(SetsInHelperMethod())
    assert needs_own_instance(InheritsWrite())
    assert needs_own_instance(OwnInit())


def test_declaration_wins():
    assert not needs_own_instance(DeclaredShared())
    assert needs_own_instance(DeclaredOwn())


def test_builtins():
    assert not needs_own_instance(InvocationCounter())
    assert not needs_own_instance(InvocationLogger())


def test_pipeline_shares_only_what_is_safe():
    noop, sets = Noop(), SetsInHook()
    pipeline = Pipeline([noop, sets], [noop, sets])
    assert pipeline.shared == ("noop",)
    inv = Invocation(FunctionConfig(), HTTP)

    async def call(inv):
        return None

    asyncio.run(pipeline.run(inv, CallOf(call)))
    assert inv.plugins["noop"] is noop
    assert inv.plugins["sets"] is not sets and inv.plugins["sets"].started == 1
    assert not hasattr(sets, "started")


def _record(plugin, value):
    # a helper outside the class: the code scan cannot see this write
    plugin.last = value


class WritesThroughHelper(Plugin):
    name = "sneaky"

    async def exec_pre_hook(self, ctx, plugins):
        _record(self, ctx.request_id)
        await asyncio.sleep(0.005)

    def exec_post_hook(self, ctx, plugins):
        ctx.state["last"] = self.last


class WritesThroughHelperInDef(Plugin):
    # `def` hooks: plain calls until the write
    name = "sneaky"

    def exec_pre_hook(self, ctx, plugins):
        _record(self, ctx.request_id)

    def exec_post_hook(self, ctx, plugins):
        ctx.state["last"] = self.last


@pytest.mark.parametrize("cls", [WritesThroughHelper, WritesThroughHelperInDef])
def test_a_shared_plugin_that_writes_gets_own_instances_from_then_on(caplog, cls):
    plugin = cls()
    pipeline = Pipeline([plugin], [plugin])
    assert pipeline.shared == ("sneaky",)
    assert pipeline.simple

    async def call(inv):
        return None

    async def main():
        first = Invocation(FunctionConfig(), HTTP, request_id="first")
        with caplog.at_level(logging.WARNING, logger="openfunction.plugins"):
            await pipeline.run(first, CallOf(call))
        assert first.state["last"] == "first"  # the write went through
        assert pipeline.shared == ()
        assert not pipeline.simple
        later = [Invocation(FunctionConfig(), HTTP, request_id=str(i)) for i in range(50)]
        await asyncio.gather(*(pipeline.run(inv, CallOf(call)) for inv in later))
        return later

    later = asyncio.run(main())
    assert [inv.state["last"] for inv in later] == [str(i) for i in range(50)]
    warnings = [r for r in caplog.records if "sneaky" in r.getMessage()]
    assert len(warnings) == 1
    assert "per_invocation = True" in warnings[0].getMessage()
    assert type(plugin) is cls  # its own class again


def test_close_may_set_attributes_on_a_shared_plugin(caplog):
    class Closing(Plugin):
        name = "closing"

        def close(self):
            self.closed = True

    plugin = Closing()
    pipeline = Pipeline([plugin], [])
    assert pipeline.shared == ("closing",)
    with caplog.at_level(logging.WARNING, logger="openfunction.plugins"):
        asyncio.run(pipeline.close())
    assert plugin.closed and type(plugin) is Closing
    assert "closing" not in caplog.text
