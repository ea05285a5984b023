"""`ctx`: what an OpenFunction-signature function `def f(ctx, data)` receives.

    def handler(ctx, data):
        ctx.send({"seen": data}, "sink")          # from a def function (runs in a thread)
        return "ok"

    async def handler(ctx, data):
        await ctx.send_async({"seen": data})      # to every output
        return "ok"

Outputs are the Dapr components named in `FUNC_CONTEXT.outputs`. Delivery goes through
an `OutputSender` (the Dapr one in `openfunction.dapr`), chosen once at start-up.

`ctx.send_async(...)` starts the send at once and registers it with the invocation
(`PENDING_SENDS`) before it returns: the Async runtime waits for every send an event made,
awaited or not, and a failed one has the event delivered again. What it returns is awaited
like a coroutine (`PendingSend`).
"""

from __future__ import annotations

import asyncio
import collections.abc
import functools
import json
import logging
import reprlib
import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Coroutine, Generator, Mapping, Protocol

from openfunction.config import Component, FunctionConfig, Runtime
from openfunction.errors import DaprUnavailableError, FrameworkError, OutputError

if TYPE_CHECKING:
    from starlette.requests import Request

    from openfunction.invocation import Invocation

logger = logging.getLogger("openfunction")

PENDING_SENDS = "openfunction.pending_sends"
"""`Invocation.state` key: the sends of this invocation that have not finished (futures)."""


@dataclass
class OutgoingMessage:
    """A payload on its way to an output. Plugins may add `metadata` (trace context)."""

    output: Component
    data: bytes
    metadata: dict[str, str] = field(default_factory=dict)
    raw: bool = False
    """Send `data` as it is, never wrapped in an inner event."""
    request_metadata: dict[str, str] = field(default_factory=dict)
    """Metadata for this one Dapr request (e.g. a Redis binding's `key`), over the output's."""


class OutputSender(Protocol):
    async def send(self, message: OutgoingMessage, invocation: "Invocation") -> bytes | None:
        """Deliver `message`; return the binding's response data, if any."""


class StateStores(Protocol):
    async def get(self, store: str, key: str) -> bytes | None: ...

    async def save(self, store: str, key: str, value: Any) -> None: ...

    async def delete(self, store: str, key: str) -> None: ...


class NoSidecarSender:
    """The sender used when outputs exist but no Dapr client can be made."""

    def __init__(self, reason: str, hint: str) -> None:
        self.reason = reason
        self.hint = hint

    async def send(self, message: OutgoingMessage, invocation: "Invocation") -> bytes | None:
        raise DaprUnavailableError(
            f"cannot send to output {message.output.name!r}: no Dapr sidecar is reachable",
            self.reason,
            self.hint,
        )


@dataclass
class Services:
    """Process-wide services shared by all invocations."""

    sender: OutputSender
    states: StateStores | None = None
    loop: asyncio.AbstractEventLoop | None = None


JSON_VALUES = "a dict, list, str, int, finite float, bool or None (nested as JSON allows)"


class PayloadError(OutputError, TypeError, ValueError):
    """Data that cannot be sent: bytes go as they are, str as UTF-8, the rest as JSON.

    Also a `TypeError` and a `ValueError`, as `json.dumps` raised for such data before.
    """


def encode_payload(data: Any, target: str = "the output") -> bytes:
    """`data` as the bytes to send to `target` (named in errors, e.g. "output 'sink'").

    bytes as they are, str as UTF-8, anything else as compact JSON: strict JSON, so NaN
    and infinite floats are refused rather than written as `NaN` / `Infinity`. Data that
    cannot be sent raises `PayloadError` saying why and what is accepted.
    """
    if isinstance(data, (bytes, bytearray, memoryview)):
        return bytes(data)
    as_json = not isinstance(data, str)
    try:
        if not as_json:
            return data.encode()
        return json.dumps(
            data, ensure_ascii=False, allow_nan=False, separators=(",", ":")
        ).encode()
    except UnicodeEncodeError as exc:
        where = "a str in it contains" if as_json else "it contains"
        reason = (f"{where} {exc.object[exc.start:exc.end]!r}, a lone surrogate, "
                  "which UTF-8 cannot encode")
        fix = "remove or replace the lone surrogates (e.g. text.encode('utf-8', 'replace'))"
    except RecursionError:
        reason = "it is nested too deeply for the JSON encoder (Python's recursion limit)"
        fix = "send flatter data, or encode it yourself and send the bytes"
    except (TypeError, ValueError) as exc:  # not serializable, NaN / infinity, a cycle
        reason = str(exc)
        fix = "convert the values JSON cannot hold (e.g. a set to a list, NaN to None)"
    how = "as JSON" if as_json else "as UTF-8 text"
    raise PayloadError(
        f"the data for {target} cannot be sent {how}",
        f"{reason}. Data is sent as JSON unless it is bytes or a str.",
        f"{fix}; send {JSON_VALUES}, or bytes or a str to send as they are",
    ) from None


