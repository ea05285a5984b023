"""The gRPC app callbacks, served by a real grpc.aio server to a real gRPC client.

The function, its loader and runner are real; only the sidecar is replaced (sends are
recorded instead of reaching daprd).
"""

import asyncio
import json
import logging
import threading
from pathlib import Path

import grpc
import grpc.aio
import pytest
from dapr.proto.runtime.v1 import appcallback_pb2 as pb
from dapr.proto.runtime.v1 import appcallback_pb2_grpc as pb_grpc
from google.protobuf import empty_pb2, struct_pb2

from dapr_doubles import FUNC_CONTEXT, SOURCE, RecordingSender
from openfunction.dapr.app_token import AppToken, grpc_interceptor
from openfunction.dapr.dispatcher import EventDispatcher
from openfunction.dapr.grpc_app import AppCallbackService

FIXTURES = Path(__file__).parent / "fixtures"
Status = pb.TopicEventResponse.TopicEventResponseStatus

@pytest.fixture
def serve(make_function):
    """Run `body(stub, fn)` against the servicer on a loopback port."""

    def runner(body, source=SOURCE, func_context=FUNC_CONTEXT, token=None):
        fn = make_function(source, func_context)
        sender = RecordingSender()
        fn.services.sender = sender

        async def main():
            fn.services.loop = asyncio.get_running_loop()
            server = grpc.aio.server(
                interceptors=[grpc_interceptor(AppToken(token))] if token else None)
            AppCallbackService(EventDispatcher(fn.config, fn.runner)).register(server)
            port = server.add_insecure_port("127.0.0.1:0")
            await server.start()
            try:
                async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
                    stubs = (pb_grpc.AppCallbackStub(channel), pb_grpc.AppCallbackAlphaStub(channel),
                             pb_grpc.AppCallbackHealthCheckStub(channel))
                    return await body(*stubs)
            finally:
                await server.stop(0)
                fn.runner.close()

        result = asyncio.run(main())
        return result, fn.loaded.func.__globals__["SEEN"], sender

    return runner


def test_subscription_lists(serve):
    async def body(stub, alpha, health):
        return (await stub.ListInputBindings(empty_pb2.Empty()),
                await stub.ListTopicSubscriptions(empty_pb2.Empty()))

    (bindings, topics), _, _ = serve(body)
    assert list(bindings.bindings) == ["cron"]
    subs = sorted((s.pubsub_name, s.topic, dict(s.metadata), s.dead_letter_topic)
                  for s in topics.subscriptions)
    assert subs == [("bus", "audit", {}, "audit-dead"),
                    ("bus", "orders", {"rawPayload": "false"}, "")]


def test_binding_event_success_and_failure(serve):
    async def body(stub, alpha, health):
        ok = await stub.OnBindingEvent(pb.BindingEventRequest(
            name="cron", data=b'{"n":1}', metadata={"readTimeUTC": "now"}))
        with pytest.raises(grpc.aio.AioRpcError) as failed:
            await stub.OnBindingEvent(pb.BindingEventRequest(name="cron", data=b'"fail"'))
        with pytest.raises(grpc.aio.AioRpcError) as retried:
            await stub.OnBindingEvent(pb.BindingEventRequest(name="cron", data=b'"retry"'))
        dropped = await stub.OnBindingEvent(pb.BindingEventRequest(name="cron", data=b'"drop"'))
        return ok, failed.value, retried.value, dropped

    (ok, failed, retried, dropped), seen, _ = serve(body)
    assert ok == pb.BindingEventResponse() and dropped == pb.BindingEventResponse()
    assert failed.code() is grpc.StatusCode.UNKNOWN
    assert "ValueError: failing on purpose" in failed.details()
    assert "not yet" in retried.details()
    name, data, event, carrier = seen[0]
    assert (name, data, carrier) == ("ticks", {"n": 1}, {})
    assert event.component == "cron" and event.metadata == {"readTimeUTC": "now"}
    assert event.data == b'{"n":1}'


