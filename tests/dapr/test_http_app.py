"""The HTTP app protocol (APP_PROTOCOL=http), driven the way daprd calls it."""

import base64
import logging
import json
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from openfunction.dapr.dispatcher import EventDispatcher
from openfunction.dapr.http_app import DaprHttpApp
from dapr_doubles import FUNC_CONTEXT, SOURCE, RecordingSender

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture
def client(make_function):
    fn = make_function(SOURCE, FUNC_CONTEXT)
    fn.services.sender = RecordingSender()

    async def bind_loop():
        import asyncio
        fn.services.loop = asyncio.get_running_loop()

    app = DaprHttpApp(EventDispatcher(fn.config, fn.runner), on_startup=[bind_loop])
    with TestClient(app) as c:
        c.seen = fn.loaded.func.__globals__["SEEN"]
        c.sender = fn.services.sender
        yield c
    fn.runner.close()


def cloudevent(data, content_type="application/json", **extra):
    event = {"specversion": "1.0", "id": "e1", "source": "pub", "type": "com.dapr.event.sent",
             "datacontenttype": content_type, "topic": "orders", "pubsubname": "bus",
             "traceparent": "00-1-2-01", **extra}
    if data is not None:
        event["data"] = data
    return json.dumps(event)


def test_subscriptions_and_binding_discovery(client):
    subs = client.get("/dapr/subscribe").json()
    assert sorted((s["pubsubname"], s["topic"], s["route"]) for s in subs) == [
        ("bus", "audit", "/topics/audit"), ("bus", "orders", "/topics/orders")]
    audit = next(s for s in subs if s["topic"] == "audit")
    assert audit["deadLetterTopic"] == "audit-dead" and audit["metadata"] == {}
    assert client.options("/cron").status_code == 200
    assert client.options("/other").status_code == 404
    assert client.get("/dapr/config").json() == {}
    assert client.get("/healthz").status_code == 200


def test_binding_events(client):
    ok = client.post("/cron", content=b'{"n":1}', headers={"readTimeUTC": "now"})
    failed = client.post("/cron", content=b'"fail"')
    dropped = client.post("/cron", content=b'"drop"')
    assert (ok.status_code, failed.status_code, dropped.status_code) == (200, 500, 200)
    assert "failing on purpose" in failed.text
    name, data, event, _ = client.seen[0]
    assert (name, data) == ("ticks", {"n": 1})
    assert event.metadata["readtimeutc"] == "now" and "host" not in event.metadata


@pytest.mark.parametrize("data,status", [
    ({"x": 1}, "SUCCESS"), ("fail", "RETRY"), ("retry", "RETRY"), ("drop", "DROP")])
def test_topic_status_body(client, data, status):
    response = client.post("/topics/orders", content=cloudevent(data),
                           headers={"content-type": "application/cloudevents+json"})
    assert response.status_code == 200 and response.json() == {"status": status}


def test_topic_event_payload_forms(client):
    post = lambda body, ctype: client.post("/topics/audit", content=body,
                                           headers={"content-type": ctype})
    post(cloudevent("hello", "text/plain"), "application/cloudevents+json")
    post(cloudevent(None, "application/octet-stream",
                    data_base64=base64.b64encode(b"\x00\x01").decode()),
         "application/cloudevents+json")
    post(b"raw body", "text/plain")  # rawPayload subscriptions
    post(cloudevent({"forward": [1]}), "application/cloudevents+json")
    post(cloudevent(None, "application/octet-stream", data_base64="!!!"),  # not base64: as is
         "application/cloudevents+json")
    data = [s[1] for s in client.seen]
    assert data == ["hello", b"\x00\x01", "raw body", {"forward": [1]}, b"!!!"]
    assert client.seen[0][2].extensions["traceparent"] == "00-1-2-01"
    assert client.seen[0][2].id == "e1"
    assert [(m.output.name, m.data) for m in client.sender.sent] == [("out", b"[1]")]


def test_inner_event_through_http(client):
    inner = json.loads((FIXTURES / "go-inner-event-kubernetes.json").read_bytes())
    response = client.post("/topics/orders", content=cloudevent(inner),
                           headers={"content-type": "application/cloudevents+json"})
    assert response.json() == {"status": "SUCCESS"}
    _, data, _, carrier = client.seen[0]
    assert data == {"order": 42} and "sw8" in carrier


