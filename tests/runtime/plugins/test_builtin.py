import asyncio
import logging

from openfunction.config import FunctionConfig
from openfunction.invocation import HTTP, Invocation
from openfunction.plugins import Pipeline
from openfunction.plugins.builtin import InvocationCounter, InvocationLogger
from support.calls import CallOf


def invoke(pipeline, fail=False):
    inv = Invocation(FunctionConfig(name="fn"), HTTP, request_id="r1")

    async def call(i):
        i.status_code = 500 if fail else 200
        if fail:
            i.error = RuntimeError("x")

    asyncio.run(pipeline.run(inv, CallOf(call)))
    return inv


def test_counter_counts_invocations_and_errors():
    counter = InvocationCounter()
    pipeline = Pipeline([counter], [counter])
    invoke(pipeline)
    invoke(pipeline, fail=True)
    invoke(pipeline)
    assert counter.get("invocations") == 3
    assert counter.get("errors") == 1
    assert counter.get("in_flight") == 0


def test_logger_logs_outcome_and_duration(caplog):
    logger = InvocationLogger()
    with caplog.at_level(logging.INFO, logger="openfunction.invocations"):
        invoke(Pipeline([logger], [logger]), fail=True)
    line = caplog.records[-1].getMessage()
    assert "function=fn" in line and "outcome=error" in line and "status=500" in line
    assert "duration_ms=" in line and "request_id=r1" in line and "error=RuntimeError" in line


def test_logger_times_the_function_and_serves_every_invocation(caplog):
    logger = InvocationLogger()
    pipeline = Pipeline([logger], [logger])
    assert pipeline.shared == ("logger",) and pipeline.simple
    inv = Invocation(FunctionConfig(name="fn"), HTTP, request_id="r2")

    async def slow(i):
        await asyncio.sleep(0.05)

    with caplog.at_level(logging.INFO, logger="openfunction.invocations"):
        asyncio.run(pipeline.run(inv, CallOf(slow)))
    duration = float(caplog.records[-1].getMessage().split("duration_ms=")[1].split()[0])
    assert 50 <= duration < 5000
    assert "logger.started" not in inv.state


def test_logger_listed_only_after_times_from_the_start_of_the_invocation(caplog):
    logger = InvocationLogger()
    inv = Invocation(FunctionConfig(name="fn"), HTTP, request_id="r3")

    async def slow(i):
        await asyncio.sleep(0.05)

    with caplog.at_level(logging.INFO, logger="openfunction.invocations"):
        asyncio.run(Pipeline([], [logger]).run(inv, CallOf(slow)))
    duration = float(caplog.records[-1].getMessage().split("duration_ms=")[1].split()[0])
    assert 50 <= duration < 5000


def test_counter_listed_only_before_warns_at_start_up(caplog):
    InvocationCounter().setup(FunctionConfig(pre_plugins=("counter",)))
    assert "plugin 'counter' is not listed in postPlugins" in caplog.text
    caplog.clear()
    InvocationCounter().setup(FunctionConfig(post_plugins=("counter",)))
    assert caplog.text == ""
