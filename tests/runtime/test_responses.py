import json

import pytest
from starlette.responses import PlainTextResponse

from openfunction.responses import ReturnValueError, to_response


def test_str_is_text():
    r = to_response("hi")
    assert r.status_code == 200 and r.body == b"hi" and r.media_type == "text/plain"


def test_bytes_are_octet_stream():
    r = to_response(b"\x00\x01")
    assert r.body == b"\x00\x01" and r.media_type == "application/octet-stream"


@pytest.mark.parametrize("value", [{"a": 1}, [1, 2], {"ü": "é"}])
def test_dict_and_list_are_json(value):
    r = to_response(value)
    assert r.media_type == "application/json" and json.loads(r.body) == value


def test_none_is_empty_200():
    r = to_response(None)
    assert r.status_code == 200 and r.body == b""


def test_body_and_status():
    r = to_response(("created", 201))
    assert r.status_code == 201 and r.body == b"created"


def test_body_status_headers():
    r = to_response(({"ok": True}, 202, {"X-Thing": "1"}))
    assert r.status_code == 202 and r.headers["x-thing"] == "1"


def test_body_and_headers():
    r = to_response(("x", {"X-A": "b"}))
    assert r.status_code == 200 and r.headers["x-a"] == "b"


def test_response_passes_through():
    original = PlainTextResponse("teapot", 418)
    assert to_response(original) is original


@pytest.mark.parametrize("value", [object(), ("a", 1, 2, 3), ("a", "b"), ("a", 99)])
def test_unsupported_values(value):
    with pytest.raises(ReturnValueError):
        to_response(value)
