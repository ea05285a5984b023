"""CloudEvents over HTTP (binary and structured content modes).

The `cloudevents` SDK is imported on first use only: a plain HTTP function never pays for it.
"""

from __future__ import annotations

import json
from typing import Any, Mapping

_sdk: Any = None


def _load() -> Any:
    global _sdk
    if _sdk is None:
        try:
            from cloudevents.v1 import http as sdk  # cloudevents 2.x
        except ImportError:
            from cloudevents import http as sdk  # type: ignore[no-redef, attr-defined]  # cloudevents 1.x
        _sdk = sdk
    return _sdk


class InvalidCloudEvent(ValueError):
    pass


def is_cloudevent(headers: Mapping[str, str]) -> bool:
    return "ce-specversion" in headers or headers.get("content-type", "").startswith(
        "application/cloudevents"
    )


def parse(headers: Mapping[str, str], body: bytes) -> Any:
    """Decode a CloudEvent from an HTTP request, or raise `InvalidCloudEvent` with the reason."""
    sdk = _load()
    try:
        return sdk.from_http(dict(headers), body, data_unmarshaller=_json_or_as_is)
    except RecursionError:  # a structured-mode envelope nested too deeply
        raise InvalidCloudEvent("the JSON is nested too deeply") from None
    except Exception as exc:  # the SDK raises several unrelated types
        reason = str(exc) or type(exc).__name__
        raise InvalidCloudEvent(reason) from None


def _json_or_as_is(content: Any) -> Any:
    """The event's data: decoded when it is JSON, else as it came (the SDK's default, which
    also keeps data nested too deeply to decode as it came instead of failing the event)."""
    if content is None:
        return None
    try:
        return json.loads(content)
    except (ValueError, TypeError, RecursionError):
        return content


def to_binary(event: Any) -> tuple[dict[str, str], bytes]:
    headers, body = _load().to_binary(event)
    return dict(headers), body if isinstance(body, bytes) else (body or b"")


def to_structured(event: Any) -> tuple[dict[str, str], bytes]:
    headers, body = _load().to_structured(event)
    return dict(headers), body
