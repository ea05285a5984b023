"""What becomes of an event after the function ran: acknowledge, redeliver or drop.

A function signals it by what it returns or raises:

* returns normally: the event is acknowledged;
* raises an exception, or returns / raises `Retry`: Dapr delivers the event again;
* returns / raises `Drop`: the event is given up (a topic event goes to the dead-letter
  topic when the subscription has one; a binding event is acknowledged).

A `ctx.send` that failed also makes the event be delivered again, even when the function
caught the error: an event is acknowledged only once everything it produced is out.
"""

from __future__ import annotations

from enum import Enum
from typing import TYPE_CHECKING

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


def outcome_of(invocation: "Invocation") -> tuple[Outcome, str]:
    """The outcome of a finished invocation, and why (empty on success)."""
    error = invocation.error
    if isinstance(error, Drop) or (error is None and isinstance(invocation.result, Drop)):
        verdict = error if error is not None else invocation.result
        return Outcome.DROP, f"the function dropped the event: {verdict.reason or 'no reason given'}"
    if isinstance(error, Retry) or (error is None and isinstance(invocation.result, Retry)):
        verdict = error if error is not None else invocation.result
        return Outcome.RETRY, f"the function asked for a retry: {verdict.reason or 'no reason given'}"
    if error is not None:
        return Outcome.RETRY, f"the function raised {type(error).__name__}: {error}"
    failures = invocation.state.get(SEND_FAILURES)
    if failures:
        first = failures[0]
        return Outcome.RETRY, (
            f"{len(failures)} send(s) to outputs failed (first: {type(first).__name__}: {first})"
        )
    return Outcome.SUCCESS, ""
