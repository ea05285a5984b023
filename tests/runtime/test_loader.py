import textwrap

import pytest

from openfunction.config import Runtime
from openfunction.errors import LoadError
from openfunction.loader import load_function
from openfunction.signature import SignatureType


def write(tmp_path, text, name="main.py"):
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def test_loads_target_and_defaults_to_http(tmp_path):
    src = write(tmp_path, "def hello(request):\n    return 'hi'\n")
    loaded = load_function(src, "hello")
    assert loaded.func(None) == "hi"
    assert loaded.signature is SignatureType.HTTP and loaded.signature_origin == "default"
    assert not loaded.is_async


def test_decorator_wins_over_flag(tmp_path):
    src = write(tmp_path, """
        import openfunction
        @openfunction.cloud_event
        def on_event(event):
            return None
    """)
    loaded = load_function(src, "on_event", SignatureType.HTTP)
    assert loaded.signature is SignatureType.CLOUDEVENT and loaded.signature_origin == "decorator"


def test_flag_sets_signature(tmp_path):
    src = write(tmp_path, "async def f(event):\n    return None\n")
    loaded = load_function(src, "f", SignatureType.CLOUDEVENT)
    assert loaded.signature is SignatureType.CLOUDEVENT and loaded.is_async


def test_two_parameters_mean_openfunction_signature(tmp_path):
    src = write(tmp_path, "def main(ctx, data):\n    return data\n")
    assert load_function(src, "main").signature is SignatureType.OPENFUNCTION


def test_async_runtime_means_openfunction_signature(tmp_path):
    src = write(tmp_path, "def main(ctx, data=None):\n    return data\n")
    loaded = load_function(src, "main", None, Runtime.ASYNC)
    assert loaded.signature is SignatureType.OPENFUNCTION


def test_package_directory_source(tmp_path):
    pkg = tmp_path / "fnpkg"
    pkg.mkdir()
    (pkg / "helper.py").write_text("VALUE = 'from helper'\n")
    (pkg / "__init__.py").write_text("from .helper import VALUE\ndef run(request):\n    return VALUE\n")
    assert load_function(pkg, "run").func(None) == "from helper"


def test_directory_with_main_py(tmp_path):
    write(tmp_path, "import sibling\ndef run(request):\n    return sibling.X\n")
    write(tmp_path, "X = 42\n", name="sibling.py")
    assert load_function(tmp_path, "run").func(None) == 42


def test_single_function_is_found_without_target(tmp_path):
    src = write(tmp_path, "import json\ndef only(request):\n    return 'x'\n")
    assert load_function(src, "").target == "only"


def test_missing_source(tmp_path):
    with pytest.raises(LoadError) as info:
        load_function(tmp_path / "nope.py", "f")
    assert "function source file not found" in str(info.value)
    assert "FUNCTION_SOURCE" in str(info.value)


def test_target_not_found_lists_callables(tmp_path):
    src = write(tmp_path, "def alpha(r):\n    pass\ndef beta(r):\n    pass\n_private = 1\n")
    with pytest.raises(LoadError) as info:
        load_function(src, "gamma")
    assert "'gamma' not found" in str(info.value)
    assert "alpha, beta" in str(info.value)


def test_no_target_and_several_functions(tmp_path):
    src = write(tmp_path, "def alpha(r):\n    pass\ndef beta(r):\n    pass\n")
    with pytest.raises(LoadError, match="no function target given"):
        load_function(src, "")


def test_target_not_callable(tmp_path):
    src = write(tmp_path, "hello = 'a string'\n")
    with pytest.raises(LoadError, match="is not callable"):
        load_function(src, "hello")


def test_import_error_shows_user_traceback_only(tmp_path):
    src = write(tmp_path, "import json\n\ndef helper():\n    return 1 / 0\n\nhelper()\n")
    with pytest.raises(LoadError) as info:
        load_function(src, "helper")
    text = str(info.value)
    assert "ZeroDivisionError" in text
    assert str(src) in text and "line 4" in text
    assert "openfunction/loader.py" not in text and "importlib" not in text


def test_missing_package_hint(tmp_path):
    src = write(tmp_path, "import not_a_real_package_xyz\ndef f(r):\n    pass\n")
    with pytest.raises(LoadError) as info:
        load_function(src, "f")
    assert "ModuleNotFoundError" in str(info.value)
    assert "requirements.txt" in str(info.value)


# -- the function's parameters are checked against its signature type at start-up --------


