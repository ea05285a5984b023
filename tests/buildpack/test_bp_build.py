"""bin/build: layers, their TOML, launch env, launch.toml, SBOMs and cache reuse."""

from __future__ import annotations

import json
import os
import tomllib
from pathlib import Path

from bp_support import FRAMEWORK_VERSION, ROOT, make_wheel

HELLO = 'def hello(request):\n    return "Hello, World!\\n"\n'
LAYERS = ("runtime", "dependencies", "function")


def launch_env(cnb) -> dict[str, str]:
    env_dir = cnb.layers / "function" / "env.launch"
    return {p.name: p.read_text() for p in sorted(env_dir.iterdir())}


def test_buildpack_toml_declares_api_targets_and_sbom():
    descriptor = tomllib.loads((ROOT / "buildpack.toml").read_text())
    assert descriptor["api"] in ("0.10", "0.11")
    assert descriptor["buildpack"]["id"] == "openfunction/python-function"
    assert descriptor["buildpack"]["sbom-formats"] == ["application/vnd.cyclonedx+json"]
    assert {"os": "linux", "arch": "amd64", "distros": [{"name": "debian", "version": "12"}]} in descriptor["targets"]
    assert "stacks" not in descriptor


def test_build_contributes_layers_and_web_process(cnb):
    cnb.write("main.py", HELLO)
    cnb.write("requirements.txt", "greeting==1.0\n")
    cnb.vendor("greeting-1.0-*.whl")
    result = cnb.build({"FUNC_NAME": "hello"})
    assert result.returncode == 0, result.output

    runtime = cnb.layer_toml("runtime")
    # launch-only: reused from the previous image by its metadata, never via the cache
    assert runtime["types"] == {"launch": True, "build": False, "cache": False}
    assert runtime["metadata"]["framework_version"] == FRAMEWORK_VERSION
    assert runtime["metadata"]["buildpack_version"] == "0.1.0"
    assert {(p["name"], p["version"]) for p in runtime["metadata"]["packages"]} == {
        ("openfunction-functions-framework", FRAMEWORK_VERSION), ("ofn-fake-dep", "1.0")}
    assert (cnb.layers / "runtime" / "bin" / "functions-framework").is_file()

    deps = cnb.layer_toml("dependencies")
    assert deps["types"] == {"launch": True, "build": True, "cache": True}
    assert deps["metadata"]["source"] == "requirements.txt"
    assert deps["metadata"]["offline"] is True
    site = cnb.layers / "dependencies" / "site-packages"
    assert (site / "greeting.py").is_file()
    # ofn-fake-dep 1.0 is in the runtime layer already: not installed twice
    assert not (site / "ofn_fake_dep.py").exists()
    assert (cnb.layers / "dependencies" / "bin" / "greet").is_file()
    env_dir = cnb.layers / "dependencies" / "env"
    assert (env_dir / "PYTHONPATH.prepend").read_text() == str(site)
    assert (env_dir / "PYTHONPATH.delim").read_text() == os.pathsep

    function = cnb.layer_toml("function")
    assert function["types"] == {"launch": True, "build": False, "cache": False}

    assert cnb.launch_toml() == {
        "processes": [{"type": "web", "command": ["functions-framework"], "args": [], "default": True}]
    }
    for world_writable in cnb.layers.rglob(".lock"):
        raise AssertionError(f"uv lock file left in a layer: {world_writable}")


def test_launch_env_defaults_come_from_openfunction_build_env(cnb):
    cnb.write("main.py", HELLO + "\ndef other(request):\n    return 'x'\n")
    cnb.write("requirements.txt", "")
    cnb.platform_env("FUNC_NAME", "hello")
    cnb.platform_env("FUNC_SIGNATURE_TYPE", "HTTP")
    result = cnb.build()
    assert result.returncode == 0, result.output
    # .default: a variable set when the container starts wins
    assert launch_env(cnb) == {
        "FUNCTION_SIGNATURE_TYPE.default": "http",
        "FUNCTION_SOURCE.default": "main.py",
        "FUNCTION_TARGET.default": "hello",
        "PYTHONUNBUFFERED.default": "1",
    }
    assert "target from FUNC_NAME" in result.stdout


