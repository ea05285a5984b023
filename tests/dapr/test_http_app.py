"""The HTTP app protocol (APP_PROTOCOL=http), driven the way daprd calls it."""

import base64
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
