"""The request an HTTP function receives: Starlette's, plus sync accessors.

`async def` functions use Starlette's API (`await request.body()`, `await request.json()`).
For `def` functions the body is read before the call, so they can use
`request.data`, `request.text`, `request.get_json()` and `request.args` without `await`.
"""

from __future__ import annotations

import json
from typing import Any

from starlette.datastructures import QueryParams
from starlette.requests import Request as _StarletteRequest


class Request(_StarletteRequest):
    @property
    def data(self) -> bytes:
        """The body (`def` functions; in `async def` use `await request.body()`)."""
        try:
            return self._body
        except AttributeError:
            raise RuntimeError(
                "the request body has not been read; in an async function use "
                "`await request.body()`"
            ) from None

    @property
    def text(self) -> str:
        return self.data.decode(errors="replace")

    @property
    def args(self) -> QueryParams:
        """The query string parameters (as Flask's `request.args`)."""
        return self.query_params

    def get_json(self, silent: bool = False) -> Any:
        """The body decoded as JSON; None when it is not JSON and `silent` is set."""
        try:
            return json.loads(self.data) if self.data else None
        except ValueError:
            if silent:
                return None
            raise
