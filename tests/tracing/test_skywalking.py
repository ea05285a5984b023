"""The `skywalking` provider in the real `functions-framework` process, reporting with the real
agent over SkyWalking's gRPC protocol to a collector started by the tests."""

from __future__ import annotations

import base64
import json
import time
from pathlib import Path

import httpx
import pytest

from support.process import free_port, run_function
from support.skywalking_collector import SkyWalkingCollector, skywalking_collector, tags

pytestmark = pytest.mark.integration

SOURCE = """
def hello(request):
    if request.args.get("fail"):
        raise ValueError("bad input")
    return "hello"
"""


@pytest.fixture(scope="module")
def collector():
    with skywalking_collector() as running:
        yield running


@pytest.fixture(autouse=True)
def fresh_collector(collector):
    collector.clear()


@pytest.fixture
def hello_source(tmp_path) -> Path:
    path = tmp_path / "main.py"
    path.write_text(SOURCE)
    return path


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def sw8(trace_id: str, segment_id: str, span_id: int, service: str, instance: str,
        endpoint: str, peer: str) -> str:
    return "-".join(["1", b64(trace_id), b64(segment_id), str(span_id), b64(service),
                     b64(instance), b64(endpoint), b64(peer)])


def function_env(name: str, oap: str, **tracing) -> dict[str, str]:
    ctx = {"name": name, "version": "v1", "runtime": "Knative", "pluginsTracing": {
        "enabled": True, "provider": {"name": "skywalking", "oapServer": oap},
        "tags": {"tag1": "value1", "tag2": "value2"}, **tracing}}
    return {"FUNC_CONTEXT": json.dumps(ctx), "POD_NAME": f"{name}-6d5f-x2x", "POD_NAMESPACE": "test"}


def entry_of(segment):
    (entry,) = [s for s in segment.spans if s.spanType == 0]  # Entry
    return entry


def test_sync_http_function_reports_an_entry_span_like_go(collector: SkyWalkingCollector,
                                                          hello_source):
    env = function_env("sw-http", collector.address)
    with run_function(hello_source, "hello", env=env) as fn:
        r = httpx.get(fn.url + "/greet", headers={"host": "sw-http.test"})
        assert r.status_code == 200 and r.text == "hello"
        (segment,) = collector.wait_for_segments("sw-http")
        collector.wait_for(lambda c: [i for i in c.instances if i.service == "sw-http"],
                           describe="instance properties")
    assert segment.serviceInstance == "sw-http-6d5f-x2x"
    (span,) = segment.spans
    assert (span.operationName, span.spanId, span.parentSpanId) == ("sw-http", 0, -1)
    assert (span.spanLayer, span.componentId, span.isError) == (6, 5013, False)  # FAAS
    assert span.spanType == 0 and not span.refs and span.peer == ""
    assert span.endTime >= span.startTime > 0
    assert tags(span) == {
        "http.method": "GET", "url": "sw-http.test/greet", "runtime": "Knative",
        "layer": "faas", "tag1": "value1", "tag2": "value2", "func": "sw-http",
        "instance": "sw-http-6d5f-x2x", "namespace": "test",
    }
    (instance,) = [i for i in collector.instances if i.service == "sw-http"]
    props = {p.key: p.value for p in instance.properties}
    assert instance.layer == "FAAS"
    assert (props["pod"], props["namespace"], props["language"]) == (
        "sw-http-6d5f-x2x", "test", "python")


def test_sw8_header_continues_the_callers_trace(collector, hello_source):
    header = sw8("trace-0123456789", "segment-abc", 3, "frontend", "frontend-1", "/checkout",
                 "sw-continue:8080")
    with run_function(hello_source, "hello", env=function_env("sw-continue", collector.address)) as fn:
        httpx.get(fn.url, headers={"sw8": header})
        (segment,) = collector.wait_for_segments("sw-continue")
    assert segment.traceId == "trace-0123456789"
    (ref,) = entry_of(segment).refs
    assert (ref.refType, ref.traceId, ref.parentTraceSegmentId, ref.parentSpanId) == (
        0, "trace-0123456789", "segment-abc", 3)  # CrossProcess
    assert (ref.parentService, ref.parentServiceInstance, ref.parentEndpoint,
            ref.networkAddressUsedAtPeer) == ("frontend", "frontend-1", "/checkout",
                                              "sw-continue:8080")


def test_invalid_sw8_starts_a_new_trace(collector, hello_source):
    with run_function(hello_source, "hello", env=function_env("sw-invalid", collector.address)) as fn:
        assert httpx.get(fn.url, headers={"sw8": "1-garbage"}).status_code == 200
        (segment,) = collector.wait_for_segments("sw-invalid")
    assert not entry_of(segment).refs and segment.traceId


def test_raising_function_reports_an_error_span(collector, hello_source):
    with run_function(hello_source, "hello", env=function_env("sw-error", collector.address)) as fn:
        assert httpx.get(fn.url + "/?fail=1").status_code == 500
        (segment,) = collector.wait_for_segments("sw-error")
    span = entry_of(segment)
    assert span.isError
    (log,) = span.logs
    assert {kv.key: kv.value for kv in log.data} == {
        "event": "error", "error.kind": "ValueError", "message": "ValueError: bad input"}


def test_unreachable_collector_never_delays_or_fails_invocations(hello_source):
    dead = f"127.0.0.1:{free_port()}"  # nothing listens there
    with run_function(hello_source, "hello", env=function_env("sw-dead", dead)) as fn:
        with httpx.Client() as client:
            client.get(fn.url)  # the agent starts with the first invocation
            started = time.monotonic()
            codes = [client.get(fn.url).status_code for _ in range(50)]
            elapsed = time.monotonic() - started
        stopping = time.monotonic()
        assert fn.terminate() == 0
        stop_time = time.monotonic() - stopping
        log = fn.log
    assert codes == [200] * 50
    # the agent's failures (its first heartbeat included) are one line each, no traceback
    assert "Traceback" not in log, log
    assert "could not report" in log and "UNAVAILABLE" in log
    assert elapsed < 2.5, f"50 requests took {elapsed:.2f}s with the collector down"
    assert stop_time < 8, f"shutdown took {stop_time:.1f}s with the collector down"
