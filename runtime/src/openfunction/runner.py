"""Call the user's function for one invocation, with its plugins around it.

The runner knows how each signature type is called:

* `http`: `func(request)`
* `cloudevent`: `func(event)`
* `openfunction`: `func(ctx, data)`

`async def` functions run on the event loop; `def` functions run in a worker thread so
they never block it. The runner never raises for a failure of the user's code: it records
it on the invocation (`error`, `status_code`) for the caller to answer.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import logging
import os
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable

from openfunction.context import Context, Services
from openfunction.invocation import HTTP, Invocation
from openfunction.loader import LoadedFunction, user_traceback
from openfunction.plugins.pipeline import Pipeline
from openfunction.responses import to_response
from openfunction.signature import SignatureType

logger = logging.getLogger("openfunction")

DEFAULT_THREADS = 40


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
        workers = threads or int(os.environ.get("FUNCTION_THREADS", DEFAULT_THREADS))
        self._executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="function")
        self._func = function.func
        self._is_async = function.is_async
        self._signature = function.signature
        self._plugins = bool(pipeline)

    async def run(self, invocation: Invocation) -> None:
        """Run the function (and plugins) for `invocation`; never raises for user errors."""
        if self._signature is SignatureType.OPENFUNCTION:
            invocation.context = Context(invocation, self.services)
        if not self._plugins:
            await self._call(invocation)
        elif self.pipeline.inline:
            # `Pipeline.run` for `def` hooks, without a coroutine of its own
            pipeline = self.pipeline
            go = pipeline.pre(invocation)
            if go is not True and go is not False:
                go = await go
            if go:
                await self._call(invocation)
            pending = pipeline.post(invocation)
            if pending is not None:
                await pending
        else:
            await self.pipeline.run(invocation, self._call)
        if invocation.error is not None:
            logger.error(
                "function %r failed (request %s)\n%s",
                self.function.target,
                invocation.request_id or "-",
                user_traceback(invocation.error),
            )

    async def _call(self, invocation: Invocation) -> None:
        try:
            args: tuple[Any, ...]
            if self._signature is SignatureType.OPENFUNCTION:
                args = (invocation.context, invocation.data)
            elif self._signature is SignatureType.CLOUDEVENT:
                args = (invocation.event,)
            else:
                args = (invocation.request,)
            if self._is_async:
                result = await self._func(*args)  # type: ignore[misc]
            else:
                result = await self._in_thread(*args)
            invocation.result = result
            if invocation.trigger == HTTP or invocation.request is not None:
                response = to_response(result, empty_status=200)
                invocation.response = response
                invocation.status_code = response.status_code
        except Exception as exc:  # noqa: BLE001 - user code: recorded, answered, logged
            invocation.error = exc
            invocation.status_code = 500

    def _in_thread(self, *args: Any) -> "asyncio.Future[Any]":
        """The `def` function in a worker thread, with the invocation's context variables."""
        call: Callable[[], Any] = functools.partial(self._func, *args)
        return asyncio.get_running_loop().run_in_executor(
            self._executor, contextvars.copy_context().run, call
        )

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
