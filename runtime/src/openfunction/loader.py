"""Load the user's function from its source file or package."""

from __future__ import annotations

import functools
import importlib.util
import inspect
import os
import sys
import traceback
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Callable

from openfunction.config import Runtime
from openfunction.errors import LoadError
from openfunction.signature import SignatureType, declared_signature

DEFAULT_SOURCE = "main.py"
_OUR_DIR = os.path.dirname(os.path.abspath(__file__))

# Top-level modules of the framework and of the packages it runs on (required and extras):
# a user's file imported under one of these names would replace them in sys.modules.
_FRAMEWORK_MODULES = frozenset({
    "openfunction", "starlette", "anyio", "sniffio", "idna", "typing_extensions",
    "uvicorn", "h11", "click", "uvloop", "httptools", "cloudevents", "deprecation",
    "dapr", "grpc", "google", "aiohttp", "skywalking", "opentelemetry", "prometheus_client",
})

# Names of the user's modules this process imported itself: loading main.py again (tests,
# several functions in one process) replaces the previous one and shadows nothing.
_user_modules: set[str] = set()


@dataclass(frozen=True)
class LoadedFunction:
    func: Callable[..., object]
    target: str
    source: Path
    signature: SignatureType
    signature_origin: str  # "decorator", "flag", "runtime" or "default"
    is_async: bool


def load_function(
    source: str | os.PathLike[str],
    target: str,
    signature: SignatureType | None = None,
    runtime: Runtime = Runtime.KNATIVE,
) -> LoadedFunction:
    """Import `source` and return its `target`, with the signature type it is served with."""
    module = load_module(source)
    path = Path(module.__file__ or source)
    if not target:
        target = _discover_target(module, path)
    if not hasattr(module, target):
        raise LoadError(
            f"function target {target!r} not found in {path}",
            f"functions in {path.name}: {_describe_callables(module)}.",
            "pass the name of one of them with --target / FUNCTION_TARGET",
        )
    func = getattr(module, target)
    if not callable(func):
        raise LoadError(
            f"function target {target!r} in {path} is not callable",
            f"it is {type(func).__name__} {func!r:.60}.",
            "point --target / FUNCTION_TARGET at a function defined with def or async def",
        )
    chosen, origin = _choose_signature(func, signature, runtime)
    if runtime is not Runtime.ASYNC or chosen is SignatureType.OPENFUNCTION:
        # (the CLI reports the Async runtime with another signature type by itself)
        _check_parameters(func, target, path, chosen, origin)
    return LoadedFunction(
        func=func,
        target=target,
        source=path,
        signature=chosen,
        signature_origin=origin,
        is_async=is_async_callable(func),
    )


def load_module(source: str | os.PathLike[str]) -> ModuleType:
    path = Path(source).expanduser()
    if path.is_dir():
        init = path / "__init__.py"
        main = path / DEFAULT_SOURCE
        if init.is_file():
            file, name, search = init, path.resolve().name, path.resolve().parent
        elif main.is_file():
            file, name, search = main, main.stem, path.resolve()
        else:
            raise LoadError(
                f"function source directory {path} has no __init__.py or {DEFAULT_SOURCE}",
                "a source directory must be a Python package or hold main.py.",
                "pass --source with the .py file that defines your function",
            )
    elif path.is_file():
        file = path.resolve()
        name, search = file.stem, file.parent
    else:
        raise LoadError(
            f"function source file not found: {path}",
            f"looked in {Path.cwd()}.",
            "pass --source PATH or set FUNCTION_SOURCE to the file that defines your function",
        )

    _check_module_name(name, file)
    if str(search) not in sys.path:
        sys.path.insert(0, str(search))
    spec = importlib.util.spec_from_file_location(
        name, file, submodule_search_locations=[str(file.parent)] if file.name == "__init__.py" else None
    )
    if spec is None or spec.loader is None:
        raise LoadError(f"cannot import {file}", "it is not a Python source file.",
                        "pass --source with a .py file")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    _user_modules.add(name)
    try:
        spec.loader.exec_module(module)
    except BaseException as exc:  # noqa: BLE001 - any failure in user code is reported
        sys.modules.pop(name, None)
        if isinstance(exc, KeyboardInterrupt):
            raise
        if isinstance(exc, SystemExit):
            raise _exit_at_import(file, exc) from None
        raise LoadError(
            f"importing {file} failed",
            user_traceback(exc),
            "fix the error above in your code (or add the missing package to requirements.txt)",
        ) from None
    return module


