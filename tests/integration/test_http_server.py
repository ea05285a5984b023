"""The real `functions-framework` process, over real HTTP on loopback."""

import json
import signal
import socket
import subprocess
import threading
import time

import httpx
import pytest

from support.process import FUNCTIONS_FRAMEWORK, free_port, run_function

pytestmark = pytest.mark.integration

SOURCE = '''
import asyncio
import time
import openfunction

def hello(request):
    return "Hello, World!\\n"

async def slow(request):
    await asyncio.sleep(float(request.query_params.get("s", "1")))
    return "finished"

def boom(request):
    raise RuntimeError("user bug")

def stuck(request):
    time.sleep(60)

@openfunction.cloud_event
def on_event(event):
    return {"id": event["id"], "data": event.data}

@openfunction.function
def of(ctx, data):
    return {"function": ctx.name, "data": data}
'''


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    path = tmp_path_factory.mktemp("fn") / "main.py"
    path.write_text(SOURCE)
    return path


def test_http_function(source):
    with run_function(source, "hello") as fn:
        r = httpx.get(fn.url + "/any/path")
        assert r.status_code == 200 and r.text == "Hello, World!\n"
    assert "function 'hello'" in fn.log and "http signature" in fn.log


def test_cloudevent_binary_structured_and_invalid(source):
    with run_function(source, "on_event") as fn:
        binary = httpx.post(fn.url, content=b'{"a":1}', headers={
            "ce-specversion": "1.0", "ce-id": "b1", "ce-source": "/s", "ce-type": "t",
            "content-type": "application/json"})
        assert binary.json() == {"id": "b1", "data": {"a": 1}}
        structured = httpx.post(fn.url, headers={"content-type": "application/cloudevents+json"},
                                content=json.dumps({"specversion": "1.0", "id": "s1", "source": "/s",
                                                    "type": "t", "data": [1, 2]}))
        assert structured.json() == {"id": "s1", "data": [1, 2]}
        invalid = httpx.post(fn.url, content=b"not an event")
        assert invalid.status_code == 400 and "not a valid CloudEvent" in invalid.text


def test_openfunction_signature_with_func_context(source):
    ctx = {"name": "of-func", "version": "v1", "runtime": "Knative", "port": "8080"}
    with run_function(source, "of", env={"FUNC_CONTEXT": json.dumps(ctx),
                                         "POD_NAME": "p", "POD_NAMESPACE": "ns"}) as fn:
        r = httpx.post(fn.url, json={"x": 1})
        assert r.json() == {"function": "of-func", "data": {"x": 1}}
    assert "runtime Knative (FUNC_CONTEXT" in fn.log


def test_exception_is_500_and_process_keeps_serving(source):
    with run_function(source, "boom") as fn:
        r = httpx.get(fn.url, headers={"x-request-id": "abc123"})
        assert r.status_code == 500 and "abc123" in r.text and "user bug" not in r.text
        assert httpx.get(fn.url).status_code == 500
        assert fn.proc.poll() is None
    assert "RuntimeError: user bug" in fn.log and "abc123" in fn.log
    assert 'main.py", line' in fn.log


def test_sigterm_lets_in_flight_request_finish(source):
    with run_function(source, "slow") as fn:
        result = {}

        def call():
            result["response"] = httpx.get(fn.url + "/?s=1.5", timeout=10)

        thread = threading.Thread(target=call)
        thread.start()
        time.sleep(0.5)
        fn.proc.send_signal(signal.SIGTERM)
        time.sleep(0.2)
        with pytest.raises(httpx.ConnectError):
            httpx.get(fn.url, timeout=1)  # no longer accepting
        thread.join(10)
        assert fn.proc.wait(10) == 0
    assert result["response"].status_code == 200 and result["response"].text == "finished"


def test_sigterm_with_a_stuck_def_function_exits_after_the_grace_period(source):
    with run_function(source, "stuck", env={"GRACEFUL_SHUTDOWN_TIMEOUT": "1"}) as fn:
        result = {}

        def call():
            result["response"] = httpx.get(fn.url, timeout=30)

        thread = threading.Thread(target=call, daemon=True)
        thread.start()
        time.sleep(0.5)
        fn.proc.send_signal(signal.SIGTERM)
        assert fn.proc.wait(15) == 1  # the worker thread still sleeps: not waited for
        thread.join(5)
    assert result["response"].status_code == 503
    assert "stopped: requests were still running when the grace period (1s" in fn.log
    assert "stopped after finishing in-flight requests" not in fn.log
    assert "GET /: cancelled" in fn.log and "Traceback" not in fn.log