def test_framework_variable_names_win_over_openfunction_ones(cnb):
    cnb.write("fn/handler.py", "def a(request):\n    return 1\n\ndef b(request):\n    return 2\n")
    result = cnb.build({
        "FUNC_NAME": "a", "FUNCTION_TARGET": "b",
        "FUNC_SRC": "nope.py", "FUNCTION_SOURCE": "fn/handler.py",
        "FUNC_SIGNATURE_TYPE": "http", "FUNCTION_SIGNATURE_TYPE": "openfunction",
    })
    assert result.returncode == 0, result.output
    env = launch_env(cnb)
    assert env["FUNCTION_TARGET.default"] == "b"
    assert env["FUNCTION_SOURCE.default"] == "fn/handler.py"
    assert env["FUNCTION_SIGNATURE_TYPE.default"] == "openfunction"


def test_target_found_in_source_when_not_given(cnb):
    cnb.write("main.py", "import os\n\ndef _helper():\n    pass\n\nasync def handle(ctx, data):\n    return data\n")
    result = cnb.build()
    assert result.returncode == 0, result.output
    assert launch_env(cnb)["FUNCTION_TARGET.default"] == "handle"
    assert "target found in the source" in result.stdout


def test_decorated_function_is_the_target_among_several(cnb):
    cnb.write("main.py", "import openfunction\n\ndef util():\n    pass\n\n"
                         "@openfunction.function\ndef main(ctx, data):\n    return data\n")
    assert cnb.build().returncode == 0
    assert launch_env(cnb)["FUNCTION_TARGET.default"] == "main"


def test_target_defined_by_assignment_or_import_is_accepted(cnb):
    cnb.write("impl.py", "def real(request):\n    return 'r'\n")
    cnb.write("main.py", "from impl import real as imported\n\nif True:\n    assigned = imported\n")
    assert cnb.build({"FUNC_NAME": "assigned"}).returncode == 0
    assert cnb.build({"FUNC_NAME": "imported"}).returncode == 0


def test_no_dependencies_layer_without_requirements(cnb):
    cnb.write("main.py", HELLO)
    result = cnb.build()
    assert result.returncode == 0, result.output
    assert "Dependencies: none" in result.stdout
    assert not (cnb.layers / "dependencies.toml").exists()
    assert not (cnb.layers / "dependencies").exists()


def test_pyproject_dependencies_are_installed(cnb):
    cnb.write("main.py", HELLO)
    cnb.write("pyproject.toml", "[project]\nname = 'fn'\nversion = '1'\nrequires-python = '>=3.8'\n"
                                "dependencies = ['greeting>=2']\n")
    cnb.vendor("greeting-2.0-*.whl")
    result = cnb.build()
    assert result.returncode == 0, result.output
    assert cnb.layer_toml("dependencies")["metadata"]["source"] == "pyproject.toml"
    assert "hello" in (cnb.layers / "dependencies" / "site-packages" / "greeting.py").read_text()


def test_sboms_list_the_installed_packages(cnb):
    cnb.write("main.py", HELLO)
    cnb.write("requirements.txt", "greeting==1.0\n")
    cnb.vendor("greeting-1.0-*.whl")
    assert cnb.build().returncode == 0
    runtime = json.loads((cnb.layers / "runtime.sbom.cdx.json").read_text())
    assert runtime["bomFormat"] == "CycloneDX"
    purls = {c["purl"] for c in runtime["components"]}
    assert f"pkg:pypi/openfunction-functions-framework@{FRAMEWORK_VERSION}" in purls
    assert "pkg:pypi/ofn-fake-dep@1.0" in purls
    deps = json.loads((cnb.layers / "dependencies.sbom.cdx.json").read_text())
    assert [c["purl"] for c in deps["components"]] == ["pkg:pypi/greeting@1.0"]


def _marker(layer: Path) -> Path:
    marker = layer / "untouched-marker"
    marker.write_text("from the first build")
    return marker


