"""Build errors: a titled message saying what went wrong and what to do, exit 1, no traceback."""

from __future__ import annotations

import sys

import pytest
from bp_support import make_wheel

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
    result = cnb.build()
    assert_error(
        result,
        "Cannot install the packages in requirements.txt",
        "ofn-fake-dep is installed at 1.0 by the functions framework, and requirements.txt asks for\n"
        "  ofn-fake-dep==2.0: remove your pin of ofn-fake-dep or relax it to allow 1.0.",
        '("ofn-fake-dep==1.0")',  # uv's wording, explained
    )
    assert "Add the missing wheels" not in result.stderr  # nothing is missing


def test_requirement_whose_dependency_conflicts_with_the_framework(cnb):
    cnb.write("main.py", HELLO)
    cnb.write("requirements.txt", "needs-old-dep\n")
    make_wheel(cnb.app / "vendor", "needs-old-dep", "1.0", {"needs_old_dep.py": ""}, requires=("ofn-fake-dep<1",))
    make_wheel(cnb.app / "vendor", "ofn-fake-dep", "0.5", {"ofn_fake_dep.py": ""})
    result = cnb.build()
    assert_error(
        result,
        "Cannot install the packages in requirements.txt",
        "ofn-fake-dep is installed at 1.0 by the functions framework, and a package in\n"
        "  requirements.txt needs another version of it",
    )
    assert "remove your pin" not in result.stderr


def test_pin_matching_the_framework_is_not_blamed(cnb):
    cnb.write("main.py", HELLO)
    cnb.write("requirements.txt", "ofn-fake-dep==1.0\nno-such-package-anywhere\n")
    cnb.vendor("greeting-1.0-*.whl")
    result = cnb.build()
    assert_error(result, "Cannot install the packages in requirements.txt", "Add the missing wheels to vendor/")
    assert "installed at 1.0 by the functions framework" not in result.stderr


def test_generic_install_advice_names_the_file_the_packages_come_from(cnb):
    cnb.write("main.py", HELLO)
    cnb.write("uv.toml", "[pip]\nno-index = true\n")  # uv fails without a network error
    cnb.write("requirements.txt", "no-such-package-anywhere\n")
    result = cnb.build()
    assert_error(result, "Cannot install the packages in requirements.txt", "`pip install -r requirements.txt`")

    (cnb.app / "requirements.txt").unlink()
    cnb.write("pyproject.toml", "[project]\nname = 'fn'\nversion = '1'\ndependencies = ['no-such-package-anywhere']\n")
    result = cnb.build()
    assert_error(
        result,
        "Cannot install the packages in pyproject.toml",
        "Check the package names and versions in pyproject.toml",
        "`uv pip install -r pyproject.toml`",
    )
    assert "requirements.txt" not in result.stderr

    cnb.vendor("greeting-1.0-*.whl")
    result = cnb.build()
    assert_error(result, "Cannot install the packages in pyproject.toml", "fix the\nversions in pyproject.toml",
                 "with your [project] dependencies")
    assert "-r requirements.txt" not in result.stderr


def test_package_that_fails_to_build_from_source(cnb):
    cnb.write("main.py", HELLO)
    cnb.local_project("libs/pg", "pglike", "1.0", {"pglike/__init__.py": ""},
                      fail_with="Error: pg_config executable not found.")
    cnb.write("requirements.txt", "./libs/pg\n")
    result = cnb.build()
    assert_error(
        result,
        "Cannot install the packages in requirements.txt",
        "pg_config executable not found",  # the build's own output
        "Building a package from source failed:\n    pglike @ file://",
        "no other libraries' development files",
        "psycopg2-binary instead of psycopg2",
    )
    assert "pip install -r requirements.txt" not in result.stderr


@pytest.mark.parametrize(
    ("files", "file", "shown"),
    [
        ({"requirements.txt": "-e ./libs/mylib\n"}, "requirements.txt", "-e ./libs/mylib"),
        ({"requirements.txt": "flask\n--editable=./libs/mylib  # dev\n"}, "requirements.txt", "-e ./libs/mylib"),
        ({"requirements.txt": "-r requirements/dev.txt\n", "requirements/dev.txt": "-e./libs/mylib\n"},
         "requirements/dev.txt", "-e ./libs/mylib"),
        ({"requirements.txt": "-e git+https://example.invalid/lib.git#egg=lib\n"}, "requirements.txt",
         "-e git+https://example.invalid/lib.git#egg=lib"),
    ],
    ids=["short", "long", "included", "vcs"],
)
def test_editable_requirement_is_refused_before_any_install(cnb, files, file, shown):
    cnb.write("main.py", HELLO)
    for name, text in files.items():
        cnb.write(name, text)
    result = cnb.build()
    assert_error(
        result,
        f"Editable requirement in {file}",
        shown,
        "Editable installs are not supported in an image",
        "List the path without -e",
    )
    assert "Runtime:" not in result.stdout