def check_metadata(metadata: Any, call: str) -> dict[str, str]:
    """The `metadata` argument of `call` as a dict of str to str; TypeError otherwise."""
    if metadata is None:
        return {}
    if not isinstance(metadata, collections.abc.Mapping):
        raise TypeError(
            f"{call}(): metadata must be a mapping of str to str, not "
            f"{type(metadata).__name__}; pass e.g. metadata={{\"key\": \"order-42\"}}"
        )
    checked: dict[str, str] = {}
    for key, value in metadata.items():
        if not isinstance(key, str):
            raise TypeError(
                f"{call}(): the metadata keys must be str, not {type(key).__name__} "
                f"({reprlib.repr(key)}); pass the key as a str"
            )
        if not isinstance(value, str):
            raise TypeError(
                f"{call}(): metadata[{key!r}] must be a str, not {type(value).__name__} "
                f"({reprlib.repr(value)}); Dapr metadata values are text: pass e.g. "
                f"str(value)"
            )
        checked[key] = value
    return checked


class PendingSend(collections.abc.Coroutine):  # type: ignore[type-arg]
    """What `ctx.send_async(...)` returns: a send that is already under way.

    The send runs as a task of its own, started and registered with the invocation
    (`PENDING_SENDS`) when `send_async` is called, so the Async runtime waits for it and a
    failure has the event delivered again, whether the function awaits it or not. Await it
    for the binding's response (or the error) as a coroutine; `asyncio.create_task`,
    `ensure_future`, `gather` and `wait_for` take it too. A failure the function did not
    await itself is logged, never left to asyncio's "exception was never retrieved".

    Made outside a running event loop (`asyncio.run(ctx.send_async(...))`), the send
    starts when it is first awaited.
    """

    __slots__ = ("_invocation", "_deliver", "_what", "_task", "_steps", "_awaited")

    def __init__(self, invocation: "Invocation",
                 deliver: Callable[[], Coroutine[Any, Any, Any]], what: str) -> None:
        self._invocation = invocation
        self._deliver = deliver
        self._what = what
        self._task: asyncio.Task[Any] | None = None
        self._steps: Generator[Any, None, Any] | None = None
        """The task's iterator, when a task of its own (create_task, ...) drives this."""
        self._awaited = False
        """Whether the function awaits it (`await`): it then sees the error itself."""
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return
        self._start()

    def _start(self) -> asyncio.Task[Any]:
        task = self._task
        if task is None:
            task = asyncio.get_running_loop().create_task(self._deliver(), name=self._what)
            self._invocation.state.setdefault(PENDING_SENDS, set()).add(task)
            task.add_done_callback(self._settled)
            self._task = task
        return task

    def _settled(self, task: asyncio.Task[Any]) -> None:
        pending = self._invocation.state.get(PENDING_SENDS)
        if pending is not None:
            pending.discard(task)
        if task.cancelled():
            return
        error = task.exception()  # retrieved: a send nobody awaits must not warn about it
        if error is not None and not self._awaited:
            logger.error("%s failed: %s", self._what, error,
                         exc_info=None if isinstance(error, FrameworkError) else error)

    def _driven(self) -> Generator[Any, None, Any]:
        steps = self._steps
        if steps is None:
            steps = self._steps = self._start().__await__()
            driver = asyncio.current_task()
            if driver is not None and driver.get_coro() is self:
                # a task made only to run this send: its failure is logged by `_settled`
                driver.add_done_callback(_retrieve_exception)
        return steps

    def __await__(self) -> Generator[Any, None, Any]:
        self._awaited = True
        return self._start().__await__()

    def send(self, value: Any) -> Any:
        return self._driven().send(value)

    def throw(self, typ: Any, val: Any = None, tb: Any = None) -> Any:
        error = typ if isinstance(typ, BaseException) else val
        cancelled = isinstance(error, asyncio.CancelledError) or (
            isinstance(typ, type) and issubclass(typ, asyncio.CancelledError))
        steps = self._driven()
        if cancelled and self._task is not None:
            self._task.cancel()  # the task driving this send was cancelled: so is the send
        if val is None and tb is None:
            return steps.throw(typ)
        return steps.throw(typ, val, tb)

    def close(self) -> None:
        if self._steps is not None:
            self._steps.close()

    def __repr__(self) -> str:
        return f"<PendingSend {self._what}>"


def _retrieve_exception(task: "asyncio.Future[Any]") -> None:
    if not task.cancelled():
        task.exception()


