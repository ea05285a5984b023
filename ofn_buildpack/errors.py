"""Every error message the buildpack shows, in one place.

Each module raises its own error type with the facts (what, which file, uv's output);
this module turns them into a titled message saying what went wrong and what to do.
"""

from __future__ import annotations

import traceback
from dataclasses import dataclass

from ofn_buildpack.app_files import AppFilesError, AppFilesErrorKind
from ofn_buildpack.function_source import TARGET_VARS, FunctionSourceError, FunctionSourceErrorKind
from ofn_buildpack.installer import InstallerError, InstallerErrorKind
from ofn_buildpack.layers.dependencies import DependenciesLayerError, DependenciesLayerErrorKind
from ofn_buildpack.layers.function import FunctionLayerError, FunctionLayerErrorKind
from ofn_buildpack.layers.runtime import RuntimeLayerError, RuntimeLayerErrorKind
from ofn_buildpack.python_version import Notice, PythonVersionError, PythonVersionErrorKind

ISSUES_URL = "https://github.com/OpenFunction/OpenFunction/issues"

KNOWN_ERRORS: tuple[type[Exception], ...] = (
    AppFilesError,
    FunctionSourceError,
    PythonVersionError,
    InstallerError,
    RuntimeLayerError,
    DependenciesLayerError,
    FunctionLayerError,
)


@dataclass(frozen=True)
class Message:
    title: str
    body: str


def describe(error: BaseException) -> Message:
    if isinstance(error, FunctionSourceError):
        return _function_source(error)
    if isinstance(error, PythonVersionError):
        return _python_version(error)
    if isinstance(error, AppFilesError):
        return _app_files(error)
    if isinstance(error, InstallerError):
        return _installer(error)
    if isinstance(error, RuntimeLayerError):
        return _runtime(error)
    if isinstance(error, DependenciesLayerError):
        return _dependencies(error)
    if isinstance(error, FunctionLayerError):
        return _function_layer(error)
    return internal(error)


def internal(error: BaseException) -> Message:
    where = traceback.extract_tb(error.__traceback__)[-1:] if error.__traceback__ else []
    location = f" (at {where[0].filename}:{where[0].lineno})" if where else ""
    return Message(
        "Internal buildpack error",
        f"The buildpack failed unexpectedly: {type(error).__name__}: {error}{location}.\n\n"
        f"This is a bug in the buildpack, not in your function. Please report it at\n"
        f"{ISSUES_URL} with the build output above.",
    )


def _set_target_hint() -> str:
    return (
        "Set FUNC_NAME (OpenFunction's spec.build.env) or FUNCTION_TARGET to the name of\n"
        "the function to serve, e.g. `pack build ... --env FUNC_NAME=hello`."
    )


def _function_source(e: FunctionSourceError) -> Message:
    kind = e.kind
    if kind is FunctionSourceErrorKind.SOURCE_NOT_FOUND:
        origin = f" (from {e.variable})" if e.variable else " (the default)"
        return Message(
            "Function source not found",
            f"The function source {e.source!r}{origin} does not exist in the app directory:\n"
            f"there is no such .py file, nor a directory with __init__.py or main.py.\n\n"
            f"Put your function in main.py, or set FUNC_SRC (or FUNCTION_SOURCE) to the\n"
            f"file that defines it, relative to the app directory, e.g. FUNC_SRC=handler.py.",
        )
    if kind is FunctionSourceErrorKind.UNREADABLE_SOURCE:
        return Message(
            "Cannot read the function source",
            f"Reading {e.source} failed: {e.detail}.\n\nCheck the file's permissions and encoding (UTF-8).",
        )
    if kind is FunctionSourceErrorKind.SYNTAX_ERROR:
        line = f" at line {e.line}" if e.line else ""
        return Message(
            "Syntax error in the function source",
            f"{e.source} is not valid Python{line}: {e.detail}.\n\n"
            f"Fix the syntax error (run `python3 -m py_compile {e.source}` to check) and build again.",
        )
    if kind is FunctionSourceErrorKind.TARGET_NOT_FOUND:
        names = ", ".join(e.candidates) or "(none)"
        return Message(
            "Function target not found",
            f"The function target {e.target!r} (from {e.variable}) is not defined at the top level\n"
            f"of {e.source}. Functions defined there: {names}.\n\n"
            f"Set {e.variable} to one of them, or define `def {e.target}(...)` in {e.source}.",
        )
    if kind is FunctionSourceErrorKind.NO_TARGET:
        names = ", ".join(e.candidates) or "none"
        return Message(
            "No function target",
            f"No function target was given ({' or '.join(TARGET_VARS)} is unset) and it cannot be\n"
            f"told from {e.source}: it defines {len(e.candidates)} public functions ({names}) and\n"
            f"none or several are marked with an @openfunction decorator.\n\n" + _set_target_hint(),
        )
    if kind is FunctionSourceErrorKind.INVALID_SIGNATURE_TYPE:
        return Message(
            "Unknown function signature type",
            f"{e.variable}={e.detail!r} is not a signature type the framework knows.\n\n"
            f"Set {e.variable} to http, cloudevent or openfunction, or leave it unset and\n"
            f"let the framework tell from the function (e.g. `def main(ctx, data)` is openfunction).",
        )
    raise AssertionError(kind)