def test_topic_event_status_mapping(serve):
    def request(data, **kw):
        return pb.TopicEventRequest(id="e1", source="src", type="com.dapr.event.sent",
                                    spec_version="1.0", data_content_type="application/json",
                                    data=data, topic="orders", pubsub_name="bus", **kw)

    async def body(stub, alpha, health):
        statuses = []
        for data in (b'{"x":1}', b'"fail"', b'"retry"', b'"drop"', b'"raise-drop"'):
            statuses.append((await stub.OnTopicEvent(request(data))).status)
        unknown = await stub.OnTopicEvent(pb.TopicEventRequest(
            pubsub_name="bus", topic="nobody", data=b"x"))
        return statuses, unknown.status

    (statuses, unknown), seen, _ = serve(body)
    assert statuses == [Status.SUCCESS, Status.RETRY, Status.RETRY, Status.DROP, Status.DROP]
    assert unknown == Status.DROP
    assert seen[0][2].id == "e1" and seen[0][2].topic == "orders" and seen[0][2].pubsub == "bus"


def test_topic_event_extensions_and_content_types(serve):
    ext = struct_pb2.Struct()
    ext.update({"traceparent": "00-abc-def-01", "pubsubname": "bus"})

    async def body(stub, alpha, health):
        for data, ctype in ((b"hello", "text/plain"), (b"\x00\x01", "application/octet-stream"),
                            (b'{"a":[1]}', "application/json"), (b"", "")):
            await stub.OnTopicEvent(pb.TopicEventRequest(
                pubsub_name="bus", topic="audit", data=data, data_content_type=ctype,
                extensions=ext))

    _, seen, _ = serve(body)
    assert [s[1] for s in seen] == ["hello", b"\x00\x01", {"a": [1]}, None]
    assert all(s[0] == "audit" for s in seen)
    assert seen[0][2].extensions["traceparent"] == "00-abc-def-01"


def test_inner_event_is_unwrapped(serve):
    go_event = (FIXTURES / "go-inner-event-kubernetes.json").read_bytes()

    async def body(stub, alpha, health):
        topic = await stub.OnTopicEvent(pb.TopicEventRequest(
            pubsub_name="bus", topic="orders", data=go_event, data_content_type="application/json"))
        await stub.OnBindingEvent(pb.BindingEventRequest(name="cron", data=go_event))
        return topic.status

    status, seen, _ = serve(body)
    assert status == Status.SUCCESS
    for _, data, event, carrier in seen:
        assert data == {"order": 42}
        assert carrier["traceparent"].startswith("00-4bf92f35")
        assert "sw8" in carrier
        assert event.data == go_event  # the raw event keeps the envelope


def test_inner_event_published_as_the_cloudevent_itself(serve):
    """Published with content type application/cloudevents+json, daprd keeps the inner
    event as the envelope: the request's own type is the inner event type."""
    doc = json.loads((FIXTURES / "go-inner-event-self-host.json").read_bytes())
    import base64
    data = base64.b64decode(doc["data_base64"])

    async def body(stub, alpha, health):
        return await stub.OnTopicEvent(pb.TopicEventRequest(
            id=doc["id"], type=doc["type"], source=doc["source"], pubsub_name="bus",
            topic="orders", data=data, data_content_type="application/json"))

    response, seen, _ = serve(body)
    assert response.status == Status.SUCCESS
    assert seen[0][1] == b"hello"


def test_send_from_an_event_goes_to_the_sender(serve):
    async def body(stub, alpha, health):
        return await stub.OnTopicEvent(pb.TopicEventRequest(
            pubsub_name="bus", topic="orders", data=b'{"forward":{"k":"v"}}',
            data_content_type="application/json"))

    response, _, sender = serve(body)
    assert response.status == Status.SUCCESS
    assert [(m.output.name, m.data) for m in sender.sent] == [("out", b'{"k":"v"}')]


def test_bulk_topic_events_get_one_status_each(serve):
    ce = pb.TopicEventCERequest(id="c1", source="s", type="t", spec_version="1.0",
                                data_content_type="application/json", data=b'"retry"')
    request = pb.TopicEventBulkRequest(
        id="bulk", pubsub_name="bus", topic="orders", metadata={"shared": "1"},
        entries=[
            pb.TopicEventBulkRequestEntry(entry_id="a", bytes=b'{"ok":1}',
                                          content_type="application/json", metadata={"m": "a"}),
            pb.TopicEventBulkRequestEntry(entry_id="b", bytes=b'"fail"',
                                          content_type="application/json"),
            pb.TopicEventBulkRequestEntry(entry_id="c", cloud_event=ce),
            pb.TopicEventBulkRequestEntry(entry_id="d", bytes=b'"drop"',
                                          content_type="application/json"),
        ])

    async def body(stub, alpha, health):
        return (await stub.OnBulkTopicEvent(request),
                await alpha.OnBulkTopicEventAlpha1(request))

    (current, alpha), seen, _ = serve(body)
    expected = [("a", Status.SUCCESS), ("b", Status.RETRY), ("c", Status.RETRY),
                ("d", Status.DROP)]
    assert [(s.entry_id, s.status) for s in current.statuses] == expected
    assert [(s.entry_id, s.status) for s in alpha.statuses] == expected
    first = next(s for s in seen if s[1] == {"ok": 1})
    assert first[2].metadata == {"shared": "1", "m": "a"} and first[2].id == "a"