def test_layers_are_reused_when_nothing_changed(cnb):
    cnb.write("main.py", HELLO)
    cnb.write("requirements.txt", "greeting==1.0\n")
    cnb.vendor("greeting-1.0-*.whl")
    assert cnb.build().returncode == 0
    deps_marker = _marker(cnb.layers / "dependencies")
    before = {name: cnb.layer_toml(name)["metadata"] for name in LAYERS}
    runtime_sbom = (cnb.layers / "runtime.sbom.cdx.json").read_text()

    cnb.restore()
    assert not (cnb.layers / "runtime").exists()  # launch-only: only its metadata comes back
    result = cnb.build()
    assert result.returncode == 0, result.output
    assert "Runtime: reusing openfunction-functions-framework 0.1.0" in result.stdout
    assert "Dependencies: reusing the cached layer (requirements.txt unchanged)" in result.stdout
    # the runtime is not reinstalled: the lifecycle takes it from the previous image
    assert not (cnb.layers / "runtime").exists()
    assert deps_marker.exists()
    assert {name: cnb.layer_toml(name)["metadata"] for name in LAYERS} == before
    # types are written again (the lifecycle restores them as false), SBOMs too, unchanged
    assert cnb.layer_toml("runtime")["types"]["launch"] is True
    assert cnb.layer_toml("dependencies")["types"]["cache"] is True
    assert (cnb.layers / "runtime.sbom.cdx.json").read_text() == runtime_sbom
    assert (cnb.layers / "dependencies.sbom.cdx.json").is_file()
    assert (cnb.layers / "launch.toml").is_file()


def test_dependencies_rebuilt_when_requirements_change(cnb):
    cnb.write("main.py", HELLO)
    cnb.write("requirements.txt", "greeting==1.0\n")
    cnb.vendor("greeting-*.whl")
    assert cnb.build().returncode == 0
    deps_marker = _marker(cnb.layers / "dependencies")
    key = cnb.layer_toml("dependencies")["metadata"]["cache_key"]

    cnb.restore()
    cnb.write("requirements.txt", "greeting==2.0\n")
    result = cnb.build()
    assert result.returncode == 0, result.output
    assert "Dependencies: installing requirements.txt offline from vendor/" in result.stdout
    assert "(changed: requirements.txt)" in result.stdout  # only the input that changed
    assert not deps_marker.exists()
    # the runtime does not depend on the user's packages, and they do not need its directory
    assert "Runtime: reusing" in result.stdout
    assert not (cnb.layers / "runtime").exists()
    assert cnb.layer_toml("dependencies")["metadata"]["cache_key"] != key
    assert "hello" in (cnb.layers / "dependencies" / "site-packages" / "greeting.py").read_text()
    assert not (cnb.layers / "dependencies" / "site-packages" / "ofn_fake_dep.py").exists()


def test_included_requirement_files_are_part_of_the_key(cnb):
    cnb.write("main.py", HELLO)
    cnb.write("requirements.txt", "-r requirements/base.txt\n")
    cnb.write("requirements/base.txt", "greeting==1.0\n")
    cnb.vendor("greeting-*.whl")
    assert cnb.build().returncode == 0
    cnb.restore()
    cnb.write("requirements/base.txt", "greeting==2.0\n")
    result = cnb.build()
    assert result.returncode == 0, result.output
    assert "Dependencies: installing" in result.stdout


def test_dependencies_layer_dropped_when_requirements_go_away(cnb):
    cnb.write("main.py", HELLO)
    cnb.write("requirements.txt", "greeting==1.0\n")
    cnb.vendor("greeting-1.0-*.whl")
    assert cnb.build().returncode == 0
    cnb.restore()
    (cnb.app / "requirements.txt").unlink()
    result = cnb.build()
    assert result.returncode == 0, result.output
    assert not (cnb.layers / "dependencies.toml").exists()
    assert not (cnb.layers / "dependencies").exists()


