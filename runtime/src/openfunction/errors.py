"""User-facing errors.

Every mistake a user can make (bad configuration, missing source, unknown target, ...)
raises a `FrameworkError` subclass carrying what went wrong and how to fix it. The CLI
prints it without a Python traceback and exits non-zero.
"""

from __future__ import annotations


class FrameworkError(Exception):
    """An error the user can fix: a title, the detail, and what to do."""

    exit_code: int = 2

    def __init__(self, title: str, detail: str = "", hint: str = "") -> None:
        super().__init__(title)
        self.title = title
        self.detail = detail
        self.hint = hint

    def __str__(self) -> str:
        lines = [self.title]
        if self.detail:
            lines.append(self.detail)
        if self.hint:
            lines.append(f"fix: {self.hint}")
        return "\n".join(lines)


class ConfigError(FrameworkError):
    """`FUNC_CONTEXT`, a flag or an environment variable is invalid."""


class LoadError(FrameworkError):
    """The function source or target cannot be loaded."""


class ServeError(FrameworkError):
    """The server cannot start (port in use, ...)."""


class PluginError(FrameworkError):
    """A plugin cannot be resolved or configured."""


class OutputError(FrameworkError):
    """`ctx.send` was asked for an output that does not exist."""


class DaprUnavailableError(FrameworkError):
    """No Dapr sidecar could be reached for outputs or state."""