def test_health_check_and_unimplemented_invoke(serve):
    from dapr.proto.common.v1 import common_pb2

    async def body(stub, alpha, health):
        await health.HealthCheck(empty_pb2.Empty())
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await stub.OnInvoke(common_pb2.InvokeRequest(method="x"))
        return info.value.code()

    code, _, _ = serve(body)
    assert code is grpc.StatusCode.UNIMPLEMENTED


def test_events_run_concurrently(serve):
    source = """
        import asyncio
        SEEN = []
        async def handler(ctx, data):
            SEEN.append(data)
            await asyncio.sleep(0.3)
    """

    async def body(stub, alpha, health):
        loop = asyncio.get_running_loop()
        started = loop.time()
        await asyncio.gather(*(stub.OnBindingEvent(pb.BindingEventRequest(
            name="cron", data=str(i).encode())) for i in range(20)))
        return loop.time() - started

    elapsed, seen, _ = serve(body, source=source)
    assert sorted(seen) == list(range(20))
    assert elapsed < 1.5


def test_with_an_app_token_only_events_carrying_it_are_taken(serve):
    token = (("dapr-api-token", "s3cret"),)

    async def body(stub, alpha, health):
        bindings = await stub.ListInputBindings(empty_pb2.Empty())   # open: daprd asks
        await health.HealthCheck(empty_pb2.Empty())                  # without the token
        codes = []
        for call in (
            stub.OnBindingEvent(pb.BindingEventRequest(name="cron", data=b'{"n":1}')),
            stub.OnBindingEvent(pb.BindingEventRequest(name="cron", data=b'{"n":2}'),
                                metadata=(("dapr-api-token", "other"),)),
            stub.OnTopicEvent(pb.TopicEventRequest(pubsub_name="bus", topic="orders",
                                                   data=b'{"n":3}')),
            alpha.OnBulkTopicEventAlpha1(pb.TopicEventBulkRequest(pubsub_name="bus",
                                                                  topic="orders")),
        ):
            try:
                await call
                codes.append(grpc.StatusCode.OK)
            except grpc.aio.AioRpcError as error:
                codes.append(error.code())
        await stub.OnBindingEvent(pb.BindingEventRequest(name="cron", data=b'{"n":4}'),
                                  metadata=token)
        return list(bindings.bindings), codes

    (bindings, codes), seen, _ = serve(body, token="s3cret")
    assert bindings == ["cron"]
    assert codes == [grpc.StatusCode.UNAUTHENTICATED] * 4
    # (the input reading the cron component is named `ticks`)
    assert [(name, data) for name, data, _, _ in seen] == [("ticks", {"n": 4})]


def test_a_message_on_an_mqtt_wildcard_topic_reaches_its_input(serve):
    func_context = {**FUNC_CONTEXT, "inputs": {
        "sensors": {"componentName": "mq", "componentType": "pubsub.mqtt3", "uri": "sensors/+"},
        "kitchen": {"componentName": "mq", "componentType": "pubsub.mqtt3",
                    "uri": "sensors/kitchen"},
    }}

    async def body(stub, alpha, health):
        statuses = []
        for topic in ("sensors/a", "sensors/kitchen", "sensors/a/b"):
            statuses.append((await stub.OnTopicEvent(pb.TopicEventRequest(
                pubsub_name="mq", topic=topic, data=b'{"t":21}',
                data_content_type="application/json"))).status)
        return statuses

    statuses, seen, _ = serve(body, func_context=func_context)
    assert statuses == [Status.SUCCESS, Status.SUCCESS, Status.DROP]
    assert [(name, event.topic) for name, _, event, _ in seen] == [
        ("sensors", "sensors/a"), ("kitchen", "sensors/kitchen")]


def test_the_app_token_is_not_binding_metadata(serve):
    async def body(stub, alpha, health):
        await stub.OnBindingEvent(pb.BindingEventRequest(name="cron", data=b"1",
                                                         metadata={"readTimeUTC": "now"}),
                                  metadata=(("dapr-api-token", "s3cret"),))

    _, seen, _ = serve(body, token="s3cret")
    assert dict(seen[0][2].metadata) == {"readTimeUTC": "now"}


