import json
import logging

import pytest

CE_HEADERS = {"ce-specversion": "1.0", "ce-type": "com.example.t", "ce-source": "/src",
              "ce-id": "id-1", "content-type": "application/json"}


def test_http_def_function_reads_body_without_await(make_client):
    client = make_client("""
        def echo(request):
            return {"method": request.method, "json": request.get_json(), "q": request.args.get("q")}
    """, "echo")
    r = client.post("/anything?q=1", json={"a": 1})
    assert r.status_code == 200
    assert r.json() == {"method": "POST", "json": {"a": 1}, "q": "1"}


def test_http_async_function(make_client):
    client = make_client("""
        async def echo(request):
            return await request.body(), 201, {"x-kind": "async"}
    """, "echo")
    r = client.put("/", content=b"raw")
    assert r.status_code == 201 and r.content == b"raw" and r.headers["x-kind"] == "async"


def test_all_methods_reach_the_function(make_client):
    client = make_client("def f(request):\n    return request.method\n", "f")
    for method in ("GET", "POST", "PUT", "DELETE", "PATCH"):
        assert client.request(method, "/").text == method


def test_http_pattern_routes_and_path_params(make_client):
    client = make_client(
        "def f(request):\n    return request.path_params\n", "f",
        func_context={"name": "f", "runtime": "Knative", "httpPattern": "/hello/{name}"},
    )
    assert client.get("/hello/world").json() == {"name": "world"}
    assert client.get("/other").status_code == 404


def test_exception_gives_500_with_request_id_and_keeps_serving(make_client, caplog):
    client = make_client("""
        def f(request):
            if request.args.get("fail"):
                raise RuntimeError("secret detail")
            return "fine"
    """, "f")
    r = client.get("/?fail=1", headers={"x-request-id": "req-42"})
    assert r.status_code == 500
    assert "req-42" in r.text and "secret detail" not in r.text
    assert "RuntimeError: secret detail" in caplog.text and "req-42" in caplog.text
    assert client.get("/").text == "fine"


def test_bad_return_value_is_500(make_client, caplog):
    client = make_client("def f(request):\n    return object()\n", "f")
    assert client.get("/").status_code == 500
    assert "not an HTTP response" in caplog.text


def test_cloudevent_binary_mode(make_client):
    client = make_client("""
        import openfunction
        @openfunction.cloud_event
        def on_event(event):
            return {"type": event["type"], "id": event["id"], "data": event.data}
    """, "on_event")
    r = client.post("/", headers=CE_HEADERS, content=json.dumps({"x": 1}))
    assert r.status_code == 200
    assert r.json() == {"type": "com.example.t", "id": "id-1", "data": {"x": 1}}


def test_cloudevent_structured_mode(make_client):
    client = make_client("""
        def on_event(event):
            return event["source"]
    """, "on_event", args=["--signature-type", "cloudevent"])
    body = {"specversion": "1.0", "type": "t", "source": "/structured", "id": "9", "data": {"k": 2}}
    r = client.post("/", headers={"content-type": "application/cloudevents+json"}, json=body)
    assert r.status_code == 200 and r.text == "/structured"


def test_cloudevent_invalid_is_400_with_reason(make_client):
    client = make_client("def f(event):\n    return 'never'\n", "f", args=["--signature-type", "cloudevent"])
    r = client.post("/", content=b"{}", headers={"content-type": "application/json",
                                                  "x-request-id": "ce-bad"})
    assert r.status_code == 400
    assert "not a valid CloudEvent" in r.text and "specversion" in r.text
    assert r.text.endswith("(request id ce-bad)\n") and r.headers["x-request-id"] == "ce-bad"


def test_openfunction_signature_json_body(make_client):
    client = make_client("""
        def main(ctx, data):
            return {"name": ctx.name, "runtime": str(ctx.runtime), "data": data}
    """, "main")
    r = client.post("/", json={"hello": "world"})
    assert r.json() == {"name": "main", "runtime": "Knative", "data": {"hello": "world"}}


def test_openfunction_signature_text_and_bytes(make_client):
    client = make_client("def main(ctx, data):\n    return type(data).__name__\n", "main")
    assert client.post("/", content=b"hi", headers={"content-type": "text/plain"}).text == "str"
    assert client.post("/", content=b"\x00", headers={"content-type": "application/octet-stream"}).text == "bytes"
    assert client.get("/").text == "NoneType"


