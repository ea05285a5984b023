"""samples/plugins built with the buildpack: plugins in ./plugins are found in the image."""

from __future__ import annotations

import json
import urllib.request

import pytest
from e2e_support import container, copy_sample, pack_build

pytestmark = pytest.mark.e2e

FUNC_CONTEXT = {
    "name": "python-plugins", "version": "v1", "triggers": {"http": {"port": 8080}},
    "preHooks": ["counter", "audit", "tag"], "postHooks": ["tag", "audit", "counter", "logger"],
}


def test_plugins_sample_runs_its_plugins_in_the_image(e2e_ready, tmp_path):
    app = copy_sample("plugins", tmp_path)
    image = "ofn-e2e/plugins:latest"
    built = pack_build(app, image, env={"FUNC_NAME": "hello"})
    assert built.returncode == 0, built.output
    env = {"FUNC_CONTEXT": json.dumps(FUNC_CONTEXT), "POD_NAME": "plugins-pod", "POD_NAMESPACE": "default"}
    with container(image, env=env) as url:
        with urllib.request.urlopen(url + "/?name=image", timeout=15) as response:
            body = json.loads(response.read())
            headers = response.headers
    assert body == {"greeting": "Hello, image!"}
    assert headers["x-audit-hooks"] == "pre:audit,pre:tag,post:tag,post:audit"
    assert headers["x-audit-invocations"] == "0"
