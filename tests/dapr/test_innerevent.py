"""The inner event codec against fixtures in the Go framework's exact byte format.

See fixtures/README.md for how each fixture follows from innerevent.go's struct tags
(`json:"metadata,omitempty"`, `json:"userData,omitempty"`) and the CloudEvents SDK.
"""

import asyncio
import base64
import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from openfunction.config import Component, FunctionConfig
from openfunction.dapr import innerevent

FIXTURES = Path(__file__).parent / "fixtures"
EVENT_ID = "9f3c2a4e-5b1d-4c8e-a7f0-2d6b8e1c4a93"
SW8 = ("1-NGJmOTJmMzU3N2IzNGRhNg==-MDBmMDY3YWEwYmE5MDJiNw==-0-cHJvZHVjZXI=-"
       "cHJvZHVjZXItMQ==-L29yZGVycw==-b3JkZXJz")
TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


def fixture(name: str) -> bytes:
    return (FIXTURES / f"go-inner-event-{name}.json").read_bytes()


def config(mode: str) -> FunctionConfig:
    return FunctionConfig(name="producer", mode=mode, pod_name="producer-1",
                          pod_namespace="default" if mode == "kubernetes" else "")


WRITE_CASES = [
    ("kubernetes", "kubernetes", {"traceparent": TRACEPARENT, "sw8": SW8}, b'{"order":42}',
     datetime(2026, 11, 22, 10, 15, 30, 123456, tzinfo=timezone.utc)),
    ("self-host", "self-host", {}, b"hello",
     datetime(2026, 11, 22, 10, 15, 30, tzinfo=timezone.utc)),
    ("escaped-metadata", "self-host", {"baggage": "tenant=<acme>&co"}, b"",
     datetime(2026, 11, 22, 10, 15, 30, 500000, tzinfo=timezone(timedelta(hours=1)))),
]


@pytest.mark.parametrize("name,mode,metadata,user_data,time", WRITE_CASES,
                         ids=[c[0] for c in WRITE_CASES])
def test_wrap_writes_the_go_bytes(name, mode, metadata, user_data, time):
    written = innerevent.wrap(config(mode), user_data, metadata, event_id=EVENT_ID, time=time)
    assert written == fixture(name)


@pytest.mark.parametrize("name,mode,metadata,user_data,time", WRITE_CASES,
                         ids=[c[0] for c in WRITE_CASES])
def test_unwrap_reads_the_go_bytes(name, mode, metadata, user_data, time):
    event = innerevent.unwrap(fixture(name))
    assert event is not None
    assert event.user_data == user_data
    assert event.metadata == metadata
    assert event.attributes["id"] == EVENT_ID


def test_unwrap_nanosecond_time_and_binary_payload():
    event = innerevent.unwrap(fixture("nanoseconds"))
    assert event.user_data == b"\x00\x01\x02\xfa"
    assert event.metadata == {}
    assert event.attributes["time"] == "2026-11-22T10:15:30.123456789Z"
    assert event.attributes["type"] == "io.openfunction.function.default.producer"


def test_round_trip_with_fresh_id_and_time():
    raw = innerevent.wrap(config("kubernetes"), b"\xff payload", {"k": "v"})
    doc = json.loads(raw)
    assert list(doc) == ["specversion", "id", "source", "type", "datacontenttype", "time",
                         "data_base64"]
    assert doc["source"] == "default/producer"
    assert doc["time"].endswith("Z")
    event = innerevent.unwrap(raw)
    assert (event.user_data, event.metadata) == (b"\xff payload", {"k": "v"})


def test_unwrap_accepts_the_inner_object_inline():
    raw = json.dumps({"specversion": "1.0", "id": "1", "source": "s",
                      "type": "io.openfunction.function.x", "datacontenttype": "application/json",
                      "data": {"metadata": {"a": "b"},
                               "userData": base64.b64encode(b"hi").decode()}})
    event = innerevent.unwrap(raw.encode())
    assert (event.user_data, event.metadata) == (b"hi", {"a": "b"})


@pytest.mark.parametrize("raw", [
    b"", b"plain text", b"[1,2]", b'{"a":1}', b"{not json",
    b'{"specversion":"1.0","id":"1","source":"s","type":"com.example.other","data":{}}',
    b'{"type":"io.openfunction.function.x","data":{}}',
])
def test_unwrap_ignores_anything_else(raw):
    assert innerevent.unwrap(raw) is None