def test_openfunction_signature_invalid_json_is_400(make_client):
    client = make_client("def main(ctx, data):\n    return 'never'\n", "main")
    r = client.post("/", content=b"{nope", headers={"content-type": "application/json"})
    assert r.status_code == 400 and "not valid JSON" in r.text


def test_openfunction_signature_cloudevent_data(make_client):
    client = make_client("def main(ctx, data):\n    return {'data': data, 'type': ctx.event['type']}\n", "main")
    r = client.post("/", headers=CE_HEADERS, content=json.dumps({"n": 3}))
    assert r.json() == {"data": {"n": 3}, "type": "com.example.t"}


def test_send_without_outputs_fails_clearly(make_client, caplog):
    client = make_client("def main(ctx, data):\n    ctx.send(data)\n", "main")
    assert client.post("/", json=1).status_code == 500
    assert "has no outputs to send to" in caplog.text


def test_send_without_sidecar_fails_clearly_and_fast(make_client, caplog):
    client = make_client(
        "def main(ctx, data):\n    return ctx.send(data, 'out')\n", "main",
        func_context={"name": "bridge", "runtime": "Knative",
                      "outputs": {"out": {"componentName": "o", "componentType": "pubsub.redis", "uri": "t"}}},
        env={"DAPR_GRPC_PORT": "1", "DAPR_HTTP_PORT": "1"},
    )
    r = client.post("/", json={"a": 1})
    assert r.status_code == 500
    assert "Dapr" in caplog.text and "DAPR_GRPC_PORT" in caplog.text


DEEP_JSON = b"[" * 100_000 + b"]" * 100_000


def _counted(client):
    """Count the client's invocations (as the server does when METRICS_PORT is set)."""
    from prometheus_client import CollectorRegistry

    from openfunction.metrics import FunctionMetrics

    registry = CollectorRegistry()
    FunctionMetrics(client.function.config, registry).instrument(client.function.runner)
    labels = {"function": client.function.config.name, "runtime": "Knative"}

    def counts():
        return (registry.get_sample_value("openfunction_function_invocations_total", labels),
                registry.get_sample_value("openfunction_function_errors_total", labels))

    return counts


CALLED_MAIN = """
    called = []
    def main(ctx, data):
        called.append(data)
        return {"data": data, "calls": len(called)}
"""


@pytest.mark.parametrize("headers, body, reason", [
    ({**CE_HEADERS, "x-request-id": "req-ce"}, b"{nope", "CloudEvent data is not valid JSON: Expecting"),
    ({**CE_HEADERS, "x-request-id": "req-ce"}, DEEP_JSON, "CloudEvent data is not valid JSON: nested too deeply"),
    ({"content-type": "application/json", "x-request-id": "req-ce"}, b"{nope", "body is not valid JSON: Expecting"),
    ({"content-type": "application/json", "x-request-id": "req-ce"}, DEEP_JSON, "body is not valid JSON: nested too deeply"),
])
def test_openfunction_signature_malformed_json_is_400_and_counted(make_client, caplog, headers, body, reason):
    client = make_client(CALLED_MAIN, "main", func_context={"name": "fn", "runtime": "Knative"})
    counts = _counted(client)
    r = client.post("/", headers=headers, content=body)
    assert r.status_code == 400
    assert r.text.startswith(f"Bad Request: {reason}") and r.text.endswith("(request id req-ce)\n")
    assert r.headers["x-request-id"] == "req-ce"
    assert counts() == (1.0, 0.0)  # an invocation, not a failure of the function
    assert "Exception in ASGI application" not in caplog.text and "Traceback" not in caplog.text
    # the function was not called for the malformed one
    assert client.post("/", headers=CE_HEADERS, content=b'{"n": 1}').json() == {"data": {"n": 1}, "calls": 1}


def test_deeply_nested_body_without_content_type_is_bytes(make_client):
    client = make_client("def main(ctx, data):\n    return type(data).__name__\n", "main")
    r = client.post("/", content=DEEP_JSON, headers={"content-type": ""})
    assert r.status_code == 200 and r.text == "bytes"


def test_cloudevent_signature_deeply_nested_data_is_passed_as_it_came(make_client):
    client = make_client("def f(event):\n    return type(event.data).__name__\n", "f",
                         args=["--signature-type", "cloudevent"])
    assert client.post("/", headers=CE_HEADERS, content=DEEP_JSON).text == "bytes"  # as for invalid JSON
    r = client.post("/", headers={"content-type": "application/cloudevents+json"}, content=DEEP_JSON)
    assert r.status_code == 400 and "not a valid CloudEvent: the JSON is nested too deeply" in r.text