def test_poetry_dependencies_are_refused(cnb):
    cnb.write("main.py", HELLO)
    cnb.write("pyproject.toml", "[tool.poetry]\nname = 'fn'\n\n[tool.poetry.dependencies]\n"
                                "python = '^3.11'\nhumanize = '^4.9'\n")
    result = cnb.build()
    assert_error(
        result,
        "Poetry dependencies are not read",
        "[tool.poetry.dependencies] (humanize)",
        "only [project] dependencies and requirements.txt",
        "poetry export -f requirements.txt -o requirements.txt --without-hashes",
        "move them to\n[project] dependencies",
    )
    assert "Runtime:" not in result.stdout


def test_pipfile_dependencies_are_refused(cnb):
    cnb.write("main.py", HELLO)
    cnb.write("Pipfile", "[packages]\nrequests = '*'\n")
    assert_error(cnb.build(), "Pipfile dependencies are not read", "(requests)",
                 "pipenv requirements > requirements.txt")


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


@pytest.mark.parametrize(
    ("text", "phrase"),
    [
        ("project = 'fn'\n", "[project] must be a table, but it is a string, 'fn'"),
        ("[project]\ndynamic = 5\n", "[project] dynamic must be a list of strings, but it is an integer, 5"),
        ("[project]\ndependencies = 'requests'\n",
         "[project] dependencies must be a list of strings, but it is a string"),
        ("[project]\ndependencies = ['requests', 2]\n", "[project] dependencies must be a list of strings, "
                                                         "but it is a list with an integer, 2"),
        ("[project]\nrequires-python = 3.11\n", "[project] requires-python must be a string, but it is a number"),
        ("tool = 1\n", "[tool] must be a table"),
        ("[tool]\npoetry = 'x'\n", "[tool.poetry] must be a table"),
        ("[tool.poetry]\ndependencies = ['humanize']\n",
         "[tool.poetry.dependencies] must be a table, but it is a list"),
    ],
    ids=["project", "dynamic", "dependencies", "dependency-item", "requires-python", "tool", "poetry",
         "poetry-dependencies"],
)
def test_pyproject_field_of_the_wrong_type(cnb, text, phrase):
    cnb.write("main.py", HELLO)
    cnb.write("pyproject.toml", text)
    result = cnb.build()
    assert_error(result, "Invalid pyproject.toml", phrase)
    assert "Internal" not in result.output


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


def test_func_name_in_module_colon_function_form(cnb):
    cnb.write("main.py", HELLO)
    assert_error(
        cnb.build({"FUNC_NAME": "main:hello"}),
        "Function target is not a function name",
        "FUNC_NAME='main:hello' looks like module:function",
        "Set FUNC_SRC=main.py FUNC_NAME=hello.",
    )
    assert_error(
        cnb.build({"FUNCTION_TARGET": "pkg.handlers.hello"}),
        "Function target is not a function name",
        "Set FUNCTION_SOURCE=pkg/handlers.py FUNCTION_TARGET=hello.",
    )


def test_target_defined_only_when_run_as_a_script(cnb):
    cnb.write("main.py", "import os\n\nif __name__ == '__main__':\n    def hello(request):\n        return 'hi'\n")
    assert_error(
        cnb.build({"FUNC_NAME": "hello"}),
        "Function target not found",
        "defined only under `if __name__ == \"__main__\":`",
    )
    assert_error(cnb.build(), "No function target", "0 public functions")


def test_function_source_outside_the_app(cnb):
    cnb.write("requirements.txt", "")
    assert_error(
        cnb.build({"FUNC_SRC": "/etc/passwd"}),
        "Function source outside the app directory",
        "FUNC_SRC='/etc/passwd' is outside the app directory",
    )


def test_function_source_with_an_overlong_name(cnb):
    cnb.write("requirements.txt", "")
    assert_error(cnb.build({"FUNC_SRC": "x" * 300}), "Function source not found", "(300 characters)")


def test_function_source_not_found_suggests_a_file(cnb):
    cnb.write("main.py", HELLO)
    assert_error(cnb.build({"FUNC_SRC": "main"}), "Function source not found", "Did you mean FUNC_SRC=main.py?")


def test_non_utf8_function_setting(cnb):
    cnb.write("main.py", HELLO)
    cnb.platform_env("FUNC_NAME", b"h\xe9llo")
    assert_error(cnb.build(), "Build setting is not UTF-8 text", "FUNC_NAME", "h\\xe9llo")