def _check_module_name(name: str, file: Path) -> None:
    """Refuse a source whose module name hides a module the framework or its libraries use:
    they would fail later, on an unrelated AttributeError or ImportError."""
    file = file.resolve()
    shadowed = _shadowed_module(name, file)
    if shadowed is None:
        return
    if file.name == "__init__.py":
        what = f"package directory {file.parent.name}"
        hint = (f"rename the directory {file.parent} (e.g. to my_function) and set "
                "--source / FUNCTION_SOURCE to it")
    else:
        what = f"main file {file.name}"
        hint = f"rename {file.name} (e.g. to main.py) and set --source / FUNCTION_SOURCE to the new name"
    raise LoadError(
        f"{what} shadows the Python module {name}",
        f"{file} is imported as module {name!r}, which would hide {shadowed}: the framework "
        "and the libraries it uses would then fail with unrelated errors.",
        hint,
    )


def _shadowed_module(name: str, file: Path) -> str | None:
    """What importing `file` as module `name` would hide, or None."""
    if name in sys.stdlib_module_names:
        return f"the standard-library module {name}"
    if name in _FRAMEWORK_MODULES:
        return f"the {name} package the functions framework runs on"
    existing = sys.modules.get(name)
    if existing is None or name in _user_modules:
        return None
    existing_file = getattr(existing, "__file__", None)
    if existing_file is None:
        return f"the module {name} (already imported)"
    if Path(existing_file).resolve() == file:
        return None
    return f"the module {name} already imported from {existing_file}"


def _exit_at_import(file: Path, exc: SystemExit) -> LoadError:
    call = "sys.exit()" if exc.code is None else f"sys.exit({exc.code!r})"
    return LoadError(
        f"importing {file} called {call}",
        f"the module exited while it was being imported:\n{user_traceback(exc)}",
        "a function module must not exit when imported: remove the sys.exit() call, or move it "
        "under `if __name__ == \"__main__\":` (the framework imports the module, it does not run it)",
    )


def user_traceback(exc: BaseException) -> str:
    """The traceback of `exc` without the framework's or importlib's frames."""
    tb = traceback.TracebackException.from_exception(exc)
    keep = [
        frame
        for frame in tb.stack
        if not frame.filename.startswith(_OUR_DIR) and "importlib._bootstrap" not in frame.filename
        and not frame.filename.startswith("<frozen")
    ]
    tb.stack = traceback.StackSummary.from_list(keep)
    return "".join(tb.format()).rstrip()


def is_async_callable(func: object) -> bool:
    while isinstance(func, functools.partial):
        func = func.func
    return inspect.iscoroutinefunction(func) or inspect.iscoroutinefunction(
        getattr(func, "__call__", None)
    )


def _choose_signature(
    func: Callable[..., object], requested: SignatureType | None, runtime: Runtime
) -> tuple[SignatureType, str]:
    declared = declared_signature(func)
    if declared is not None:
        return declared, "decorator"
    if requested is not None:
        return requested, "flag"
    if runtime is Runtime.ASYNC:
        return SignatureType.OPENFUNCTION, "runtime"
    if _required_positional(func) >= 2:
        # `def main(ctx, data)` is OpenFunction's signature
        return SignatureType.OPENFUNCTION, "parameters"
    return SignatureType.HTTP, "default"


def _required_positional(func: Callable[..., object]) -> int:
    call = _call_signature(func)
    if call is None:
        return 1
    params = call.parameters.values()
    return sum(
        1
        for p in params
        if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) and p.default is p.empty
    )


