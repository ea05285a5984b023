"""The request an HTTP function receives: Starlette's, plus sync accessors.

`async def` functions use Starlette's API (`await request.body()`, `await request.json()`).
For `def` functions the body is read before the call, so they can use
`request.data`, `request.text`, `request.get_json()` and `request.args` without `await`.

A body that is not valid JSON makes `get_json()` and `await request.json()` raise
`BadRequest`; left uncaught, the client gets a 400 (as Flask answers), not a 500.
"""

from __future__ import annotations

import json
from typing import Any

from starlette.datastructures import QueryParams
from starlette.requests import Request as _StarletteRequest


class BadRequest(ValueError):
    """The request cannot be decoded as the function needs: answered 400 Bad Request.

    A `ValueError`, so code that catches `ValueError` (as it did for `json.loads`) still does.
    """


def parse_json(body: bytes | bytearray | str, what: str = "body") -> Any:
    """`body` decoded as JSON, or `BadRequest` saying why it is not valid JSON."""
    if not body:
        raise BadRequest(f"{what} is not valid JSON: {what} is empty")
    try:
        return json.loads(body)
    except RecursionError:
        raise BadRequest(f"{what} is not valid JSON: nested too deeply") from None
    except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError
        raise BadRequest(f"{what} is not valid JSON: {exc}") from None


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
        """The body decoded as JSON (None when empty); `BadRequest` when it is not JSON,
        or None when `silent` is set."""
        data = self.data
        if not data:
            return None
        try:
            return parse_json(data)
        except BadRequest:
            if silent:
                return None
            raise

    async def json(self) -> Any:
        """The body decoded as JSON; `BadRequest` when it is empty or not JSON."""
        if not hasattr(self, "_json"):
            self._json = parse_json(await self.body())
        return self._json
