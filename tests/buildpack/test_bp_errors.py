"""Build errors: a titled message saying what went wrong and what to do, exit 1, no traceback."""

from __future__ import annotations

import sys

import pytest

HELLO = 'def hello(request):\n    return "Hello, World!\\n"\n'
NEXT_MINOR = f"{sys.version_info[0]}.{sys.version_info[1] + 1}"


def assert_error(result, title: str, *phrases: str) -> None:
    assert result.returncode == 1, result.output
    assert f"[Error: {title}]" in result.stderr, result.output
    for phrase in phrases:
        assert phrase in result.stderr, f"{phrase!r} not in:\n{result.stderr}"
    assert "Traceback" not in result.output


def test_no_target_given_and_none_found(cnb):
    cnb.write("main.py", "def one(request):\n    pass\n\ndef two(request):\n    pass\n")
    assert_error(cnb.build(), "No function target", "one, two", "FUNC_NAME")


def test_no_target_in_a_source_without_functions(cnb):
    cnb.write("main.py", "VALUE = 1\n")
    assert_error(cnb.build(), "No function target", "0 public functions", "FUNCTION_TARGET")


def test_target_missing_in_the_source(cnb):
    cnb.write("main.py", HELLO)
    assert_error(
        cnb.build({"FUNC_NAME": "helo"}),
        "Function target not found",
        "'helo' (from FUNC_NAME)",
        "Functions defined there: hello",
        "Set FUNC_NAME to one of them",
    )


def test_target_check_does_not_import_user_code(cnb, tmp_path):
    witness = tmp_path / "imported"
    cnb.write("main.py", f"open({str(witness)!r}, 'w').close()\n" + HELLO)
    assert cnb.build({"FUNC_NAME": "hello"}).returncode == 0
    assert_error(cnb.build({"FUNC_NAME": "nothere"}), "Function target not found")
    assert not witness.exists()


def test_function_source_not_found(cnb):
    cnb.write("requirements.txt", "")
    assert_error(cnb.build({"FUNC_SRC": "handler.py"}), "Function source not found", "'handler.py' (from FUNC_SRC)")


def test_syntax_error_in_source(cnb):
    cnb.write("main.py", "def hello(request:\n    return 1\n")
    assert_error(cnb.build(), "Syntax error in the function source", "main.py is not valid Python at line 1")


def test_unknown_signature_type(cnb):
    cnb.write("main.py", HELLO)
    assert_error(
        cnb.build({"FUNC_SIGNATURE_TYPE": "grpc"}),
        "Unknown function signature type",
        "FUNC_SIGNATURE_TYPE='grpc'",
        "http, cloudevent or openfunction",
    )


def test_requirements_that_fail_to_resolve_offline(cnb):
    cnb.write("main.py", HELLO)
    cnb.write("requirements.txt", "no-such-package-anywhere==1.0\n")
    cnb.vendor("greeting-1.0-*.whl")
    assert_error(
        cnb.build(),
        "Cannot install the packages in requirements.txt",
        "no-such-package-anywhere",
        "vendor/ directory",
        "Add the missing wheels to vendor/",
    )
    assert not (cnb.layers / "dependencies.toml").exists()


def test_requirement_conflicting_with_the_framework(cnb):
    cnb.write("main.py", HELLO)
    cnb.write("requirements.txt", "ofn-fake-dep==2.0\n")
    cnb.vendor("ofn_fake_dep-2.0-*.whl")
    assert_error(cnb.build(), "Cannot install the packages in requirements.txt", "ofn-fake-dep")


def test_requirements_that_fail_to_resolve_from_the_index(cnb):
    # the index is an unreachable loopback address (see bp_support.UNREACHABLE_INDEX)
    cnb.write("main.py", HELLO)
    cnb.write("requirements.txt", "greeting==1.0\n")
    assert_error(
        cnb.build({"UV_HTTP_RETRIES": "0"}),
        "Cannot install the packages in requirements.txt",
        "127.0.0.1:9",
        "The package index could not be reached",
        "vendor the wheels in vendor/",
    )


def test_missing_included_requirements_file(cnb):
    cnb.write("main.py", HELLO)
    cnb.write("requirements.txt", "-r base.txt\n")
    assert_error(cnb.build(), "Included requirements file not found", "'base.txt'")


@pytest.mark.parametrize("request_text", [NEXT_MINOR, f"{NEXT_MINOR}.1", "2.7"])
def test_python_version_file_the_stack_cannot_satisfy(cnb, request_text):
    cnb.write("main.py", HELLO)
    cnb.write(".python-version", request_text + "\n")
    assert_error(
        cnb.build(),
        "Unsupported Python version",
        f".python-version asks for Python {request_text}",
        "stack has Python",
    )


def test_invalid_python_version_file(cnb):
    cnb.write("main.py", HELLO)
    cnb.write(".python-version", "latest-and-greatest\n")
    assert_error(cnb.build(), "Invalid .python-version", "'latest-and-greatest'")


@pytest.mark.parametrize("spec", [f">={NEXT_MINOR}", "<3.8", f"~={NEXT_MINOR}", f"=={NEXT_MINOR}.*"])
def test_requires_python_the_stack_cannot_satisfy(cnb, spec):
    cnb.write("main.py", HELLO)
    cnb.write("pyproject.toml", f"[project]\nname = 'fn'\nversion = '1'\nrequires-python = '{spec}'\n")
    assert_error(cnb.build(), "Unsupported Python version", f"requires-python = '{spec}'")


def test_invalid_requires_python(cnb):
    cnb.write("main.py", HELLO)
    cnb.write("pyproject.toml", "[project]\nname = 'fn'\nversion = '1'\nrequires-python = 'py3 please'\n")
    assert_error(cnb.build(), "Invalid requires-python", "'py3 please'")


def test_invalid_pyproject(cnb):
    cnb.write("main.py", HELLO)
    cnb.write("pyproject.toml", "[project\nname = \n")
    assert_error(cnb.build(), "Invalid pyproject.toml", "not valid TOML")


def test_dynamic_dependencies_in_pyproject(cnb):
    cnb.write("main.py", HELLO)
    cnb.write("pyproject.toml", "[project]\nname = 'fn'\nversion = '1'\ndynamic = ['dependencies']\n")
    assert_error(cnb.build(), "Dynamic dependencies in pyproject.toml", "requirements.txt")


def test_wheelhouse_missing(cnb, tmp_path):
    empty = tmp_path / "no-wheels"
    empty.mkdir()
    cnb.write("main.py", HELLO)
    assert_error(cnb.build({"OFN_WHEELHOUSE": str(empty)}), "Functions framework wheels missing", "make wheels builder")


def test_installer_missing(cnb, tmp_path):
    cnb.write("main.py", HELLO)
    result = cnb.build({"OFN_UV": str(tmp_path / "no-uv"), "PATH": "/usr/bin:/bin"})
    assert_error(result, "Package installer missing", "make builder")


def test_errors_come_before_any_install(cnb):
    cnb.write("main.py", HELLO)
    result = cnb.build({"FUNC_NAME": "missing"})
    assert result.returncode == 1
    assert "Runtime:" not in result.stdout
    assert not (cnb.layers / "runtime").exists()
