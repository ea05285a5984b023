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


def test_non_utf8_value_of_another_variable_is_tolerated(cnb):
    cnb.write("main.py", HELLO)
    cnb.platform_env("GREETING", b"caf\xe9")
    result = cnb.detect()
    assert result.returncode == 0, result.output
    assert "Traceback" not in result.output


def test_non_utf8_func_src_is_a_titled_error(cnb):
    cnb.write("main.py", HELLO)
    cnb.platform_env("FUNC_SRC", b"caf\xe9.py")
    result = cnb.detect()
    assert result.returncode == 1, result.output
    assert "[Error: Build setting is not UTF-8 text]" in result.stderr
    assert "FUNC_SRC" in result.stderr and "caf\\xe9.py" in result.stderr
    assert "Traceback" not in result.output


def test_overlong_func_src_is_not_found(cnb):
    cnb.write("main.py", HELLO)
    result = cnb.detect({"FUNC_SRC": "x" * 300})
    assert result.returncode == 100, result.output
    assert "(300 characters)" in result.stdout
    assert "Traceback" not in result.output


@pytest.mark.parametrize(("value", "suggestion"), [("main", "main.py"), ("handler.py", "main.py"), ("fn", "fn.py")])
def test_wrong_func_src_says_so_and_suggests_a_file(cnb, value, suggestion):
    cnb.write("main.py", HELLO)
    cnb.write("fn.py", HELLO)
    result = cnb.detect({"FUNC_SRC": value})
    assert result.returncode == 100
    line = result.stdout.strip()
    assert f"the file FUNC_SRC={value} names was not found" in line
    assert f"did you mean FUNC_SRC={suggestion}?" in line
    assert "no main," not in line


@pytest.mark.parametrize("value", ["/etc/passwd", "../main.py", "fn/../../main.py"])
def test_func_src_outside_the_app_is_refused(cnb, value):
    cnb.write("main.py", HELLO)
    result = cnb.detect({"FUNC_SRC": value})
    assert result.returncode == 100
    assert f"FUNC_SRC={value} is outside the app directory" in result.stdout


def test_unexpected_detect_failure_is_an_internal_error_not_a_traceback(cnb, tmp_path):
    cnb.write("main.py", HELLO)
    result = cnb.detect({"CNB_BUILDPACK_DIR": str(tmp_path / "no-buildpack-here")})
    assert result.returncode == 1
    assert "[Error: Internal buildpack error]" in result.stderr
    assert "Traceback" not in result.output