def test_function_without_parameters_is_refused_at_load(tmp_path):
    src = write(tmp_path, "def noargs():\n    return 'hi'\n")
    with pytest.raises(LoadError) as info:
        load_function(src, "noargs")
    error = info.value
    assert error.title == (f"function 'noargs' in {src} is defined as noargs(), "
                           "but the http signature calls it as noargs(request)")
    assert "default" in error.detail and "too many positional arguments" in error.detail
    assert "def noargs(request)" in error.hint and "def noargs(ctx, data)" in error.hint


def test_one_parameter_under_async_runtime_is_refused(tmp_path):
    src = write(tmp_path, "async def one_arg(event):\n    return None\n")
    with pytest.raises(LoadError) as info:
        load_function(src, "one_arg", None, Runtime.ASYNC)
    error = info.value
    assert "one_arg(event)" in error.title and "one_arg(ctx, data)" in error.title
    assert "Async runtime" in error.detail
    assert error.hint.startswith("define it as async def one_arg(ctx, data)")


def test_decorated_function_is_checked(tmp_path):
    src = write(tmp_path, """
        import openfunction
        @openfunction.http
        def hello(ctx, data):
            return 'hi'
    """)
    with pytest.raises(LoadError) as info:
        load_function(src, "hello")
    assert "@openfunction.http declares the http signature" in info.value.detail
    assert "missing a required argument: 'data'" in info.value.detail
    assert "@openfunction.function (ctx, data)" in info.value.hint


def test_flag_signature_is_checked(tmp_path):
    src = write(tmp_path, "def hello(request):\n    return 'hi'\n")
    with pytest.raises(LoadError) as info:
        load_function(src, "hello", SignatureType.OPENFUNCTION)
    assert "--signature-type / FUNCTION_SIGNATURE_TYPE" in info.value.detail
    assert "--signature-type" in info.value.hint


def test_required_keyword_only_parameter_is_refused(tmp_path):
    src = write(tmp_path, "def hello(request, *, db):\n    return 'hi'\n")
    with pytest.raises(LoadError, match=r"hello\(request, \*, db\)") as info:
        load_function(src, "hello")
    assert "'db'" in info.value.detail and "default value" in info.value.hint


def test_three_required_parameters_are_refused(tmp_path):
    src = write(tmp_path, "def hello(a, b, c):\n    return 'hi'\n")
    with pytest.raises(LoadError, match="openfunction signature calls it as hello\\(ctx, data\\)"):
        load_function(src, "hello")


@pytest.mark.parametrize("params, signature", [
    ("request, extra=None", SignatureType.HTTP),
    ("request, *, db=None", SignatureType.HTTP),
    ("*args", SignatureType.HTTP),
    ("*args, **kwargs", SignatureType.HTTP),
    ("request=None", SignatureType.HTTP),
    ("ctx, data", SignatureType.OPENFUNCTION),
    ("ctx, data, extra=1", SignatureType.OPENFUNCTION),
])
def test_parameters_that_fit_are_accepted(tmp_path, params, signature):
    src = write(tmp_path, f"def f({params}):\n    return 'ok'\n")
    assert load_function(src, "f").signature is signature


def test_every_signature_type_accepts_its_own_shape(tmp_path):
    src = write(tmp_path, """
        import openfunction
        @openfunction.http
        def on_request(request): ...
        @openfunction.cloud_event
        def on_event(event): ...
        @openfunction.function
        def handler(ctx, data): ...
    """)
    assert load_function(src, "on_request").signature is SignatureType.HTTP
    assert load_function(src, "on_event").signature is SignatureType.CLOUDEVENT
    assert load_function(src, "handler").signature is SignatureType.OPENFUNCTION
    assert load_function(src, "handler", None, Runtime.ASYNC).signature is SignatureType.OPENFUNCTION


def test_wrapper_passing_args_through_is_checked_by_the_wrapped_function(tmp_path):
    src = write(tmp_path, """
        import functools
        def logged(func):
            @functools.wraps(func)
            def wrapper(*args, **kwargs):
                return func(*args, **kwargs)
            return wrapper
        @logged
        def noargs():
            return 'hi'
    """)
    with pytest.raises(LoadError, match=r"noargs\(\), but the http signature"):
        load_function(src, "noargs")


def test_wrapper_with_its_own_parameters_counts_with_them(tmp_path):
    src = write(tmp_path, """
        import functools
        def with_db(func):
            @functools.wraps(func)
            def wrapper(request):
                return func(request, 'db')
            return wrapper
        @with_db
        def hello(request, db):
            return db
    """)
    loaded = load_function(src, "hello")
    assert loaded.signature is SignatureType.HTTP and loaded.func(None) == "db"