@pytest.mark.parametrize("source", [
    "def f(request):\n    return {'got': request.get_json()}\n",
    "async def f(request):\n    return {'got': await request.json()}\n",
])
@pytest.mark.parametrize("body, reason", [
    (b"{nope", "Expecting property name enclosed in double quotes"),
    (DEEP_JSON, "nested too deeply"),
    (b"\xff\xfe{", "body is not valid JSON"),
])
def test_malformed_json_read_by_the_function_is_400(make_client, caplog, source, body, reason):
    caplog.set_level(logging.INFO, logger="openfunction")
    client = make_client(source, "f", func_context={"name": "fn", "runtime": "Knative"})
    counts = _counted(client)
    r = client.post("/", content=body, headers={"content-type": "application/json", "x-request-id": "req-7"})
    assert r.status_code == 400, r.text
    assert r.text.startswith("Bad Request: body is not valid JSON: ") and reason in r.text
    assert r.text.endswith("(request id req-7)\n") and r.headers["x-request-id"] == "req-7"
    assert counts() == (1.0, 0.0)
    records = [rec for rec in caplog.records if "req-7" in rec.getMessage()]
    assert records and all(rec.levelno == logging.INFO for rec in records)
    assert "Traceback" not in caplog.text and "json/decoder.py" not in caplog.text
    assert client.post("/", json={"a": 1}).json() == {"got": {"a": 1}}


def test_empty_body_is_none_for_get_json_and_400_for_await_json(make_client):
    sync = make_client("def f(request):\n    return {'got': request.get_json()}\n", "f")
    assert sync.post("/").json() == {"got": None}
    asynchronous = make_client("async def f(request):\n    return {'got': await request.json()}\n", "f")
    r = asynchronous.post("/")
    assert r.status_code == 400 and "body is not valid JSON: body is empty" in r.text


def test_function_may_catch_the_bad_request_as_value_error(make_client):
    client = make_client("""
        from openfunction.request import BadRequest

        def f(request):
            assert request.get_json(silent=True) is None
            try:
                return request.get_json()
            except ValueError as exc:
                return {"caught": isinstance(exc, BadRequest), "why": str(exc)}, 422
    """, "f")
    r = client.post("/", content=b"{nope", headers={"content-type": "application/json"})
    assert r.status_code == 422 and r.json()["caught"] is True
    assert r.json()["why"].startswith("body is not valid JSON")


@pytest.mark.parametrize("value", [
    '("a", 200, ["x"])', '("a", 200, {"x": 1})', '("a", 200, {"x": "é€"})',
    '{"a": {1, 2}}', '{"a": b"x"}', '{(1, 2): "x"}', '{"a": float("nan")}',
])
def test_invalid_return_value_is_500_saying_so(make_client, caplog, value):
    client = make_client(f"def f(request):\n    return {value}\n", "f")
    r = client.get("/", headers={"x-request-id": "req-9"})
    assert r.status_code == 500
    assert r.text == "Internal Server Error: the function's return value is invalid (request id req-9)\n"
    assert "ReturnValueError: the function's return value is invalid: " in caplog.text
    assert "Traceback" not in caplog.text  # only the user's mistake, no library frames


@pytest.mark.parametrize("source", [
    "import sys\ndef f(request):\n    sys.exit(3)\n",
    "import sys\nasync def f(request):\n    sys.exit('bye')\n",
])
def test_sys_exit_in_the_function_is_a_500_with_request_id(make_client, caplog, source):
    client = make_client(source, "f", func_context={"name": "fn", "runtime": "Knative"})
    counts = _counted(client)
    r = client.get("/", headers={"x-request-id": "req-exit"})
    assert r.status_code == 500
    assert r.text == "Internal Server Error: the function raised an exception (request id req-exit)\n"
    assert "function 'f' failed (request req-exit)" in caplog.text and "SystemExit" in caplog.text
    assert 'main.py", line' in caplog.text and "sys.exit" in caplog.text  # the user's traceback
    assert "Exception in ASGI application" not in caplog.text
    assert counts() == (1.0, 1.0)
    assert client.get("/").status_code == 500  # still serving
