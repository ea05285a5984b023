"""Plugins through the real `functions-framework` process, resolved from samples/plugins."""

import asyncio
import json
from pathlib import Path

import httpx
import pytest

from support.process import run_function

pytestmark = pytest.mark.integration

SAMPLE = Path(__file__).resolve().parents[2] / "samples" / "plugins"

FUNC_CONTEXT = {
    "name": "python-plugins", "version": "v1", "triggers": {"http": {"port": 8080}},
    "preHooks": ["counter", "audit", "tag"], "postHooks": ["tag", "audit", "counter", "logger"],
}


def test_pre_and_post_hooks_run_in_listed_order():
    env = {"FUNC_CONTEXT": json.dumps(FUNC_CONTEXT), "CONTEXT_MODE": "self-host"}
    with run_function(SAMPLE / "main.py", "hello", env=env) as fn:
        r = httpx.get(fn.url + "/?name=plugins")
        assert r.status_code == 200 and r.json() == {"greeting": "Hello, plugins!"}
        assert r.headers["x-audit-hooks"] == "pre:audit,pre:tag,post:tag,post:audit"
        assert float(r.headers["x-audit-duration-ms"]) >= 0
        # `counter` runs after `audit` in the post list, so audit sees the previous count
        assert r.headers["x-audit-invocations"] == "0"
        assert httpx.get(fn.url).headers["x-audit-invocations"] == "1"
    assert "pre=['counter', 'audit', 'tag']" in fn.log
    assert "function=python-plugins trigger=http outcome=ok status=200" in fn.log


def test_concurrent_invocations_keep_their_own_state():
    env = {"FUNC_CONTEXT": json.dumps(FUNC_CONTEXT), "CONTEXT_MODE": "self-host"}

    async def burst(url):
        async with httpx.AsyncClient() as client:
            return await asyncio.gather(*(client.get(f"{url}/?name=n{i}") for i in range(50)))

    with run_function(SAMPLE / "main.py", "hello", env=env) as fn:
        responses = asyncio.run(burst(fn.url))
    for i, r in enumerate(responses):
        assert r.json() == {"greeting": f"Hello, n{i}!"}
        assert r.headers["x-audit-hooks"] == "pre:audit,pre:tag,post:tag,post:audit"


def test_unknown_plugin_stops_startup_with_the_list(tmp_path):
    import subprocess

    from support.process import FUNCTIONS_FRAMEWORK

    ctx = {**FUNC_CONTEXT, "preHooks": ["audit", "nosuch"]}
    out = subprocess.run(
        [FUNCTIONS_FRAMEWORK, "--source", str(SAMPLE / "main.py"), "--target", "hello", "--dry-run"],
        env={"FUNC_CONTEXT": json.dumps(ctx), "CONTEXT_MODE": "self-host", "PATH": "/usr/bin:/bin"},
        capture_output=True, text=True, timeout=30,
    )
    assert out.returncode != 0
    assert "unknown plugin 'nosuch' in preHooks" in out.stderr
    assert "audit" in out.stderr and "logger" in out.stderr and "tag" in out.stderr


def test_failing_required_plugin_answers_500(tmp_path):
    (tmp_path / "plugins").mkdir()
    (tmp_path / "plugins" / "gate.py").write_text(
        "from openfunction.plugins import Plugin\n"
        "class Gate(Plugin):\n"
        "    name = 'gate'\n"
        "    required = True\n"
        "    def exec_pre_hook(self, ctx, plugins):\n"
        "        if ctx.request.headers.get('x-deny'):\n"
        "            raise PermissionError('denied by gate')\n"
    )
    (tmp_path / "main.py").write_text("def f(request):\n    return 'passed'\n")
    ctx = {"name": "gated", "runtime": "Knative", "prePlugins": ["gate"]}
    env = {"FUNC_CONTEXT": json.dumps(ctx), "CONTEXT_MODE": "self-host"}
    with run_function(tmp_path / "main.py", "f", env=env) as fn:
        assert httpx.get(fn.url).text == "passed"
        denied = httpx.get(fn.url, headers={"x-deny": "1"})
        assert denied.status_code == 500 and "gate" in denied.text
    assert "PermissionError: denied by gate" in fn.log
