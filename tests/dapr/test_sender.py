"""Sender routing: which Dapr call each output gets, and what payload it carries."""

import asyncio
import gc
import json
import time

import pytest

from dapr_doubles import RecordingConnection, run
from openfunction.config import (
    Component, DaprEndpoint, FunctionConfig, TracingConfig, TracingProvider,
)
from openfunction.context import OutgoingMessage
from openfunction.dapr import innerevent
from openfunction.dapr.connection import DaprConnection, DaprSettings
from openfunction.dapr.dispatcher import EventDispatcher
from openfunction.dapr.outcome import SEND_FAILURES, Outcome, outcome_of
from openfunction.dapr.sender import DaprSender, content_type_of
from openfunction.errors import DaprUnavailableError, OutputError
from openfunction.invocation import BINDING, HTTP, TOPIC, Invocation
from support.process import free_port

REDIS = Component("sink", "redis-out", "bindings.redis", "redis-out", {"key": "k"}, "create")
KAFKA = Component("queue", "kafka-out", "bindings.kafka", "kafka-out", {}, "")
TOPIC_OUT = Component("bus", "pubsub-out", "pubsub.redis", "orders", {"ttlInSeconds": "60"})
TRACING = TracingConfig(enabled=True, provider=TracingProvider("skywalking"))


def sender(tracing=None, fail=None):
    config = FunctionConfig(name="fn", outputs={c.name: c for c in (REDIS, KAFKA, TOPIC_OUT)},
                            tracing=tracing)
    connection = RecordingConnection(fail)
    return DaprSender(config, connection), connection, config


def send(s, config, output, data, *, trigger=TOPIC, carrier=None, metadata=None, raw=False):
    invocation = Invocation(config, trigger, carrier=dict(carrier or {}))
    message = OutgoingMessage(output, data, dict(metadata or {}), raw)
    return run(s.send(message, invocation)), invocation


def test_binding_gets_invoke_binding_with_operation_and_metadata():
    s, conn, config = sender()
    result, _ = send(s, config, REDIS, b'{"a":1}')
    assert result == b"ok:redis-out"
    assert conn.calls == [("binding", "redis-out", "create", b'{"a":1}', {"key": "k"})]


def test_binding_without_operation_defaults_to_create():
    s, conn, config = sender()
    send(s, config, KAFKA, b"x")
    assert conn.calls[0][2] == "create"


def test_topic_gets_publish_event_to_its_uri():
    s, conn, config = sender()
    result, _ = send(s, config, TOPIC_OUT, b'{"a":1}')
    assert result is None
    assert conn.calls == [("publish", "pubsub-out", "orders", b'{"a":1}', "application/json",
                           {"ttlInSeconds": "60"})]


def test_tracing_off_sends_raw_payload():
    s, conn, config = sender()
    send(s, config, TOPIC_OUT, b"plain", carrier={"sw8": "in"}, metadata={"sw8": "out"})
    assert conn.calls[0][3] == b"plain"
    assert conn.calls[0][4] == "text/plain"


def test_tracing_on_wraps_topic_payload_with_metadata_over_carrier():
    s, conn, config = sender(TRACING)
    send(s, config, TOPIC_OUT, b'{"a":1}', carrier={"sw8": "incoming", "baggage": "b=1"},
         metadata={"sw8": "exit-span"})
    _, pubsub, topic, payload, content_type, metadata = conn.calls[0]
    assert content_type == "application/json"
    assert metadata == {"ttlInSeconds": "60"}
    event = innerevent.unwrap(payload)
    assert event.user_data == b'{"a":1}'
    assert event.metadata == {"sw8": "exit-span", "baggage": "b=1"}
    assert json.loads(payload)["type"] == "io.openfunction.function.fn"


def test_tracing_on_wraps_queue_bindings_only():
    s, conn, config = sender(TRACING)
    send(s, config, KAFKA, b"q", metadata={"sw8": "x"})
    send(s, config, REDIS, b"r", metadata={"sw8": "x"})
    assert innerevent.unwrap(conn.calls[0][3]).user_data == b"q"
    # not traceable: raw payload, the plugins' metadata travels as binding metadata
    assert conn.calls[1][3] == b"r"
    assert conn.calls[1][4] == {"key": "k", "sw8": "x"}


def test_raw_message_is_never_wrapped():
    s, conn, config = sender(TRACING)
    send(s, config, TOPIC_OUT, b"raw", raw=True)
    assert conn.calls[0][3] == b"raw"


def test_http_request_headers_are_not_merged_into_the_inner_event():
    s, conn, config = sender(TRACING)
    send(s, config, TOPIC_OUT, b"x", trigger=HTTP, carrier={"cookie": "secret"},
         metadata={"sw8": "exit"})
    assert innerevent.unwrap(conn.calls[0][3]).metadata == {"sw8": "exit"}


