"""Turn what a function returns into an HTTP response.

The conventions users know from GCP's functions framework:

* `str` -> `text/plain`, `bytes` -> `application/octet-stream`
* `dict` / `list` -> JSON
* `None` -> an empty 200 (or the `empty_status` given)
* `(body, status)`, `(body, headers)`, `(body, status, headers)`
* a Starlette `Response` is sent as it is

Anything else, headers HTTP cannot carry or a body JSON cannot represent (a set, bytes,
NaN, ...) raises `ReturnValueError`, saying which part is invalid and what is allowed.
"""

from __future__ import annotations

import json
import re
from typing import Any, Mapping

from starlette.responses import PlainTextResponse, Response

from openfunction.request import BadRequest

_JSON = "application/json"
_INVALID = "the function's return value is invalid"
_RETURN = "return str, bytes, dict, list, a tuple (body, status[, headers]) or a Response"
_HEADERS = "headers are a dict or a list of (name, value) pairs of str"
_JSON_VALUES = ("dict and list bodies may hold only dicts with str keys, lists, str, int, "
                "finite float, bool and None")
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")  # HTAB is allowed in a value


class ReturnValueError(TypeError):
    """The function returned something that cannot be an HTTP response."""

    def __init__(self, detail: str) -> None:
        super().__init__(f"{_INVALID}: {detail}")


def to_response(value: Any, empty_status: int = 200) -> Response:
    """The response for what the function returned, or `ReturnValueError` saying what is wrong."""
    if isinstance(value, Response):
        return value
    if isinstance(value, tuple):
        return _from_tuple(value)
    return _from_body(value, 200 if value is not None else empty_status, None)


def bad_request(error: BadRequest, request_id: str) -> Response:
    """The 400 answered when the request's body cannot be decoded (`BadRequest`)."""
    return PlainTextResponse(
        f"Bad Request: {error} (request id {request_id})\n",
        400,
        headers={"x-request-id": request_id},
    )


def _from_tuple(value: tuple[Any, ...]) -> Response:
    if not 1 <= len(value) <= 3:
        raise ReturnValueError(
            f"a tuple of {len(value)} items; "
            "return (body, status), (body, headers) or (body, status, headers)"
        )
    body, status, headers = value[0], 200, None
    for item in value[1:]:
        if isinstance(item, int) and not isinstance(item, bool):
            status = item
        elif isinstance(item, (Mapping, list)):
            headers = _headers(item)
        else:
            raise ReturnValueError(
                f"the tuple holds a {type(item).__name__} where a status (int) or headers "
                f"were expected; {_HEADERS}"
            )
    if not 100 <= status <= 599:
        raise ReturnValueError(f"HTTP status {status}; use 100-599")
    return _from_body(body, status, headers)


def _headers(value: Mapping[Any, Any] | list[Any]) -> dict[str, str]:
    """Headers a response can carry, checked: str names and values that HTTP can send."""
    if isinstance(value, Mapping):
        pairs = list(value.items())
    else:
        pairs = []
        for index, pair in enumerate(value):
            if not isinstance(pair, (tuple, list)) or len(pair) != 2:
                raise ReturnValueError(
                    f"headers item {index} is a {type(pair).__name__}, not a (name, value) "
                    f"pair; {_HEADERS}"
                )
            pairs.append((pair[0], pair[1]))
    headers: dict[str, str] = {}
    for name, val in pairs:
        if not isinstance(name, str) or not _TOKEN.fullmatch(name):
            shown = repr(name) if isinstance(name, str) else f"of type {type(name).__name__}"
            raise ReturnValueError(
                f"header name {shown} is not valid; {_HEADERS}, names made of letters, "
                "digits and !#$%&'*+-.^_`|~"
            )
        if not isinstance(val, str):
            raise ReturnValueError(
                f"header {name!r} has a value of type {type(val).__name__}; header values "
                "are str (convert it, e.g. with str())"
            )
        try:
            val.encode("latin-1")
        except UnicodeEncodeError:
            raise ReturnValueError(
                f"header {name!r} has a value that is not latin-1 text; header values must "
                "be encodable as latin-1 (percent-encode other text, e.g. with "
                "urllib.parse.quote)"
            ) from None
        if _CONTROL.search(val):
            raise ReturnValueError(
                f"header {name!r} has a value with a control character (CR, LF, ...), "
                "which HTTP header values cannot hold"
            )
        headers[name] = val
    return headers


def _from_body(body: Any, status: int, headers: Mapping[str, str] | None) -> Response:
    if isinstance(body, Response):
        body.status_code = status
        if headers:
            body.headers.update(headers)
        return body
    if body is None:
        return Response(b"", status_code=status, headers=headers)
    if isinstance(body, str):
        try:
            content = body.encode()
        except UnicodeEncodeError as exc:
            raise ReturnValueError(
                f"the str body cannot be encoded as UTF-8 ({exc.reason}); return valid text "
                "or bytes"
            ) from None
        return Response(content, status_code=status, headers=headers, media_type="text/plain")
    if isinstance(body, (bytes, bytearray, memoryview)):
        return Response(bytes(body), status_code=status, headers=headers,
                        media_type="application/octet-stream")
    if isinstance(body, (dict, list, int, float, bool)):
        return Response(_json(body), status_code=status, headers=headers, media_type=_JSON)
    raise ReturnValueError(
        f"the body has type {type(body).__name__}, which is not an HTTP response; {_RETURN}"
    )


def _json(body: Any) -> bytes:
    try:
        text = json.dumps(body, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
        return text.encode()
    except RecursionError:
        reason = "nested too deeply"
    except (TypeError, ValueError) as exc:  # ValueError: NaN, circular, surrogates
        reason = str(exc)
    raise ReturnValueError(
        f"the {type(body).__name__} body cannot be serialised as JSON ({reason}); "
        f"{_JSON_VALUES}"
    )
