"""bin/detect: pass for a Python function source tree, fail with 100 and one line otherwise."""

from __future__ import annotations

import tomllib

import pytest

HELLO = 'def hello(request):\n    return "Hello, World!\\n"\n'


@pytest.mark.parametrize(
    "files",
    [
        {"main.py": HELLO},
        {"requirements.txt": "requests\n"},
        {"pyproject.toml": "[project]\nname = 'fn'\nversion = '1'\n"},
        {"pkg/__init__.py": HELLO, "requirements.txt": ""},
    ],
    ids=["main.py", "requirements.txt", "pyproject.toml", "requirements-and-package"],
)
def test_passes_for_python_function_trees(cnb, files):
    for name, text in files.items():
        cnb.write(name, text)
    result = cnb.detect()
    assert result.returncode == 0, result.output
    assert "Python function: found" in result.stdout


@pytest.mark.parametrize("variable", ["FUNC_SRC", "FUNCTION_SOURCE"])
def test_passes_for_source_named_by_env(cnb, variable):
    cnb.write("handler.py", HELLO)
    assert cnb.detect().returncode == 100
    assert cnb.detect({variable: "handler.py"}).returncode == 0


def test_passes_for_source_named_in_platform_env(cnb):
    cnb.write("fn/handler.py", HELLO)
    cnb.platform_env("FUNC_SRC", "fn/handler.py")
    assert cnb.detect().returncode == 0


def test_passes_for_package_directory_source(cnb):
    cnb.write("fn/__init__.py", HELLO)
    assert cnb.detect({"FUNC_SRC": "fn"}).returncode == 0


def test_writes_the_build_plan(cnb):
    cnb.write("main.py", HELLO)
    cnb.write("requirements.txt", "six\n")
    assert cnb.detect().returncode == 0
    plan = tomllib.loads((cnb.root / "plan.toml").read_text())
    assert plan["provides"] == [{"name": "openfunction-python-function"}]
    assert plan["requires"][0]["name"] == "openfunction-python-function"
    assert plan["requires"][0]["metadata"] == {"source": "main.py", "found": ["requirements.txt", "main.py"]}


@pytest.mark.parametrize(
    "files",
    [{}, {"README.md": "# not python\n"}, {"index.js": "module.exports = () => 1\n"}, {"app.py": HELLO}],
    ids=["empty", "readme", "node", "other-py-file"],
)
def test_fails_with_one_line_reason(cnb, files):
    for name, text in files.items():
        cnb.write(name, text)
    result = cnb.detect()
    assert result.returncode == 100
    lines = result.output.strip().splitlines()
    assert len(lines) == 1, result.output
    assert "No Python function" in lines[0] and "main.py" in lines[0]
    assert not (cnb.root / "plan.toml").exists()


def test_fail_reason_names_the_configured_source(cnb):
    result = cnb.detect({"FUNC_SRC": "missing.py"})
    assert result.returncode == 100
    assert "missing.py" in result.stdout