def test_failed_send_is_recorded_so_the_event_is_not_acknowledged():
    s, _, config = sender(fail=OutputError("boom"))
    invocation = Invocation(config, BINDING)
    with pytest.raises(OutputError):
        run(s.send(OutgoingMessage(REDIS, b"x"), invocation))
    assert len(invocation.state[SEND_FAILURES]) == 1
    # even when the function swallowed the error
    assert outcome_of(invocation)[0] is Outcome.RETRY


def test_topic_output_without_topic_is_a_clear_error():
    s, _, config = sender()
    broken = Component("bad", "pubsub-out", "pubsub.redis", "")
    with pytest.raises(OutputError, match="no topic"):
        send(s, config, broken, b"x")


@pytest.mark.parametrize("payload,expected", [
    (b'{"a":1}', "application/json"), (b"[1]", "application/json"), (b"42", "application/json"),
    (b"hello", "text/plain"), (b"", "text/plain"), (b"\xff\x00", "application/octet-stream"),
])
def test_content_type_of_raw_payloads(payload, expected):
    assert content_type_of(payload) == expected


def test_no_sidecar_is_a_clear_error_not_a_hang():
    port = free_port()  # nothing listens there
    settings = DaprSettings(DaprEndpoint("127.0.0.1", port, free_port()), connect_timeout=0.3)
    s = DaprSender(FunctionConfig(name="fn", outputs={"sink": REDIS}), DaprConnection(settings))
    started = time.monotonic()
    with pytest.raises(DaprUnavailableError) as info:
        run(s.send(OutgoingMessage(REDIS, b"x"), Invocation(s.config, HTTP)))
    assert time.monotonic() - started < 3
    text = str(info.value)
    assert f"DAPR_GRPC_PORT={port}" in text and "DAPR_HOST=127.0.0.1" in text
    assert "fix:" in text


def test_per_call_request_metadata_overrides_the_outputs_even_when_wrapped():
    s, conn, config = sender(tracing=TRACING)
    invocation = Invocation(config, TOPIC)
    message = OutgoingMessage(KAFKA, b"v", {"sw8": "x"}, False, {"key": "order-42"})
    run(s.send(message, invocation))
    assert conn.calls[0][4] == {"key": "order-42"}


# ---------------------------------------------------------------- sends the function did not await

UNAWAITED_SOURCE = """
    import asyncio

    async def handler(ctx, data):
        if data == "ensure_future":
            asyncio.ensure_future(ctx.send_async({"x": 1}, "out"))
        elif data == "create_task":
            asyncio.create_task(ctx.send_async({"x": 1}, "out"))
        else:
            ctx.send_async({"x": 1}, "out")  # not even awaited
        return "done"
"""

UNAWAITED_CONTEXT = {
    "name": "fn", "version": "v1", "runtime": "Async", "port": "8080",
    "inputs": {"ticks": {"componentName": "cron", "componentType": "bindings.cron"}},
    "outputs": {"out": {"componentName": "badbinding", "componentType": "bindings.redis"}},
}


class SlowConnection(RecordingConnection):
    """Answers after a while, as a sidecar does: the function has returned by then."""

    async def invoke_binding(self, name, operation, data, metadata):
        await asyncio.sleep(0.02)
        return await super().invoke_binding(name, operation, data, metadata)


@pytest.mark.parametrize("how", ["ensure_future", "create_task", "never-awaited"])
@pytest.mark.parametrize("fails", [True, False], ids=["failing", "succeeding"])
def test_a_send_the_function_did_not_await_is_waited_for(make_function, caplog, how, fails):
    fn = make_function(UNAWAITED_SOURCE, UNAWAITED_CONTEXT)
    error = OutputError("invoking binding 'badbinding' failed", "the Dapr sidecar answered ...")
    connection = SlowConnection(error if fails else None)
    fn.services.sender = DaprSender(fn.config, connection)

    async def main():
        fn.services.loop = asyncio.get_running_loop()
        try:
            outcome = await EventDispatcher(fn.config, fn.runner).binding_event("cron", how.encode())
        finally:
            fn.runner.close()
        gc.collect()
        return outcome

    outcome, reason = run(main())
    assert [call[3] for call in connection.calls] == [b'{"x":1}']  # sent before the answer
    if fails:
        assert outcome is Outcome.RETRY and "invoking binding 'badbinding' failed" in reason
        logged = [r.getMessage() for r in caplog.records]
        assert not [m for m in logged if "never retrieved" in m]
        assert [m for m in logged if m.startswith("ctx.send_async() to output 'out' failed")]
    else:
        assert outcome is Outcome.SUCCESS


@pytest.mark.parametrize("payload", [b"[" * 100_000, b"[" * 100_000 + b"]" * 100_000],
                         ids=["unclosed", "valid-but-deep"])
def test_content_type_of_deeply_nested_payload_is_text_not_an_error(payload):
    assert content_type_of(payload) == "text/plain"
