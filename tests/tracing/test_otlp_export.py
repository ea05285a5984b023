"""The `opentelemetry` provider in the real process, exporting over OTLP/gRPC to a receiver
started by the tests."""

from __future__ import annotations

import json

import httpx
import pytest

from support.otlp_receiver import otlp_receiver
from support.process import run_function

pytestmark = pytest.mark.integration

TRACE = "0af7651916cd43dd8448eb211c80319c"
PARENT = "b7ad6b7169203331"


def test_spans_are_exported_over_otlp_with_the_function_resource(tmp_path):
    (tmp_path / "main.py").write_text("def hello(request):\n    return 'hi'\n")
    with otlp_receiver() as receiver:
        ctx = {"name": "otel-http", "version": "v2", "runtime": "Knative", "pluginsTracing": {
            "enabled": True, "tags": {"tag1": "value1"},
            "provider": {"name": "opentelemetry", "exporter": {
                "name": "otlp", "endpoint": receiver.endpoint, "protocol": "grpc",
                "timeout": "5s"}}}}
        env = {"FUNC_CONTEXT": json.dumps(ctx), "POD_NAME": "otel-http-0",
               "POD_NAMESPACE": "test", "OTEL_BSP_SCHEDULE_DELAY": "100"}
        with run_function(tmp_path / "main.py", "hello", env=env) as fn:
            r = httpx.get(fn.url + "/x", headers={"traceparent": f"00-{TRACE}-{PARENT}-01",
                                                  "host": "otel.test"})
            assert r.text == "hi"
            (span,) = receiver.wait_for_spans(1)
            assert fn.terminate() == 0
    assert (span.name, span.trace_id, span.parent_span_id) == ("otel-http", TRACE, PARENT)
    assert span.span.kind == 2  # SPAN_KIND_SERVER
    # what varies per invocation is on the span, what does not on the resource
    assert span.attributes == {"http.method": "GET", "url": "otel.test/x", "runtime": "Knative"}
    resource = span.resource
    assert {k: resource[k] for k in ("func", "instance", "namespace", "layer", "tag1")} == {
        "func": "otel-http", "instance": "otel-http-0", "namespace": "test", "layer": "faas",
        "tag1": "value1"}
    assert (resource["service.name"], resource["service.instance.id"], resource["service.version"],
            resource["k8s.pod.name"], resource["k8s.namespace.name"]) == (
        "otel-http", "otel-http-0", "v2", "otel-http-0", "test")