def _python_version(e: PythonVersionError) -> Message:
    kind = e.kind
    if kind is PythonVersionErrorKind.UNSUPPORTED_VERSION_FILE:
        return Message(
            "Unsupported Python version",
            f"{e.file} asks for Python {e.requested}, but this builder's stack has Python\n"
            f"{e.available} only (Debian bookworm).\n\n"
            f"Make your function work with Python {e.available.rsplit('.', 1)[0]} and change {e.file}\n"
            f"to {e.available.rsplit('.', 1)[0]} (or delete it), or use a builder with that Python.",
        )
    if kind is PythonVersionErrorKind.INVALID_VERSION_FILE:
        return Message(
            "Invalid .python-version",
            f"{e.file} contains {e.requested!r}, which is not a Python version.\n\n"
            f"Write a version such as {e.available.rsplit('.', 1)[0]} on the first line, or delete the file.",
        )
    if kind is PythonVersionErrorKind.UNSUPPORTED_REQUIRES_PYTHON:
        return Message(
            "Unsupported Python version",
            f"{e.file} declares requires-python = {e.requested!r}, but this builder's stack has\n"
            f"Python {e.available} only (Debian bookworm).\n\n"
            f"Widen requires-python to include {e.available} if your function works with it,\n"
            f"or use a builder with a Python that matches.",
        )
    if kind is PythonVersionErrorKind.INVALID_REQUIRES_PYTHON:
        return Message(
            "Invalid requires-python",
            f"requires-python = {e.requested!r} in {e.file} is not a version specifier the\n"
            f"buildpack understands.\n\nUse a PEP 440 specifier such as \">=3.10\" or \"~=3.11\".",
        )
    raise AssertionError(kind)


def python_version_notice(notice: Notice) -> Message:
    return Message(
        "Python patch version differs",
        f"{notice.file} asks for Python {notice.requested}; the stack has {notice.available}.\n"
        f"The minor version matches, so the build goes on with {notice.available}.",
    )


def _app_files(e: AppFilesError) -> Message:
    if e.kind is AppFilesErrorKind.INVALID_PYPROJECT:
        return Message(
            "Invalid pyproject.toml",
            f"{e.file} is not valid TOML: {e.detail}.\n\nFix the file (or remove it) and build again.",
        )
    if e.kind is AppFilesErrorKind.UNREADABLE_FILE:
        return Message(
            "Cannot read a file of the app",
            f"Reading {e.file} failed: {e.detail}.\n\nCheck that it is a UTF-8 text file you can read.",
        )
    raise AssertionError(e.kind)


def _installer(e: InstallerError) -> Message:
    if e.kind is InstallerErrorKind.UV_NOT_FOUND:
        return Message(
            "Package installer missing",
            f"The buildpack ships the uv installer, but it was not found (looked in: "
            f"{', '.join(e.looked_in)}).\n\n"
            f"The buildpack was packaged incompletely: rebuild the builder with `make builder`.",
        )
    raise AssertionError(e.kind)