def test_unknown_routes(client):
    assert client.post("/nowhere", content=b"x").status_code == 404
    assert client.get("/topics/orders").status_code == 404


def test_with_an_app_token_only_events_carrying_it_are_taken(make_function):
    from openfunction.dapr.app_token import AppToken

    fn = make_function(SOURCE, FUNC_CONTEXT)
    fn.services.sender = RecordingSender()

    async def bind_loop():
        import asyncio
        fn.services.loop = asyncio.get_running_loop()

    app = DaprHttpApp(EventDispatcher(fn.config, fn.runner), on_startup=[bind_loop],
                      token=AppToken("s3cret"))
    with TestClient(app) as client:
        assert client.get("/dapr/subscribe").status_code == 200   # discovery stays open
        assert client.options("/cron").status_code == 200
        refused = [client.post("/cron", content=b'{"n":1}'),
                   client.post("/cron", content=b'{"n":2}', headers={"dapr-api-token": "x"}),
                   client.post("/topics/orders", content=cloudevent({"n": 3}))]
        taken = client.post("/cron", content=b'{"n":4}', headers={"dapr-api-token": "s3cret"})
        seen = fn.loaded.func.__globals__["SEEN"]
    fn.runner.close()
    assert [r.status_code for r in refused] == [401, 401, 401]
    assert "dapr-api-token" in refused[0].text and taken.status_code == 200
    # (the input reading the cron component is named `ticks`)
    assert [(name, data) for name, data, _, _ in seen] == [("ticks", {"n": 4})]


ENCODED_NAMES_CONTEXT = {
    **FUNC_CONTEXT,
    "inputs": {
        "my input": {"componentName": "bus", "componentType": "pubsub.redis", "uri": "t1"},
        "a/b": {"componentName": "bus", "componentType": "pubsub.redis", "uri": "t2"},
        "ü": {"componentName": "bus", "componentType": "pubsub.redis", "uri": "t3"},
        "sensors": {"componentName": "mq", "componentType": "pubsub.mqtt3", "uri": "sensors/+"},
        "ticks": {"componentName": "cron", "componentType": "bindings.cron"},
    },
}


@pytest.fixture
def encoded_client(make_function):
    fn = make_function(SOURCE, ENCODED_NAMES_CONTEXT)
    fn.services.sender = RecordingSender()
    app = DaprHttpApp(EventDispatcher(fn.config, fn.runner))
    with TestClient(app) as c:
        c.seen = fn.loaded.func.__globals__["SEEN"]
        yield c
    fn.runner.close()


def test_input_names_that_need_encoding_are_served_at_their_route(encoded_client):
    routes = {s["topic"]: s["route"] for s in encoded_client.get("/dapr/subscribe").json()}
    assert routes == {"t1": "/topics/my%20input", "t2": "/topics/a%2Fb", "t3": "/topics/%C3%BC",
                      "sensors/+": "/topics/sensors"}
    for topic, route in routes.items():
        response = encoded_client.post(route, content=cloudevent({"topic": topic}),
                                       headers={"content-type": "application/cloudevents+json"})
        assert response.status_code == 200 and response.json() == {"status": "SUCCESS"}
    # (daprd may send the path decoded: the same route)
    encoded_client.post("/topics/a/b", content=cloudevent({"again": 1}),
                        headers={"content-type": "application/cloudevents+json"})
    assert [s[0] for s in encoded_client.seen] == ["my input", "a/b", "ü", "sensors", "a/b"]


def test_a_wildcard_subscription_delivers_the_message_topic(encoded_client):
    response = encoded_client.post(
        "/topics/sensors", content=cloudevent({"t": 21}, topic="sensors/kitchen", pubsubname="mq"),
        headers={"content-type": "application/cloudevents+json"})
    assert response.json() == {"status": "SUCCESS"}
    name, data, event, _ = encoded_client.seen[0]
    assert (name, data) == ("sensors", {"t": 21})
    assert (event.pubsub, event.topic) == ("mq", "sensors/kitchen")