def test_unwrap_of_unexpected_data_keeps_it_as_the_payload():
    raw = json.dumps({"specversion": "1.0", "id": "1", "source": "s",
                      "type": "io.openfunction.function.x", "data": {"other": 1}}).encode()
    event = innerevent.unwrap(raw)
    assert (event.user_data, event.metadata) == (b'{"other":1}', {})


def test_traceable_follows_the_go_rule():
    assert innerevent.traceable("pubsub.redis")
    assert innerevent.traceable("pubsub.mqtt3")
    assert innerevent.traceable("bindings.kafka")
    assert innerevent.traceable(Component("q", "q", "bindings.rabbitmq"))
    assert not innerevent.traceable("bindings.redis")
    assert not innerevent.traceable("bindings.cron")
    assert not innerevent.traceable("bindings.http")


def test_format_time_trims_like_rfc3339nano():
    t = datetime(2026, 1, 2, 3, 4, 5, 120000, tzinfo=timezone.utc)
    assert innerevent.format_time(t) == "2026-01-02T03:04:05.12Z"
    assert innerevent.format_time(t.replace(microsecond=0)) == "2026-01-02T03:04:05Z"


def envelope(data_base64: str) -> bytes:
    """The Go framework's envelope (self-host fixture) around another `data_base64`."""
    doc = json.loads(fixture("self-host"))
    doc["data_base64"] = data_base64
    return json.dumps(doc, separators=(",", ":")).encode()


def test_data_base64_that_is_not_json_is_delivered_decoded():
    event = innerevent.unwrap(envelope("/wBiaW5hcnk="))
    assert event is not None
    assert (event.user_data, event.metadata) == (b"\xff\x00binary", {})
    assert event.attributes["id"] == EVENT_ID


def test_data_base64_of_other_json_is_delivered_byte_for_byte():
    decoded = b'{ "other": 1,  "x": [1, 2] }'
    event = innerevent.unwrap(envelope(base64.b64encode(decoded).decode()))
    assert (event.user_data, event.metadata) == (decoded, {})


def test_data_base64_that_is_not_base64_is_delivered_as_it_came():
    event = innerevent.unwrap(envelope("not base64!"))
    assert (event.user_data, event.metadata) == (b"not base64!", {})


@pytest.mark.parametrize("decoded", [b"[" * 100_000, b"[" * 100_000 + b"]" * 100_000],
                         ids=["unclosed", "valid-but-deep"])
def test_deeply_nested_data_base64_is_delivered_not_retried_for_ever(decoded):
    event = innerevent.unwrap(envelope(base64.b64encode(decoded).decode()))
    assert (event.user_data, event.metadata) == (decoded, {})


def test_a_deeply_nested_envelope_is_not_an_inner_event():
    raw = (b'{"specversion":"1.0","type":"io.openfunction.function.x","data":'
           + b"[" * 100_000 + b"]" * 100_000 + b"}")
    assert innerevent.unwrap(raw) is None  # delivered as it came


def test_go_fixtures_still_unwrap_to_their_user_data():
    # the Go framework's own bytes never take the fallbacks above
    for name in ("kubernetes", "self-host", "escaped-metadata", "nanoseconds"):
        doc = json.loads(fixture(name))
        decoded = base64.b64decode(doc["data_base64"])
        assert json.loads(decoded).keys() <= {"metadata", "userData"}
        assert innerevent.unwrap(fixture(name)).user_data == base64.b64decode(
            json.loads(decoded).get("userData", ""))


class RecordingRunner:
    def __init__(self):
        self.data = []

    async def run(self, invocation):
        self.data.append(invocation.data)


@pytest.mark.parametrize("decoded,data", [
    (b"[" * 100_000, b"[" * 100_000),
    (b"\xff\x00binary", b"\xff\x00binary"),
], ids=["deep", "binary"])
def test_the_dispatcher_delivers_such_inner_events_once(decoded, data):
    from openfunction.config import Runtime
    from openfunction.dapr.dispatcher import EventDispatcher
    from openfunction.dapr.outcome import Outcome

    runner = RecordingRunner()
    config = FunctionConfig(name="fn", runtime=Runtime.ASYNC,
                            inputs={"q": Component("q", "queue", "bindings.kafka", "queue")})
    dispatcher = EventDispatcher(config, runner)
    raw = envelope(base64.b64encode(decoded).decode())
    outcome, reason = asyncio.run(dispatcher.binding_event("queue", raw))
    assert (outcome, reason) == (Outcome.SUCCESS, "")
    assert runner.data == [data]
