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