def _runtime(e: RuntimeLayerError) -> Message:
    if e.kind is RuntimeLayerErrorKind.WHEELHOUSE_MISSING:
        return Message(
            "Functions framework wheels missing",
            f"The buildpack installs the functions framework offline from its wheelhouse,\n"
            f"but {e.wheelhouse} has no wheels.\n\n"
            f"The buildpack was packaged incompletely: rebuild it with `make wheels builder`\n"
            f"(or point OFN_WHEELHOUSE at a directory of wheels).",
        )
    if e.kind is RuntimeLayerErrorKind.FRAMEWORK_WHEEL_MISSING:
        return Message(
            "Functions framework wheel missing",
            f"{e.wheelhouse} has no openfunction-functions-framework wheel.\n\n"
            f"Rebuild the wheelhouse with `make wheels builder`.",
        )
    if e.kind is RuntimeLayerErrorKind.VENV_FAILED:
        return Message(
            "Cannot create the runtime environment",
            f"Creating the Python virtual environment for the runtime failed:\n{_indent(e.detail)}\n\n"
            f"Check that the build image has a working python3 (Debian's python3 package).",
        )
    if e.kind is RuntimeLayerErrorKind.INSTALL_FAILED:
        return Message(
            "Cannot install the functions framework",
            f"Installing openfunction-functions-framework[all] from {e.wheelhouse} failed:\n"
            f"{_indent(e.detail)}\n\n"
            f"The wheelhouse does not match this stack's Python; rebuild it with `make wheels builder`.",
        )
    raise AssertionError(e.kind)


def _dependencies(e: DependenciesLayerError) -> Message:
    if e.kind is DependenciesLayerErrorKind.RESOLUTION_FAILED:
        if e.offline:
            where = (
                "The app has a vendor/ directory, so packages are installed from its wheels only\n"
                "(and the framework's own wheels), with no package index."
            )
            todo = (
                "Add the missing wheels to vendor/ (e.g. `pip download -r requirements.txt -d vendor\n"
                "--only-binary :all: --python-version 3.11 --platform manylinux2014_x86_64`), fix the\n"
                "versions in requirements.txt, or delete vendor/ to install from the package index."
            )
        elif e.unreachable_index:
            where = "The package index could not be reached from the build."
            todo = (
                "Give the build network access to the index (pack build --network host), point\n"
                "UV_DEFAULT_INDEX at a reachable mirror, or vendor the wheels in vendor/ to build\n"
                "offline. Behind a TLS-intercepting proxy, make its CA trusted in the build (see\n"
                "docs/buildpack.md)."
            )
        else:
            where = "Packages are installed from the package index (PyPI unless UV_DEFAULT_INDEX says otherwise)."
            todo = (
                "Check the package names and versions in your requirements: a typo, a version that\n"
                "does not exist, or a pin that conflicts with the framework's own packages (the\n"
                "runtime layer fixes their versions). Try them locally with `pip install -r requirements.txt`."
            )
        return Message(
            f"Cannot install the packages in {e.file}",
            f"Resolving or installing the packages listed in {e.file} failed:\n{_indent(e.detail)}\n\n"
            f"{where}\n\n{todo}",
        )
    if e.kind is DependenciesLayerErrorKind.DYNAMIC_DEPENDENCIES:
        return Message(
            "Dynamic dependencies in pyproject.toml",
            "pyproject.toml declares its dependencies as dynamic, so the buildpack cannot read\n"
            "them without building the project.\n\n"
            "List them in [project] dependencies, or in a requirements.txt (which takes precedence).",
        )
    if e.kind is DependenciesLayerErrorKind.INVALID_DEPENDENCIES:
        return Message(
            "Invalid dependencies in pyproject.toml",
            f"[project] dependencies must be a list of requirement strings; it is {e.detail}.\n\n"
            "Write it as dependencies = [\"requests>=2\", ...].",
        )
    if e.kind is DependenciesLayerErrorKind.MISSING_INCLUDED_FILE:
        return Message(
            "Included requirements file not found",
            f"{e.file} includes {e.detail!r} (with -r or -c), which does not exist.\n\n"
            f"Add {e.detail} to the app directory or remove the line.",
        )
    raise AssertionError(e.kind)


def _function_layer(e: FunctionLayerError) -> Message:
    if e.kind is FunctionLayerErrorKind.WRITE_FAILED:
        return Message(
            "Cannot write the function's launch settings",
            f"Writing the launch environment failed: {e.detail}.\n\n"
            f"Check that the layers directory is writable by the build user (CNB_USER_ID).",
        )
    raise AssertionError(e.kind)


def _indent(text: str) -> str:
    lines = text.rstrip().splitlines() or ["(no output)"]
    return "\n".join(f"    {line}" for line in lines)


# Notes that do not fail the build.

def source_kept_note() -> Message:
    return Message(
        "FUNC_CLEAR_SOURCE keeps Python sources",
        "FUNC_CLEAR_SOURCE=true: Python functions run from their source files, so they stay\n"
        "in the image. Build inputs that are not needed at run time (vendor/) were removed.",
    )

