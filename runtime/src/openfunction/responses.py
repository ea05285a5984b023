"""Turn what a function returns into an HTTP response.

The conventions users know from GCP's functions framework:

* `str` -> `text/plain`, `bytes` -> `application/octet-stream`
* `dict` / `list` -> JSON
* `None` -> an empty 200 (or the `empty_status` given)
* `(body, status)`, `(body, headers)`, `(body, status, headers)`
* a Starlette `Response` is sent as it is
"""

from __future__ import annotations

import json
from typing import Any, Mapping

from starlette.responses import Response

_JSON = "application/json"


class ReturnValueError(TypeError):
    """The function returned something that cannot be an HTTP response."""


def to_response(value: Any, empty_status: int = 200) -> Response:
    if isinstance(value, Response):
        return value
    if isinstance(value, tuple):
        return _from_tuple(value)
    return _from_body(value, 200 if value is not None else empty_status, None)


def _from_tuple(value: tuple[Any, ...]) -> Response:
    if not 1 <= len(value) <= 3:
        raise ReturnValueError(
            f"the function returned a tuple of {len(value)} items; "
            "return (body, status), (body, headers) or (body, status, headers)"
        )
    body, status, headers = value[0], 200, None
    for item in value[1:]:
        if isinstance(item, int) and not isinstance(item, bool):
            status = item
        elif isinstance(item, Mapping) or isinstance(item, list):
            headers = dict(item)
        else:
            raise ReturnValueError(
                f"the function returned a tuple with a {type(item).__name__} where a status "
                "(int) or headers (dict) were expected"
            )
    if not 100 <= status <= 599:
        raise ReturnValueError(f"the function returned HTTP status {status}; use 100-599")
    return _from_body(body, status, headers)


def _from_body(body: Any, status: int, headers: Mapping[str, str] | None) -> Response:
    if isinstance(body, Response):
        body.status_code = status
        if headers:
            body.headers.update(headers)
        return body
    if body is None:
        return Response(b"", status_code=status, headers=headers)
    if isinstance(body, str):
        return Response(body, status_code=status, headers=headers, media_type="text/plain")
    if isinstance(body, (bytes, bytearray, memoryview)):
        return Response(bytes(body), status_code=status, headers=headers,
                        media_type="application/octet-stream")
    if isinstance(body, (dict, list, int, float, bool)):
        content = json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()
        return Response(content, status_code=status, headers=headers, media_type=_JSON)
    raise ReturnValueError(
        f"the function returned {type(body).__name__}, which is not an HTTP response; "
        "return str, bytes, dict, list, a tuple (body, status[, headers]) or a Response"
    )
