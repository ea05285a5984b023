import json
import textwrap

import pytest

from openfunction.cli import load, parse_options


@pytest.fixture
def make_function(tmp_path):
    """Load a real function (loader, plugins, runner) from source text and a FUNC_CONTEXT."""

    def factory(source, func_context, target="handler", env=None):
        path = tmp_path / "main.py"
        path.write_text(textwrap.dedent(source))
        environ = {"CONTEXT_MODE": "self-host", "FUNC_CONTEXT": json.dumps(func_context),
                   **(env or {})}
        options = parse_options(["--source", str(path), "--target", target], environ)
        return load(options, environ)

    return factory