def _call_signature(func: Callable[..., object]) -> inspect.Signature | None:
    """The parameters `func` is called with, or None for a callable inspect cannot describe.

    A decorator made with functools.wraps counts with its own parameters, unless it only
    passes `*args, **kwargs` through: then the wrapped function's count."""
    try:
        own = inspect.signature(func, follow_wrapped=False)
    except (TypeError, ValueError):
        return None
    kinds = {p.kind for p in own.parameters.values()}
    if not kinds or not kinds <= {inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD}:
        return own
    try:
        return inspect.signature(func)
    except (TypeError, ValueError):
        return own


def _check_parameters(
    func: Callable[..., object], target: str, path: Path, signature: SignatureType, origin: str
) -> None:
    """Fail at start-up, not on every call, when `func` cannot take the arguments its
    signature type passes: func(request), func(event) or func(ctx, data)."""
    call = _call_signature(func)
    if call is None:
        return
    arguments = signature.arguments
    try:
        call.bind(*(None for _ in arguments))
    except TypeError as exc:
        problem = str(exc)
    else:
        return
    plain = call.replace(
        parameters=[p.replace(annotation=p.empty) for p in call.parameters.values()],
        return_annotation=call.empty,
    )
    args = ", ".join(arguments)
    define = f"{'async def' if is_async_callable(func) else 'def'} {target}"
    raise LoadError(
        f"function {target!r} in {path} is defined as {target}{plain}, but the {signature} "
        f"signature calls it as {target}({args})",
        f"{_signature_reason(signature, origin)}; every call would fail with TypeError: {problem}.",
        _parameters_hint(signature, origin, define),
    )


def _signature_reason(signature: SignatureType, origin: str) -> str:
    if origin == "decorator":
        return f"{signature.decorator} declares the {signature} signature"
    if origin == "flag":
        return f"--signature-type / FUNCTION_SIGNATURE_TYPE sets the {signature} signature"
    if origin == "runtime":
        return ("the Async runtime serves the openfunction signature: Dapr events are "
                "delivered as func(ctx, data)")
    if origin == "parameters":
        return "the openfunction signature is inferred from its two or more required parameters"
    return ("the http signature is the default for a function without a decorator or "
            "(ctx, data) parameters")


def _parameters_hint(signature: SignatureType, origin: str, define: str) -> str:
    others = "; give any other parameter a default value"
    args = ", ".join(signature.arguments)
    if origin == "decorator":
        return (f"define it as {define}({args}), or use the decorator its parameters match: "
                "@openfunction.http (request), @openfunction.cloud_event (event), "
                "@openfunction.function (ctx, data)" + others)
    if origin == "flag":
        return (f"define it as {define}({args}), or set --signature-type / FUNCTION_SIGNATURE_TYPE "
                "to the type its parameters match: http (request), cloudevent (event), "
                "openfunction (ctx, data)" + others)
    if origin == "runtime":
        return f"define it as {define}(ctx, data)" + others
    return (f"define it as {define}(request) for HTTP requests or {define}(ctx, data) for the "
            f"openfunction signature (CloudEvents: {define}(event) with @openfunction.cloud_event)"
            + others)


def _discover_target(module: ModuleType, path: Path) -> str:
    """With no target given: the one decorated function, or the one public function."""
    functions = _public_functions(module)
    decorated = [n for n in functions if declared_signature(getattr(module, n)) is not None]
    for candidates in (decorated, functions):
        if len(candidates) == 1:
            return candidates[0]
    raise LoadError(
        "no function target given",
        f"{path.name} defines {len(functions)} functions: {', '.join(functions) or '(none)'}.",
        "pass --target NAME or set FUNCTION_TARGET (OpenFunction builds set FUNC_NAME)",
    )


def _describe_callables(module: ModuleType) -> str:
    return ", ".join(_public_functions(module)) or "(none)"


def _public_functions(module: ModuleType) -> list[str]:
    return sorted(
        name
        for name, value in vars(module).items()
        if not name.startswith("_")
        and (inspect.isfunction(value) or inspect.iscoroutinefunction(value))
        and getattr(value, "__module__", None) == module.__name__
    )
