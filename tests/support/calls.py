"""A stand-in for the function between a pipeline's hooks, for the plugin tests."""

from __future__ import annotations

from typing import Any, Awaitable, Callable


class CallOf:
    """The `FunctionCall` whose function is `function(invocation)` (`async def`): its
    return value is dropped and what it raises leaves the pipeline, as with no runner."""

    def __init__(self, function: Callable[[Any], Awaitable[Any]]) -> None:
        self.function = function

    def start(self, invocation: Any) -> Awaitable[Any]:
        return self.function(invocation)

    def finish(self, invocation: Any, result: Any) -> None:
        pass

    def fail(self, invocation: Any, error: BaseException) -> None:
        raise error
