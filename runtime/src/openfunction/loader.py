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
    try:
        spec.loader.exec_module(module)
    except BaseException as exc:  # noqa: BLE001 - any failure in user code is reported
        sys.modules.pop(name, None)
        if isinstance(exc, (KeyboardInterrupt, SystemExit)):
            raise
        raise LoadError(
            f"importing {file} failed",
            user_traceback(exc),
            "fix the error above in your code (or add the missing package to requirements.txt)",
        ) from None
    return module


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
    try:
        params = inspect.signature(func).parameters.values()
    except (TypeError, ValueError):
        return 1
    return sum(
        1
        for p in params
        if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) and p.default is p.empty
    )


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