def test_callable_without_a_signature_is_not_checked(tmp_path):
    src = write(tmp_path, """
        class Exotic:
            __signature__ = 'not a signature'
            def __call__(self, request):
                return 'ok'
        hello = Exotic()
    """)
    loaded = load_function(src, "hello")
    assert loaded.signature is SignatureType.HTTP and loaded.func(None) == "ok"


def test_async_runtime_with_http_decorator_is_left_to_the_cli(tmp_path):
    from openfunction.cli import load, parse_options
    from openfunction.errors import ConfigError

    src = write(tmp_path, "import openfunction\n@openfunction.http\ndef hello(request):\n    return 'hi'\n")
    assert load_function(src, "hello", None, Runtime.ASYNC).signature is SignatureType.HTTP
    environ = {"CONTEXT_MODE": "self-host", "FUNC_CONTEXT": (
        '{"name": "f", "version": "v1", "runtime": "Async", '
        '"inputs": {"in": {"componentName": "kafka", "componentType": "bindings.kafka"}}}')}
    with pytest.raises(ConfigError, match="the Async runtime needs the openfunction signature"):
        load(parse_options(["--source", str(src)], environ), environ)


# -- a source named like a module the framework or its libraries import --------------------


@pytest.mark.parametrize("name, hides", [
    ("uuid", "standard-library module uuid"),
    ("http", "standard-library module http"),
    ("types", "standard-library module types"),
    ("openfunction", "openfunction package the functions framework runs on"),
    ("starlette", "starlette package the functions framework runs on"),
    ("anyio", "anyio package the functions framework runs on"),
])
def test_source_shadowing_a_module_is_refused(tmp_path, name, hides):
    import sys

    src = write(tmp_path, "def f(request):\n    return 'x'\n", name=f"{name}.py")
    before_path, before_module = list(sys.path), sys.modules.get(name)
    with pytest.raises(LoadError) as info:
        load_function(src, "f")
    error = info.value
    assert error.title == f"main file {name}.py shadows the Python module {name}"
    assert hides in error.detail
    assert error.hint == f"rename {name}.py (e.g. to main.py) and set --source / FUNCTION_SOURCE to the new name"
    assert sys.path == before_path and sys.modules.get(name) is before_module


def test_source_shadowing_an_imported_module_is_refused(tmp_path):
    src = write(tmp_path, "def f(request):\n    return 'x'\n", name="pytest.py")
    with pytest.raises(LoadError, match="main file pytest.py shadows the Python module pytest") as info:
        load_function(src, "f")
    assert "already imported from" in info.value.detail


def test_package_directory_shadowing_a_module_is_refused(tmp_path):
    pkg = tmp_path / "json"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("def run(request):\n    return 'x'\n")
    with pytest.raises(LoadError, match="package directory json shadows the Python module json") as info:
        load_function(pkg, "run")
    assert "rename the directory" in info.value.hint


def test_main_py_loads_again_in_the_same_process(tmp_path):
    first = write(tmp_path, "def f(request):\n    return 1\n")
    other = tmp_path / "other"
    other.mkdir()
    second = write(other, "def f(request):\n    return 2\n")
    assert load_function(first, "f").func(None) == 1
    assert load_function(second, "f").func(None) == 2


# -- sys.exit() while the module is imported ------------------------------------------------


def test_sys_exit_at_import_is_a_load_error(tmp_path):
    import sys

    src = write(tmp_path, "import sys\n\ndef f(request):\n    return 'x'\n\nsys.exit(3)\n")
    with pytest.raises(LoadError) as info:
        load_function(src, "f")
    error = info.value
    assert error.title == f"importing {src} called sys.exit(3)"
    assert "line 6" in error.detail and "SystemExit: 3" in error.detail
    assert "must not exit when imported" in error.hint
    assert getattr(sys.modules.get("main"), "__file__", None) != str(src)


def test_sys_exit_without_code_at_import(tmp_path):
    src = write(tmp_path, "raise SystemExit\n")
    with pytest.raises(LoadError) as info:
        load_function(src, "f")
    assert info.value.title == f"importing {src} called sys.exit()"


def test_cli_prints_sys_exit_at_import_without_traceback(tmp_path, monkeypatch, capsys):
    from openfunction.cli import main

    for name in ("FUNC_CONTEXT", "FUNCTION_TARGET", "FUNCTION_SIGNATURE_TYPE", "PORT", "DEBUG"):
        monkeypatch.delenv(name, raising=False)
    src = write(tmp_path, "import sys\nsys.exit(3)\ndef f(request):\n    return 'x'\n")
    assert main(["--source", str(src), "--target", "f", "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: importing {src} called sys.exit(3)\n")
    assert "fix: a function module must not exit when imported" in err
    assert "openfunction/loader.py" not in err
