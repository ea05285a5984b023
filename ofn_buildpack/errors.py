"""Every error message the buildpack shows, in one place.

Each module raises its own error type with the facts (what, which file, uv's output);
this module turns them into a titled message saying what went wrong and what to do.
"""

from __future__ import annotations

import traceback
from collections.abc import Sequence
from dataclasses import dataclass

from ofn_buildpack.app_files import PYPROJECT, REQUIREMENTS, AppFilesError, AppFilesErrorKind
from ofn_buildpack.function_source import (
    DEFAULT_SOURCE,
    SOURCE_VAR_FOR,
    TARGET_VARS,
    FunctionSourceError,
    FunctionSourceErrorKind,
)
from ofn_buildpack.installer import InstallerError, InstallerErrorKind
from ofn_buildpack.layers.dependencies import (
    DependenciesLayerError,
    DependenciesLayerErrorKind,
    FrameworkConflict,
)
from ofn_buildpack.layers.function import FunctionLayerError, FunctionLayerErrorKind
from ofn_buildpack.layers.runtime import RuntimeLayerError, RuntimeLayerErrorKind
from ofn_buildpack.python_version import Notice, NoticeKind, PythonVersionError, PythonVersionErrorKind

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


def _shown(value: str, limit: int = 80) -> str:
    """A user's value as it can be printed: undecodable bytes escaped, long values cut."""
    text = value.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    if len(text) > limit:
        text = f"{text[:limit - 20]}... ({len(text)} characters)"
    return text


def _quoted(value: str) -> str:
    return f"'{_shown(value)}'"


# Detection: one line on stdout, exit 100 (the lifecycle shows it with --verbose).

def no_function_detected(source: str, variable: str, *, outside: bool, suggestion: str) -> str:
    """Why bin/detect did not find a Python function."""
    others = f"{REQUIREMENTS} or {PYPROJECT}"
    if not variable:
        return (f"No Python function: the app directory has no {source}, {others} "
                f"(set FUNC_SRC to the file that defines the function)")
    setting = f"{variable}={_shown(source)}"
    if outside:
        return (f"No Python function: {setting} is outside the app directory, and the app has no {others} "
                f"(set {variable} to a path relative to the app directory, e.g. {DEFAULT_SOURCE})")
    hint = (f"did you mean {variable}={suggestion}?" if suggestion
            else f"set {variable} to the file that defines the function, relative to the app directory")
    return (f"No Python function: the file {setting} names was not found (no such .py file or package "
            f"directory in the app directory), and the app has no {others} ({hint})")


def _set_target_hint() -> str:
    return (
        "Set FUNC_NAME (OpenFunction's spec.build.env) or FUNCTION_TARGET to the name of\n"
        "the function to serve, e.g. `pack build ... --env FUNC_NAME=hello`."
    )