def test_verdict_classes_and_a_forgotten_await(serve):
    source = """
        from openfunction.dapr import Drop, Retry
        SEEN = []

        async def later():
            return 1

        def handler(ctx, data):
            SEEN.append(data)
            return later() if data == "coroutine" else {"drop": Drop, "retry": Retry}[data]
    """

    async def body(stub, alpha, health):
        return [(await stub.OnTopicEvent(pb.TopicEventRequest(
            pubsub_name="bus", topic="orders", data=f'"{data}"'.encode(),
            data_content_type="application/json"))).status
            for data in ("drop", "retry", "coroutine")]

    statuses, _, _ = serve(body, source=source)
    assert statuses == [Status.DROP, Status.RETRY, Status.RETRY]


CANCELLING_SOURCE = """
    import asyncio
    SEEN = []

    async def handler(ctx, data):
        SEEN.append(data)
        if data == "own":  # a CancelledError of the function's own
            task = asyncio.ensure_future(asyncio.sleep(10))
            await asyncio.sleep(0)
            task.cancel()
            await task
        await asyncio.sleep(data)
"""


def test_a_cancelled_error_the_function_raises_is_answered_retry_at_once(serve):
    async def body(stub, alpha, health):
        return (await stub.OnTopicEvent(pb.TopicEventRequest(
            pubsub_name="bus", topic="orders", data=b'"own"',
            data_content_type="application/json"), timeout=5)).status

    status, _, _ = serve(body, source=CANCELLING_SOURCE)
    assert status == Status.RETRY


def test_an_event_daprd_gives_up_on_is_logged_once_without_traceback(serve, caplog, capsys):
    async def body(stub, alpha, health):
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await stub.OnTopicEvent(pb.TopicEventRequest(
                id="ev-1", pubsub_name="bus", topic="orders", data=b"5",
                data_content_type="application/json"), timeout=0.3)
        await asyncio.sleep(0.2)  # the servicer sees the cancellation
        return info.value.code()

    with caplog.at_level(logging.DEBUG):
        code, _, _ = serve(body, source=CANCELLING_SOURCE)
    assert code is grpc.StatusCode.DEADLINE_EXCEEDED
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1
    assert "event ev-1 from input 'orders' cancelled" in warnings[0]
    assert "Traceback" not in caplog.text + capsys.readouterr().err


def test_shutdown_past_the_grace_period_answers_retry_without_traceback(make_function, caplog,
                                                                       capsys):
    """As the Async server stops: drain, stop the gRPC server at once, end the loop; daprd
    (a client in other threads) gets RETRY for the events still running."""
    fn = make_function(CANCELLING_SOURCE, FUNC_CONTEXT)
    fn.services.sender = RecordingSender()
    statuses: list = []

    def deliver(port, event_id):
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            try:
                statuses.append(pb_grpc.AppCallbackStub(channel).OnTopicEvent(pb.TopicEventRequest(
                    id=event_id, pubsub_name="bus", topic="orders", data=b"20",
                    data_content_type="application/json"), timeout=10).status)
            except grpc.RpcError as error:
                statuses.append(error.code())

    async def main():
        fn.services.loop = asyncio.get_running_loop()
        dispatcher = EventDispatcher(fn.config, fn.runner)
        server = grpc.aio.server()
        AppCallbackService(dispatcher).register(server)
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        threads = [threading.Thread(target=deliver, args=(port, f"ev-{i}")) for i in range(3)]
        for thread in threads:
            thread.start()
        while dispatcher.in_flight < 3:
            await asyncio.sleep(0.01)
        drained = await dispatcher.drain(0.1)
        in_flight = dispatcher.in_flight
        await server.stop(0)
        return threads, drained, in_flight, dispatcher.cancelled

    with caplog.at_level(logging.WARNING):
        threads, drained, in_flight, cancelled = asyncio.run(main())
    for thread in threads:
        thread.join(10)
    fn.runner.close()
    assert (drained, in_flight, cancelled) == (False, 3, 3)
    assert statuses == [Status.RETRY] * 3
    assert "Traceback" not in caplog.text + capsys.readouterr().err
    assert sorted(r.getMessage().split(" from")[0] for r in caplog.records
                  if "will be delivered again" in r.getMessage()) == ["event ev-0", "event ev-1",
                                                                     "event ev-2"]