def test_dry_run(source):
    out = subprocess.run([FUNCTIONS_FRAMEWORK, "--source", str(source), "--target", "of", "--dry-run"],
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 0
    assert "openfunction signature" in out.stdout and "not serving" in out.stdout


def test_dry_run_from_env(source):
    out = subprocess.run([FUNCTIONS_FRAMEWORK], capture_output=True, text=True, timeout=30,
                         env={"FUNCTION_SOURCE": str(source), "FUNCTION_TARGET": "hello",
                              "DRY_RUN": "true", "PORT": "9999", "PATH": "/usr/bin:/bin"})
    assert out.returncode == 0 and "http://0.0.0.0:9999/" in out.stdout


def run_cli(args, env=None, cwd=None):
    base = {"PATH": "/usr/bin:/bin", "CONTEXT_MODE": "self-host"}
    return subprocess.run([FUNCTIONS_FRAMEWORK, *args], capture_output=True, text=True,
                          timeout=30, env={**base, **(env or {})}, cwd=cwd)


@pytest.mark.parametrize(
    "env, expected",
    [
        ({"FUNC_CONTEXT": "{not json"}, "FUNC_CONTEXT is not valid JSON"),
        ({"FUNC_CONTEXT": '{"name": "f", "runtime": "Knative", "port": true}'},
         "FUNC_CONTEXT.port has the wrong type"),
        ({"FUNC_CONTEXT": '{"name": "f", "runtime": "Lambda"}'}, "FUNC_CONTEXT.runtime is invalid: 'Lambda'"),
        ({"PORT": "eighty"}, "PORT is invalid"),
        ({"FUNCTION_SIGNATURE_TYPE": "grpc"}, "FUNCTION_SIGNATURE_TYPE is invalid"),
    ],
)
def test_startup_config_errors(source, env, expected):
    out = run_cli(["--source", str(source), "--target", "hello"], env)
    assert out.returncode != 0
    assert expected in out.stderr and "fix:" in out.stderr
    assert "Traceback" not in out.stderr


ASYNC_CRON = ('{"name": "f", "runtime": "Async", "inputs": {"cron": '
              '{"componentName": "cron", "componentType": "bindings.cron"}}}')


@pytest.mark.parametrize(
    "target, env, expected",
    [
        ("hello", {"METRICS_PORT": "abc"}, "METRICS_PORT is invalid: 'abc'"),
        ("hello", {"METRICS_PORT": "8080"}, "METRICS_PORT is the function's port (8080)"),
        ("of", {"FUNC_CONTEXT": '{"name": "f", "runtime": "Async"}'},
         "the Async runtime has no inputs to serve"),
        ("of", {"FUNC_CONTEXT": ASYNC_CRON, "APP_PROTOCOL": "bogus"}, "APP_PROTOCOL is invalid"),
    ],
)
def test_dry_run_makes_the_checks_serving_makes(source, target, env, expected):
    out = run_cli(["--source", str(source), "--target", target, "--dry-run"], env)
    assert out.returncode == 2, out.stdout
    assert expected in out.stderr and "fix:" in out.stderr and "Traceback" not in out.stderr


def test_source_missing(tmp_path):
    out = run_cli(["--target", "hello"], cwd=tmp_path)
    assert out.returncode != 0 and "function source file not found: main.py" in out.stderr


def test_import_error_shows_user_traceback(tmp_path):
    (tmp_path / "main.py").write_text("import os\nvalue = os.environ['NOPE_NOT_SET']\ndef f(r):\n    pass\n")
    out = run_cli(["--target", "f"], cwd=tmp_path)
    assert out.returncode != 0
    assert "importing" in out.stderr and "KeyError: 'NOPE_NOT_SET'" in out.stderr
    assert "main.py\", line 2" in out.stderr and "openfunction" not in out.stderr.split("importing")[1].split("fix:")[0].replace("openfunction-functions-framework", "")


def test_target_not_found_lists_callables(source):
    out = run_cli(["--source", str(source), "--target", "helo"])
    assert out.returncode != 0
    assert "'helo' not found" in out.stderr and "boom, hello, of, on_event, slow, stuck" in out.stderr


def test_target_not_callable(tmp_path):
    (tmp_path / "main.py").write_text("hello = 42\n")
    out = run_cli(["--target", "hello"], cwd=tmp_path)
    assert out.returncode != 0 and "is not callable" in out.stderr


def test_port_in_use(source):
    port = free_port()
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", port))
        busy.listen(1)
        out = run_cli(["--source", str(source), "--target", "hello", "--host", "127.0.0.1",
                       "--port", str(port)])
    assert out.returncode != 0 and f"port {port} is already in use" in out.stderr


def test_debug_reloads_on_code_change(tmp_path):
    src = tmp_path / "main.py"
    src.write_text("def f(request):\n    return 'v1'\n")
    with run_function(src, "f", args=["--debug"]) as fn:
        deadline = time.monotonic() + 20
        text = ""
        while time.monotonic() < deadline and text != "v1":
            try:
                text = httpx.get(fn.url, timeout=1).text
            except httpx.HTTPError:
                time.sleep(0.1)
        assert text == "v1"
        deadline = time.monotonic() + 20
        written = 0.0
        while time.monotonic() < deadline and text != "v2":
            # written again every second: the reloader's first scan may come after the first
            # write and take it as the starting point
            if time.monotonic() - written > 1:
                src.write_text("def f(request):\n    return 'v2'\n")
                written = time.monotonic()
            time.sleep(0.2)
            try:
                text = httpx.get(fn.url, timeout=1).text
            except httpx.HTTPError:
                pass
        assert text == "v2"
