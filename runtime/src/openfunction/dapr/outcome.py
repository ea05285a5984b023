"""What becomes of an event after the function ran: acknowledge, redeliver or drop.

A function signals it by what it returns or raises:

* returns normally: the event is acknowledged;
* raises an exception, or returns / raises `Retry`: Dapr delivers the event again;
* returns / raises `Drop`: the event is given up (a topic event goes to the dead-letter
  topic when the subscription has one; a binding event is acknowledged).

`Retry` and `Drop` may be returned as classes as well (`return Drop`). A function that
returns a coroutine (an `async def` called without `await`) failed: the event is
delivered again, with a log line saying so.

A `ctx.send` that failed also makes the event be delivered again, even when the function
caught the error: an event is acknowledged only once everything it produced is out.
"""

from __future__ import annotations

import inspect
from enum import Enum
from typing import TYPE_CHECKING, Any

from openfunction.context import PendingSend

if TYPE_CHECKING:
    from openfunction.invocation import Invocation

SEND_FAILURES = "dapr.send_failures"
"""`Invocation.state` key: the errors of this invocation's failed sends."""


class Outcome(str, Enum):
    SUCCESS = "SUCCESS"
    RETRY = "RETRY"
    DROP = "DROP"


class _Verdict(Exception):
    """Base of `Retry` and `Drop`: usable as a return value or raised."""

    def __init__(self, reason: str = "") -> None:
        super().__init__(reason)
        self.reason = reason

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.reason!r})"


class Retry(_Verdict):
    """Have Dapr deliver this event again."""


class Drop(_Verdict):
    """Give this event up: never deliver it again."""


NO_REASON = "no reason given"


def _verdict(value: Any) -> "_Verdict | None":
    """`value` as a verdict: an instance of `Retry` / `Drop`, or one of the classes."""
    if isinstance(value, _Verdict):
        return value
    if isinstance(value, type) and issubclass(value, _Verdict):
        return value()
    return None


def _describe(error: BaseException) -> str:
    text = str(error)
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


def outcome_of(invocation: "Invocation") -> tuple[Outcome, str]:
    """The outcome of a finished invocation, and why (empty on success)."""
    error = invocation.error
    verdict = _verdict(error) if error is not None else _verdict(invocation.result)
    if isinstance(verdict, Drop):
        return Outcome.DROP, f"the function dropped the event: {verdict.reason or NO_REASON}"
    if isinstance(verdict, Retry):
        return Outcome.RETRY, f"the function asked for a retry: {verdict.reason or NO_REASON}"
    if error is not None:
        return Outcome.RETRY, f"the function raised {_describe(error)}"
    result = invocation.result
    if isinstance(result, PendingSend):
        result = None  # `return ctx.send_async(...)`: a send under way, its failure counted below
    if inspect.iscoroutine(result):
        result.close()  # never run: no "coroutine was never awaited" warning later
        return Outcome.RETRY, "the function returned a coroutine: did you forget await?"
    if inspect.isawaitable(result):
        return Outcome.RETRY, (f"the function returned an awaitable ({type(result).__name__}): "
                               "did you forget await?")
    failures = invocation.state.get(SEND_FAILURES)
    if failures:
        first = failures[0]
        return Outcome.RETRY, (
            f"{len(failures)} send(s) to outputs failed (first: {_describe(first)})"
        )
    return Outcome.SUCCESS, ""
