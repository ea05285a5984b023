import json
import textwrap

import pytest
from starlette.testclient import TestClient

from openfunction.cli import create_app, load, parse_options


@pytest.fixture
def make_client(tmp_path):
    """Build the real app in-process from source text and a FUNC_CONTEXT (dict)."""
    clients = []

    def factory(source, target=None, func_context=None, env=None, args=()):
        path = tmp_path / "main.py"
        path.write_text(textwrap.dedent(source))
        environ = {"CONTEXT_MODE": "self-host", **(env or {})}
        if func_context is not None:
            environ["FUNC_CONTEXT"] = json.dumps(func_context)
        argv = ["--source", str(path), *(["--target", target] if target else []), *args]
        options = parse_options(argv, environ)
        fn = load(options, environ)
        client = TestClient(create_app(fn, options), raise_server_exceptions=False)
        client.__enter__()
        clients.append(client)
        client.function = fn
        return client

    yield factory
    for client in clients:
        client.__exit__(None, None, None)