def _function_source(e: FunctionSourceError) -> Message:
    kind = e.kind
    if kind is FunctionSourceErrorKind.SOURCE_NOT_FOUND:
        origin = f" (from {e.variable})" if e.variable else " (the default)"
        suggestion = (
            f"Did you mean {e.variable or 'FUNC_SRC'}={e.candidates[0]}?\n" if e.candidates else ""
        )
        return Message(
            "Function source not found",
            f"The function source {_quoted(e.source)}{origin} does not exist in the app directory:\n"
            f"there is no such .py file, nor a directory with __init__.py or main.py.\n\n"
            f"{suggestion}Put your function in main.py, or set FUNC_SRC (or FUNCTION_SOURCE) to the\n"
            f"file that defines it, relative to the app directory, e.g. FUNC_SRC=handler.py.",
        )
    if kind is FunctionSourceErrorKind.SOURCE_OUTSIDE_APP:
        return Message(
            "Function source outside the app directory",
            f"{e.variable}={_quoted(e.source)} is outside the app directory. The function is served\n"
            f"from the app directory, which is all of your source the image holds.\n\n"
            f"Set {e.variable} to a file in the app directory, relative to it (e.g. {e.variable}=main.py).",
        )
    if kind is FunctionSourceErrorKind.UNDECODABLE_SETTING:
        return Message(
            "Build setting is not UTF-8 text",
            f"{e.variable} is set to a value that is not valid UTF-8 ({_quoted(e.detail)}).\n\n"
            f"Set {e.variable} to UTF-8 text: it names a file or a function of your app.",
        )
    if kind is FunctionSourceErrorKind.TARGET_NOT_A_NAME:
        return _target_not_a_name(e)
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
        script_only = (
            f"It is defined only under `if __name__ == \"__main__\":`, which does not run when the\n"
            f"framework imports {e.source}: move `def {e.target}` out of that block.\n\n"
            if e.detail == "script-only" else ""
        )
        return Message(
            "Function target not found",
            f"The function target {e.target!r} (from {e.variable}) is not defined at the top level\n"
            f"of {e.source}. Functions defined there: {names}.\n\n{script_only}"
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


def _target_not_a_name(e: FunctionSourceError) -> Message:
    source_var = SOURCE_VAR_FOR.get(e.variable, "FUNC_SRC")
    target = _quoted(e.target)
    module, separator, function = e.target.partition(":")
    if not separator:
        module, separator, function = e.target.rpartition(".")
    if separator and module and function.isidentifier():
        module_file = _shown(module.replace(".", "/") + ".py")
        return Message(
            "Function target is not a function name",
            f"{e.variable}={target} looks like module:function, but {e.variable} is the name of the\n"
            f"function only; the file that defines it is given by {source_var} (default main.py).\n\n"
            f"Set {source_var}={module_file} {e.variable}={function}.",
        )
    return Message(
        "Function target is not a function name",
        f"{e.variable}={target} is not a Python name, so no function in {e.source} can have it.\n\n"
        f"Set {e.variable} to the name of the function to serve, e.g. {e.variable}=hello for\n"
        f"`def hello(request):` (the file is given by {source_var}).",
    )


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
    if notice.kind is NoticeKind.FILE_NOT_READ:
        minor = notice.available.rsplit(".", 1)[0]
        content = f" ({notice.requested!r})" if notice.requested else ""
        return Message(
            f"{notice.file} is not read",
            f"The app has {notice.file}{content}, which this buildpack does not read: the stack has\n"
            f"one Python, {notice.available}, and the build checks the version asked for in\n"
            f".python-version or in requires-python of pyproject.toml against it.\n"
            f"Put the version in .python-version (e.g. {minor}) and delete {notice.file}.",
        )
    return Message(
        "Python patch version differs",
        f"{notice.file} asks for Python {notice.requested}; the stack has {notice.available}.\n"
        f"The minor version matches, so the build goes on with {notice.available}.",
    )


def setup_script_not_read(files: Sequence[str]) -> Message:
    """A setuptools project whose dependencies the buildpack cannot see."""
    names = " and ".join(files)
    return Message(
        f"{names} not read",
        f"The app has {names}, but no requirements.txt and no [project] dependencies in\n"
        "pyproject.toml. The buildpack does not run setup scripts, so install_requires are\n"
        "not installed, and imports of those packages will fail when the function runs.\n"
        "List the dependencies in requirements.txt (or [project] dependencies); if the\n"
        "function needs none, ignore this warning.",
    )


def _app_files(e: AppFilesError) -> Message:
    if e.kind is AppFilesErrorKind.INVALID_PYPROJECT and e.field:
        example = _PYPROJECT_EXAMPLES.get(e.field)
        todo = (f"Write it like this:\n{_indent(example)}" if example
                else f"Make it a TOML table: a {e.field} header line with its keys below it.")
        return Message(
            "Invalid pyproject.toml",
            f"In {e.file}, {e.field} must be {e.expected}, but it is {e.detail}.\n\n{todo}",
        )
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


_PYPROJECT_EXAMPLES = {
    "[project]": '[project]\nname = "fn"\ndependencies = ["requests>=2"]',
    "[project] dependencies": '[project]\ndependencies = ["requests>=2", "humanize"]',
    "[project] dynamic": '[project]\ndynamic = ["version"]',
    "[project] requires-python": '[project]\nrequires-python = ">=3.11"',
}


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
    kind = e.kind
    if kind is DependenciesLayerErrorKind.RESOLUTION_FAILED:
        return _resolution_failed(e)
    if kind is DependenciesLayerErrorKind.DYNAMIC_DEPENDENCIES:
        return Message(
            "Dynamic dependencies in pyproject.toml",
            "pyproject.toml declares its dependencies as dynamic, so the buildpack cannot read\n"
            "them without building the project.\n\n"
            "List them in [project] dependencies, or in a requirements.txt (which takes precedence).",
        )
    if kind is DependenciesLayerErrorKind.MISSING_INCLUDED_FILE:
        return Message(
            "Included requirements file not found",
            f"{e.file} includes {e.detail!r} (with -r or -c), which does not exist.\n\n"
            f"Add {e.detail} to the app directory or remove the line.",
        )
    if kind is DependenciesLayerErrorKind.EDITABLE_REQUIREMENT:
        return Message(
            f"Editable requirement in {e.file}",
            f"{e.file} asks for an editable install: -e {e.detail}\n"
            f"Editable installs are not supported in an image: the dependencies layer is on\n"
            f"PYTHONPATH, where the .pth file of an editable install is not read, so the package\n"
            f"could not be imported when the function runs.\n\n"
            f"List the path without -e (a line `{e.detail}`): the package is then installed as a\n"
            f"regular one, and reinstalled whenever its files change.",
        )
    if kind is DependenciesLayerErrorKind.POETRY_DEPENDENCIES:
        return Message(
            "Poetry dependencies are not read",
            f"pyproject.toml lists dependencies in [tool.poetry.dependencies] ({_names(e.names)}),\n"
            f"but the buildpack reads only [project] dependencies and requirements.txt: they would\n"
            f"not be installed, and the function would fail to import them when it starts.\n\n"
            f"Export them to a requirements.txt next to pyproject.toml:\n"
            f"    poetry export -f requirements.txt -o requirements.txt --without-hashes\n"
            f"(Poetry 2 needs the poetry-plugin-export plugin for that), or move them to\n"
            f"[project] dependencies, which Poetry 2 reads too.",
        )
    if kind is DependenciesLayerErrorKind.PIPFILE_DEPENDENCIES:
        listed = f" ({_names(e.names)})" if e.names else ""
        return Message(
            "Pipfile dependencies are not read",
            f"The app has a Pipfile{listed}, but the buildpack reads only requirements.txt and\n"
            f"[project] dependencies of pyproject.toml: its packages would not be installed.\n\n"
            f"Export them to a requirements.txt next to the Pipfile:\n"
            f"    pipenv requirements > requirements.txt",
        )
    raise AssertionError(kind)


def _names(names: tuple[str, ...], limit: int = 8) -> str:
    shown = ", ".join(_shown(name, 40) for name in names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


def _resolution_failed(e: DependenciesLayerError) -> Message:
    pyproject = e.file == PYPROJECT
    if e.conflicts:
        advice = _framework_conflicts(e.conflicts, e.file)
    elif e.unreachable_index:  # before a build failure: it may be what made the build fail
        advice = (
            "The package index could not be reached from the build.\n\n"
            "Give the build network access to the index (pack build --network host), point\n"
            "UV_DEFAULT_INDEX at a reachable mirror, or vendor the wheels in vendor/ to build\n"
            "offline. Behind a TLS-intercepting proxy, make its CA trusted in the build (see\n"
            "docs/buildpack.md)."
        )
    elif e.source_build is not None:
        advice = _source_build_failed(e.source_build)
    elif e.offline:
        download = (
            "`pip download -d vendor --only-binary :all: --python-version 3.11 --platform\n"
            "manylinux2014_x86_64 <dependency> ...` with your [project] dependencies" if pyproject else
            "`pip download -r requirements.txt -d vendor --only-binary :all: --python-version 3.11\n"
            "--platform manylinux2014_x86_64`"
        )
        advice = (
            "The app has a vendor/ directory, so packages are installed from its wheels only\n"
            "(and the framework's own wheels), with no package index.\n\n"
            f"Add the missing wheels to vendor/ (e.g. {download}), fix the\n"
            f"versions in {e.file}, or delete vendor/ to install from the package index."
        )
    else:
        try_locally = (
            "`uv pip install -r pyproject.toml` (it installs the [project] dependencies only)"
            if pyproject else "`pip install -r requirements.txt`"
        )
        advice = (
            "Packages are installed from the package index (PyPI unless UV_DEFAULT_INDEX says otherwise).\n\n"
            f"Check the package names and versions in {e.file}: a typo, a version that does not\n"
            f"exist, or a pin that conflicts with the framework's own packages (the runtime layer\n"
            f"fixes their versions). Try them locally with {try_locally}."
        )
    return Message(
        f"Cannot install the packages in {e.file}",
        f"Resolving or installing the packages listed in {e.file} failed:\n{_indent(e.detail)}\n\n{advice}",
    )


def _framework_conflicts(conflicts: tuple[FrameworkConflict, ...], file: str) -> str:
    first = conflicts[0]
    lines = [
        "The functions framework's own packages are installed in the runtime layer at fixed\n"
        "versions, and your packages are resolved around them; uv's message shows those\n"
        f"versions as if they were your requirements (\"{first.name}=={first.version}\").\n"
    ]
    for c in conflicts:
        if c.requested is not None:
            asked = f"{c.name}{c.requested}" if c.requested else c.name
            lines.append(
                f"- {c.name} is installed at {c.version} by the functions framework, and {file} asks for\n"
                f"  {_shown(asked)}: remove your pin of {c.name} or relax it to allow {c.version}."
            )
        else:
            lines.append(
                f"- {c.name} is installed at {c.version} by the functions framework, and a package in\n"
                f"  {file} needs another version of it: use a version of that package that works\n"
                f"  with {c.name} {c.version}."
            )
    return "\n".join(lines)


def _source_build_failed(package: str) -> str:
    which = f":\n    {_shown(package, 200)}\n" if package else " "
    return (
        f"Building a package from source failed{which}(its output is above). It has no wheel\n"
        f"that fits this stack, or it is a local path, so it had to be built.\n\n"
        f"If it compiles an extension: the build image has gcc, make and Python's headers, but\n"
        f"no other libraries' development files or tools (e.g. libpq-dev and pg_config, which\n"
        f"psycopg2 needs) and no Rust compiler, and the run image has only Python, so an\n"
        f"extension linked to a system library would not load there anyway. Use a package\n"
        f"that publishes wheels with the library bundled (psycopg2-binary instead of psycopg2,\n"
        f"for example) or a version that has a manylinux wheel for CPython 3.11 on x86_64, or\n"
        f"put such a wheel in vendor/ (which makes the whole install offline).\n"
        f"Otherwise, fix the package's build: try `pip wheel` on it locally."
    )


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

