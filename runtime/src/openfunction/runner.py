"""Call the user's function for one invocation, with its plugins around it.

The runner knows how each signature type is called:

* `http`: `func(request)`
* `cloudevent`: `func(event)`
* `openfunction`: `func(ctx, data)`

`async def` functions run on the event loop; `def` functions run in a worker thread so
they never block it. The runner never raises for a failure of the user's code: it logs it
and records it on the invocation (`error`, `status_code`) for the post hooks to see and the
caller to answer; `SystemExit`, `KeyboardInterrupt` and a `CancelledError` the function
raises itself (its task was not cancelled) are such failures too.

A `BadRequest` (a body that is not valid JSON) is the client's mistake: for a request it
is answered 400, with no `error` recorded. An invocation whose input the server could not
decode (`Invocation.rejected`) goes through the plugins (and metrics) like any other and is
answered 400, without calling the function.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import logging
import os
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Awaitable, Callable, Coroutine, Mapping

from openfunction.context import Context, Services
from openfunction.errors import ConfigError
from openfunction.invocation import HTTP, Invocation
from openfunction.loader import LoadedFunction, user_traceback
from openfunction.plugins.pipeline import Pipeline, run_call
from openfunction.request import BadRequest
from openfunction.responses import bad_request, to_response
from openfunction.signature import SignatureType

logger = logging.getLogger("openfunction")

DEFAULT_THREADS = 40

def thread_count(environ: Mapping[str, str]) -> int:
    """The worker threads for `def` functions: `FUNCTION_THREADS`, else `DEFAULT_THREADS`."""
    text = environ.get("FUNCTION_THREADS", "").strip()
    if not text:
        return DEFAULT_THREADS
    if not (text.isascii() and text.isdigit()) or int(text) < 1:
        raise ConfigError(
            f"FUNCTION_THREADS is invalid: {text!r}",
            "it is how many `def` function calls may run at once, in worker threads.",
            f"set FUNCTION_THREADS to a whole number such as {DEFAULT_THREADS}, or unset it",
        )
    return int(text)


def being_cancelled(task: "asyncio.Task[Any] | None") -> bool:
    """Whether `task` was asked to stop (the server, daprd closing the call), so that a
    CancelledError it meets is that request, rather than the function's own code raising
    CancelledError (`await` on a future it cancelled itself). Without `Task.cancelling`
    (Python < 3.11) it is taken as a request to stop."""
    cancelling = getattr(task, "cancelling", None)
    return cancelling is None or cancelling() > 0


class FunctionRunner:
    def __init__(
        self,
        function: LoadedFunction,
        pipeline: Pipeline,
        services: Services,
        threads: int | None = None,
    ) -> None:
        self.function = function
        self.pipeline = pipeline
        self.services = services
        workers = threads or thread_count(os.environ)
        self._executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="function")
        self._func = function.func
        self._is_async = function.is_async
        self._signature = function.signature
        self._plugins = bool(pipeline)

    def run(self, invocation: Invocation) -> Coroutine[Any, Any, None]:
        """The coroutine that runs the function, with its plugins, for `invocation`; it
        never raises for user errors. A plain method, so that the runner adds no coroutine
        of its own to each invocation: the pipeline's (or `run_call`'s) is it, and awaits
        the function itself (the runner is its `FunctionCall`)."""
        if self._signature is SignatureType.OPENFUNCTION:
            invocation.context = Context(invocation, self.services)
        if not self._plugins:
            return run_call(self, invocation)
        return self.pipeline.run(invocation, self)

    def start(self, invocation: Invocation) -> "Awaitable[Any] | None":
        """Call the function: its coroutine (`async def`) or the future of its call in a
        worker thread (`def`); None for an invocation whose input was rejected (answered
        400 here, without calling the function)."""
        if invocation.rejected is not None:
            self._bad_request(invocation, invocation.rejected)
            return None
        args: tuple[Any, ...]
        if self._signature is SignatureType.OPENFUNCTION:
            args = (invocation.context, invocation.data)
        elif self._signature is SignatureType.CLOUDEVENT:
            args = (invocation.event,)
        else:
            args = (invocation.request,)
        if self._is_async:
            return self._func(*args)  # type: ignore[return-value]  # an `async def`: a coroutine
        return self._in_thread(*args)

    def finish(self, invocation: Invocation, result: Any) -> None:
        """The function returned `result`: for a request, the response made of it (a
        return value that makes none raises, and goes to `fail`)."""
        invocation.result = result
        if invocation.trigger == HTTP or invocation.request is not None:
            response = to_response(result, empty_status=200)
            invocation.response = response
            invocation.status_code = response.status_code

    def fail(self, invocation: Invocation, error: BaseException) -> None:
        """The function raised `error` (one of the pipeline's `CALL_ERRORS`). A
        `CancelledError` is raised again when the server is cancelling the invocation
        (shutdown, or daprd gave up)."""
        if isinstance(error, BadRequest):
            if invocation.trigger == HTTP or invocation.request is not None:
                self._bad_request(invocation, error)
            else:  # a Dapr event: no client to answer, a failure like any other
                self._failed(invocation, error)
        elif isinstance(error, asyncio.CancelledError) and being_cancelled(asyncio.current_task()):
            raise error
        else:  # a CancelledError raised by the function's own code is its failure
            self._failed(invocation, error)

    def _failed(self, invocation: Invocation, error: BaseException) -> None:
        """The function raised: recorded for the post hooks and the answer, and logged."""
        invocation.error = error
        invocation.status_code = 500
        logger.error(
            "function %r failed (request %s)\n%s",
            self.function.target,
            invocation.request_id or "-",
            user_traceback(error),
        )

    def _bad_request(self, invocation: Invocation, error: BadRequest) -> None:
        logger.info(
            "function %r: bad request (request %s): %s",
            self.function.target, invocation.request_id or "-", error,
        )
        invocation.response = bad_request(error, invocation.request_id)
        invocation.status_code = 400

    def _in_thread(self, *args: Any) -> "asyncio.Future[Any]":
        """The `def` function in a worker thread, with the invocation's context variables."""
        call: Callable[[], Any] = functools.partial(self._func, *args)
        return asyncio.get_running_loop().run_in_executor(
            self._executor, contextvars.copy_context().run, call
        )

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
