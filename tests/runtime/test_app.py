import json

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
    r = client.post("/", content=b"{}", headers={"content-type": "application/json"})
    assert r.status_code == 400
    assert "not a valid CloudEvent" in r.text and "specversion" in r.text


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