def test_a_post_to_no_route_is_logged_with_the_routes_served(encoded_client, caplog):
    with caplog.at_level(logging.ERROR, "openfunction.dapr"):
        response = encoded_client.post("/topics/nobody", content=cloudevent({"x": 1}))
    assert response.status_code == 404
    [line] = [r.getMessage() for r in caplog.records]
    assert "POST /topics/nobody" in line and "daprd drops the event" in line
    assert "/topics/my%20input (input 'my input')" in line and "/cron (binding 'cron')" in line


def test_a_binding_event_never_shows_the_app_token(make_function):
    from openfunction.dapr.app_token import AppToken

    fn = make_function(SOURCE, FUNC_CONTEXT)
    app = DaprHttpApp(EventDispatcher(fn.config, fn.runner), token=AppToken("s3cret"))
    with TestClient(app) as client:
        client.post("/cron", content=b'{"n":1}',
                    headers={"dapr-api-token": "s3cret", "readTimeUTC": "now"})
        seen = fn.loaded.func.__globals__["SEEN"]
    fn.runner.close()
    metadata = seen[0][2].metadata
    assert metadata["readtimeutc"] == "now" and "dapr-api-token" not in metadata


def test_json_nested_too_deeply_is_delivered_as_the_raw_body(client):
    deep = "[" * 100_000 + "]" * 100_000
    body = '{"specversion":"1.0","id":"e1","data":' + deep + "}"
    response = client.post("/topics/orders", content=body,
                           headers={"content-type": "application/cloudevents+json"})
    assert response.status_code == 200 and response.json() == {"status": "SUCCESS"}
    bound = client.post("/cron", content=deep, headers={"content-type": "application/json"})
    assert bound.status_code == 200
    assert [s[1] for s in client.seen] == [body.encode(), deep.encode()]


def test_a_cancelled_error_the_function_raises_is_answered_retry(make_function):
    source = """
        import asyncio
        SEEN = []

        async def handler(ctx, data):
            task = asyncio.ensure_future(asyncio.sleep(10))
            await asyncio.sleep(0)
            task.cancel()
            await task
    """
    fn = make_function(source, FUNC_CONTEXT)
    dispatcher = EventDispatcher(fn.config, fn.runner)
    with TestClient(DaprHttpApp(dispatcher)) as client:
        topic = client.post("/topics/orders", content=cloudevent({"n": 1}),
                            headers={"content-type": "application/cloudevents+json"})
        binding = client.post("/cron", content=b"1")
    fn.runner.close()
    assert topic.json() == {"status": "RETRY"} and binding.status_code == 500
    assert dispatcher.cancelled == 0  # a clean shutdown afterwards still exits 0


def test_a_request_cancelled_at_shutdown_is_answered_503_without_traceback(make_function, caplog):
    """uvicorn cancels requests still running when its grace period ran out."""
    import asyncio

    fn = make_function("""
        import asyncio
        SEEN = []

        async def handler(ctx, data):
            await asyncio.sleep(20)
    """, FUNC_CONTEXT)
    dispatcher = EventDispatcher(fn.config, fn.runner)
    app = DaprHttpApp(dispatcher)
    sent = []

    async def main():
        fn.services.loop = asyncio.get_running_loop()
        body = [{"type": "http.request", "body": b'{"n":1}', "more_body": False}]

        async def receive():
            return body.pop() if body else {"type": "http.disconnect"}

        async def send(message):
            sent.append(message)

        scope = {"type": "http", "method": "POST", "path": "/cron", "raw_path": b"/cron",
                 "query_string": b"", "headers": [], "http_version": "1.1", "scheme": "http",
                 "server": ("127.0.0.1", 8080), "client": ("127.0.0.1", 1234), "root_path": ""}
        request = asyncio.ensure_future(app(scope, receive, send))
        await asyncio.sleep(0.05)
        request.cancel(msg="Task cancelled, timeout graceful shutdown exceeded")
        await request  # answered: no CancelledError for uvicorn to log

    with caplog.at_level(logging.WARNING, "openfunction.dapr"):
        asyncio.run(main())
    fn.runner.close()
    assert sent[0]["type"] == "http.response.start" and sent[0]["status"] == 503
    assert dispatcher.cancelled == 1
    assert "from input 'ticks' cancelled before the function finished" in caplog.text