def test_runtime_reinstalled_when_the_wheelhouse_changes(cnb, tmp_path, wheelhouse):
    import shutil

    cnb.write("main.py", HELLO)
    assert cnb.build().returncode == 0
    changed = tmp_path / "wheelhouse-2"
    shutil.copytree(wheelhouse, changed)


    make_wheel(changed, "unrelated", "1.0", {"unrelated.py": ""})
    cnb.restore()
    result = cnb.build({"OFN_WHEELHOUSE": str(changed)})
    assert result.returncode == 0, result.output
    assert "Runtime: installing" in result.stdout
    assert "buildpack, Python or wheelhouse changed" in result.stdout
    assert (cnb.layers / "runtime" / "bin" / "functions-framework").is_file()


def test_func_clear_source_keeps_python_sources_and_drops_vendor(cnb):
    cnb.write("main.py", HELLO)
    cnb.write("requirements.txt", "greeting==1.0\n")
    cnb.vendor("greeting-1.0-*.whl")
    result = cnb.build({"FUNC_CLEAR_SOURCE": "true"})
    assert result.returncode == 0, result.output
    assert (cnb.app / "main.py").is_file()
    assert not (cnb.app / "vendor").exists()
    assert "FUNC_CLEAR_SOURCE keeps Python sources" in result.stdout
    assert (cnb.layers / "dependencies" / "site-packages" / "greeting.py").is_file()


def test_python_version_file_with_the_stack_minor_passes(cnb):
    import sys

    cnb.write("main.py", HELLO)
    cnb.write(".python-version", f"{sys.version_info[0]}.{sys.version_info[1]}\n")
    assert cnb.build().returncode == 0
    cnb.write(".python-version", f"{sys.version_info[0]}.{sys.version_info[1]}.{sys.version_info[2] + 1}\n")
    result = cnb.build()
    assert result.returncode == 0, result.output
    assert "Python patch version differs" in result.stdout


# --- local paths in requirements: part of the cache key -----------------------------------

MYLIB = {"mylib/__init__.py": "GREETING = 'v1'\n"}


def _mylib_greeting(cnb) -> str:
    return (cnb.layers / "dependencies" / "site-packages" / "mylib" / "__init__.py").read_text()


def test_local_package_is_installed_and_its_changes_rebuild_the_layer(cnb):
    cnb.write("main.py", HELLO)
    cnb.local_project("libs/mylib", "mylib", "1.0", MYLIB)
    cnb.write("requirements.txt", "./libs/mylib\n")
    result = cnb.build()
    assert result.returncode == 0, result.output
    assert "'v1'" in _mylib_greeting(cnb)

    # unchanged: reused, and the log says the library was looked at
    cnb.restore()
    result = cnb.build()
    assert result.returncode == 0, result.output
    assert "Dependencies: reusing the cached layer (requirements.txt and libs/mylib/ unchanged)" in result.stdout

    # what building or running it leaves next to its source does not count
    cnb.write("libs/mylib/mylib/__pycache__/__init__.cpython-311.pyc", "stale")
    cnb.write("libs/mylib/build/lib/mylib/__init__.py", "old copy")
    cnb.write("libs/mylib/mylib.egg-info/PKG-INFO", "Name: mylib\n")
    cnb.write("libs/mylib/.git/HEAD", "ref: refs/heads/main\n")
    cnb.restore()
    assert "Dependencies: reusing the cached layer" in cnb.build().stdout

    # the library's code changed, requirements.txt did not: installed again, with the new code
    cnb.write("libs/mylib/mylib/__init__.py", "GREETING = 'v2'\n")
    cnb.restore()
    result = cnb.build()
    assert result.returncode == 0, result.output
    assert "Dependencies: installing requirements.txt from the package index (changed: libs/mylib/)" in result.stdout
    assert "'v2'" in _mylib_greeting(cnb)