class Context:
    """The OpenFunction context of one invocation."""

    __slots__ = ("_invocation", "_services", "_loop_thread")

    def __init__(self, invocation: "Invocation", services: Services) -> None:
        self._invocation = invocation
        self._services = services
        self._loop_thread = threading.get_ident()

    # what the function is and what started it
    @property
    def name(self) -> str:
        return self._invocation.config.name

    @property
    def config(self) -> FunctionConfig:
        return self._invocation.config

    @property
    def runtime(self) -> Runtime:
        return self._invocation.config.runtime

    @property
    def input_name(self) -> str:
        return self._invocation.input_name

    @property
    def event(self) -> Any:
        """The raw event: a Dapr binding/topic event, a CloudEvent, or None for plain HTTP."""
        return self._invocation.event

    @property
    def request(self) -> "Request | None":
        return self._invocation.request

    @property
    def outputs(self) -> Mapping[str, Component]:
        return self._invocation.config.outputs

    @property
    def invocation(self) -> "Invocation":
        return self._invocation

    # outputs
    def send_async(
        self,
        data: Any,
        output: str | None = None,
        *,
        raw: bool = False,
        metadata: Mapping[str, str] | None = None,
    ) -> PendingSend:
        """Send `data` to the output named `output`, or to every output.

        `metadata` is added to this request's metadata, over the output's own (for
        example `{"key": "order-42"}` for a `bindings.redis` output). Awaited, returns the
        binding's response data for one output, or a dict of output name to response data
        when sending to all of them.

        The arguments are checked and the send started (and registered with the
        invocation) right here: a mistake raises at once, and the Async runtime waits for
        the send even if it is never awaited.
        """
        if self._services.loop is not None and threading.get_ident() != self._loop_thread:
            raise RuntimeError(
                "ctx.send_async() runs on the event loop, not in a def function's worker "
                "thread; in a def function use `ctx.send(...)` (it blocks until the output "
                "has the data)"
            )
        deliver, what = self._prepare("ctx.send_async", data, output, raw, metadata)
        return PendingSend(self._invocation, deliver, what)

    def send(
        self,
        data: Any,
        output: str | None = None,
        *,
        raw: bool = False,
        metadata: Mapping[str, str] | None = None,
    ) -> Any:
        """Blocking `send_async`, for `def` functions (they run in a worker thread)."""
        loop = self._services.loop
        if loop is None or threading.get_ident() == self._loop_thread:
            raise RuntimeError(
                "ctx.send() blocks and cannot run on the event loop; "
                "in an async function use `await ctx.send_async(...)`"
            )
        deliver, _ = self._prepare("ctx.send", data, output, raw, metadata)
        return asyncio.run_coroutine_threadsafe(deliver(), loop).result()

    def _prepare(
        self, call: str, data: Any, output: str | None, raw: bool,
        metadata: Mapping[str, str] | None,
    ) -> tuple[Callable[[], Coroutine[Any, Any, Any]], str]:
        """Check a send's arguments and encode its data: (the send to run, its description)."""
        targets = self._targets(output, call)
        request_metadata = check_metadata(metadata, call)
        names = ", ".join(repr(c.name) for c in targets)
        target = f"output {names}" if output is not None else f"every output ({names})"
        payload = encode_payload(data, target)
        deliver = functools.partial(
            self._deliver, targets, payload, raw, request_metadata, output is not None)
        return deliver, f"{call}() to {target}"

    async def _deliver(
        self, targets: list[Component], payload: bytes, raw: bool,
        request_metadata: dict[str, str], single: bool,
    ) -> Any:
        results: dict[str, bytes | None] = {}
        for component in targets:
            message = OutgoingMessage(
                output=component, data=payload, raw=raw, request_metadata=dict(request_metadata)
            )
            plugins = self._invocation.plugins
            if plugins is not None:
                await plugins.on_send(self._invocation, message)
            results[component.name] = await self._services.sender.send(message, self._invocation)
        return results[targets[0].name] if single else results

    def _targets(self, output: str | None, call: str = "ctx.send") -> list[Component]:
        if output is not None and not isinstance(output, str):
            raise TypeError(
                f"{call}(): output must be the name of an output (a str), or None to send "
                f"to every output, not {type(output).__name__} ({reprlib.repr(output)})"
            )
        outputs = self._invocation.config.outputs
        if not outputs:
            raise OutputError(
                f"function {self.name!r} has no outputs to send to",
                "FUNC_CONTEXT lists no outputs.",
                "declare an output in the Function CR (spec.serving.outputs) "
                "or in FUNC_CONTEXT.outputs",
            )
        if output is None:
            return list(outputs.values())
        if output not in outputs:
            raise OutputError(
                f"unknown output {output!r}",
                f"the outputs of {self.name!r} are: {', '.join(sorted(outputs))}.",
                "pass one of these names to ctx.send",
            )
        return [outputs[output]]

    # state
    @property
    def states(self) -> StateStores:
        stores = self._services.states
        if stores is None or not self._invocation.config.states:
            raise OutputError(
                f"function {self.name!r} has no state stores",
                "FUNC_CONTEXT lists no states.",
                "declare a state store in the Function CR (spec.serving.states)",
            )
        return stores
