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


def test_headers_as_a_list_of_pairs():
    r = to_response(("x", 201, [("X-A", "1"), ["X-B", "café"]]))
    assert r.status_code == 201 and r.headers["x-a"] == "1" and r.headers["x-b"] == "café"


def test_headers_are_added_to_a_returned_response():
    r = to_response((PlainTextResponse("teapot"), 418, {"X-A": "b"}))
    assert r.status_code == 418 and r.headers["x-a"] == "b"


def _circular():
    items = []
    items.append(items)
    return items


@pytest.mark.parametrize("value, part, allowed", [
    (("a", 200, ["x"]), "headers item 0 is a str, not a (name, value) pair", "list of (name, value) pairs"),
    (("a", 200, [("x", "1", "2")]), "headers item 0 is a tuple", "list of (name, value) pairs"),
    (("a", 200, {"x": 1}), "header 'x' has a value of type int", "header values are str"),
    (("a", 200, {"x": b"1"}), "header 'x' has a value of type bytes", "header values are str"),
    (("a", 200, {"x": "é€"}), "header 'x' has a value that is not latin-1 text", "encodable as latin-1"),
    (("a", 200, {"x": "a\r\nSet-Cookie: s=1"}), "header 'x' has a value with a control character", "cannot hold"),
    (("a", 200, {1: "x"}), "header name of type int is not valid", "names made of letters"),
    (("a", 200, {"a b": "x"}), "header name 'a b' is not valid", "names made of letters"),
    ((PlainTextResponse("r"), {"x": 1}), "header 'x' has a value of type int", "header values are str"),
    ({"a": {1, 2}}, "the dict body cannot be serialised as JSON (Object of type set", "dicts with str keys"),
    ({"a": b"x"}, "the dict body cannot be serialised as JSON (Object of type bytes", "dicts with str keys"),
    ({(1, 2): "x"}, "the dict body cannot be serialised as JSON (keys must be", "dicts with str keys"),
    ({"a": float("nan")}, "the dict body cannot be serialised as JSON (Out of range float", "finite float"),
    ([float("inf")], "the list body cannot be serialised as JSON", "finite float"),
    (float("nan"), "the float body cannot be serialised as JSON", "finite float"),
    (_circular(), "the list body cannot be serialised as JSON (Circular reference", "lists"),
    ({"a": "\ud800"}, "the dict body cannot be serialised as JSON", "str"),
    ("\ud800", "the str body cannot be encoded as UTF-8", "valid text or bytes"),
    (object(), "the body has type object, which is not an HTTP response", "return str, bytes, dict"),
    (("a", "b"), "the tuple holds a str where a status (int) or headers were expected", "dict or a list"),
    (("a", 99), "HTTP status 99", "use 100-599"),
    (("a", 1, 2, 3), "a tuple of 4 items", "(body, status, headers)"),
])
def test_invalid_return_values_say_what_is_wrong_and_what_is_allowed(value, part, allowed):
    with pytest.raises(ReturnValueError) as info:
        to_response(value)
    message = str(info.value)
    assert message.startswith("the function's return value is invalid: ")
    assert part in message and allowed in message
    # no library exception chained to it: the log shows the user's mistake only
    assert info.value.__cause__ is None
    assert info.value.__context__ is None or info.value.__suppress_context__


def test_deeply_nested_body_is_a_return_value_error():
    value = []
    for _ in range(100_000):
        value = [value]
    with pytest.raises(ReturnValueError, match="nested too deeply"):
        to_response(value)


def test_nan_is_never_sent_as_json():
    with pytest.raises(ReturnValueError):
        to_response(({"a": float("nan")}, 200))