def test_local_wheel_and_find_links_directory_are_part_of_the_key(cnb):
    cnb.write("main.py", HELLO)
    make_wheel(cnb.app / "wheels", "greeting", "1.0", {"greeting.py": "WHO = 'one'\n"})
    make_wheel(cnb.app / "dist", "extra", "1.0", {"extra.py": "X = 1\n"})
    cnb.write("requirements.txt", "--no-index\n--find-links ./wheels\ngreeting\n"
                                  "dist/extra-1.0-py3-none-any.whl\n")
    assert cnb.build().returncode == 0

    make_wheel(cnb.app / "wheels", "greeting", "1.0", {"greeting.py": "WHO = 'two'\n"})  # same name, new content
    cnb.restore()
    result = cnb.build()
    assert result.returncode == 0, result.output
    assert "(changed: wheels/)" in result.stdout
    assert "two" in (cnb.layers / "dependencies" / "site-packages" / "greeting.py").read_text()

    make_wheel(cnb.app / "dist", "extra", "1.0", {"extra.py": "X = 2\n"})
    cnb.restore()
    result = cnb.build()
    assert "(changed: dist/extra-1.0-py3-none-any.whl)" in result.stdout
    assert "X = 2" in (cnb.layers / "dependencies" / "site-packages" / "extra.py").read_text()


def test_uv_settings_in_the_app_are_part_of_the_key(cnb):
    cnb.write("main.py", HELLO)
    cnb.write("requirements.txt", "greeting==1.0\n")
    cnb.vendor("greeting-1.0-*.whl")
    assert cnb.build().returncode == 0
    cnb.write("uv.toml", "# settings `uv pip install` reads from the app directory\n")
    cnb.restore()
    result = cnb.build()
    assert result.returncode == 0, result.output
    assert "(changed: uv.toml (new))" in result.stdout


def test_non_utf8_build_env_values_pass_through(cnb):
    cnb.write("main.py", HELLO)
    cnb.platform_env("GREETING", b"caf\xe9")
    result = cnb.build()
    assert result.returncode == 0, result.output


def test_runtime_txt_gets_a_warning_saying_what_is_read(cnb):
    cnb.write("main.py", HELLO)
    cnb.write("runtime.txt", "python-3.12.1\n")
    result = cnb.build()
    assert result.returncode == 0, result.output
    assert "[Warning: runtime.txt is not read]" in result.stdout
    assert "'python-3.12.1'" in result.stdout
    assert ".python-version" in result.stdout and "requires-python" in result.stdout


def test_a_setup_script_without_requirements_gets_a_warning(cnb):
    cnb.write("main.py", HELLO)
    cnb.write("setup.py", "from setuptools import setup\nsetup(install_requires=['humanize'])\n")
    result = cnb.build()
    assert result.returncode == 0, result.output
    assert "[Warning: setup.py not read]" in result.stdout
    assert "install_requires are" in result.stdout and "requirements.txt" in result.stdout
    cnb.write("requirements.txt", "")
    assert "not read]" not in cnb.build().stdout  # requirements.txt says what to install


def test_poetry_table_with_only_python_and_requirements_txt_build(cnb):
    cnb.write("main.py", HELLO)
    cnb.write("pyproject.toml", "[tool.poetry]\nname = 'fn'\n\n[tool.poetry.dependencies]\npython = '^3.11'\n")
    result = cnb.build()
    assert result.returncode == 0, result.output
    assert "Dependencies: none" in result.stdout

    # an exported requirements.txt takes precedence over the Poetry table
    cnb.write("pyproject.toml", "[tool.poetry.dependencies]\npython = '^3.11'\ngreeting = '^1.0'\n")
    cnb.write("requirements.txt", "greeting==1.0\n")
    cnb.vendor("greeting-1.0-*.whl")
    result = cnb.build()
    assert result.returncode == 0, result.output
    assert (cnb.layers / "dependencies" / "site-packages" / "greeting.py").is_file()


def test_target_guarded_by_name_not_main_counts(cnb):
    cnb.write("main.py", "if __name__ != '__main__':\n    def hello(request):\n        return 'hi'\n"
                         "else:\n    def debug(request):\n        return 'x'\n")
    result = cnb.build()
    assert result.returncode == 0, result.output
    assert launch_env(cnb)["FUNCTION_TARGET.default"] == "hello"
