"""OpenFunction's inner event: the envelope that carries trace context between functions.

When tracing is on, OpenFunction's Go framework does not send a function's output as it
is to a pub/sub topic or a queue-like binding: it wraps it in a CloudEvent (JSON,
structured mode) whose data holds the trace context and the payload. Its
`innerEventData{Metadata map[string]string `json:"metadata,omitempty"`; UserData []byte
`json:"userData,omitempty"`}` is marshalled by encoding/json and handed to the
CloudEvents SDK as `[]byte`, which the SDK writes base64-encoded as `data_base64`:

    {"specversion":"1.0","id":"<uuid>","source":"<namespace>/<function>",
     "type":"io.openfunction.function.<namespace>.<function>",
     "datacontenttype":"application/json","time":"<RFC 3339, UTC, up to nanoseconds>",
     "data_base64":"<base64 of {"metadata":{"sw8":"..."},"userData":"<base64 of payload>"}>"}

`source` and `type` drop the namespace outside Kubernetes (`CONTEXT_MODE=self-host`).
`metadata` and `userData` are left out when empty; `metadata` keys are sorted and `<`,
`>`, `&` escaped, as encoding/json writes them. The receiving function unwraps it: its
`data` is the payload, its trace context the metadata.

`wrap` writes byte for byte what the Go framework writes (for the same id and time);
`unwrap` reads that, and also the same envelope with the inner object inline as `data`.
"""

from __future__ import annotations

import base64
import binascii
import json
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Mapping

from openfunction.config import KUBERNETES_MODE, Component, FunctionConfig

TYPE_PREFIX = "io.openfunction.function"
CONTENT_TYPE = "application/json"

# Bindings whose messages are queued and read by another function: only those (and
# every pub/sub) get the envelope; other bindings (redis, http, cron...) take raw data.
QUEUE_BINDINGS = frozenset({
    "bindings.kafka",
    "bindings.rabbitmq",
    "bindings.aws.sqs",
    "bindings.aws.kinesis",
    "bindings.gcp.pubsub",
    "bindings.azure.eventgrid",
    "bindings.azure.eventhubs",
    "bindings.azure.servicebusqueues",
    "bindings.azure.storagequeues",
})


def traceable(output: Component | str) -> bool:
    """Whether sends to this output carry trace context in an inner event."""
    ctype = output.component_type if isinstance(output, Component) else output
    return ctype.startswith("pubsub") or ctype in QUEUE_BINDINGS


@dataclass(frozen=True)
class InnerEvent:
    user_data: bytes
    metadata: Mapping[str, str] = field(default_factory=dict)
    attributes: Mapping[str, Any] = field(default_factory=dict)
    """The envelope's CloudEvent attributes (id, source, type, time, ...)."""


# ---------------------------------------------------------------- writing


def event_source(config: FunctionConfig) -> tuple[str, str]:
    """(`source`, `type`) of the inner events this function sends."""
    if config.mode == KUBERNETES_MODE:
        return (f"{config.pod_namespace}/{config.name}",
                f"{TYPE_PREFIX}.{config.pod_namespace}.{config.name}")
    return config.name, f"{TYPE_PREFIX}.{config.name}"


def format_time(moment: datetime) -> str:
    """Go's `time.RFC3339Nano` in UTC: trailing zeros of the fraction dropped."""
    moment = moment.astimezone(timezone.utc)
    text = moment.strftime("%Y-%m-%dT%H:%M:%S")
    nanos = moment.microsecond * 1000
    if nanos:
        text += "." + f"{nanos:09d}".rstrip("0")
    return text + "Z"


def _go_json(value: Any) -> str:
    """JSON as Go's encoding/json writes it: compact, sorted keys, HTML characters escaped."""
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"), sort_keys=True)
    return (text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
            .replace("\u2028", "\\u2028").replace("\u2029", "\\u2029"))


def _attribute(value: str) -> str:
    # CloudEvent attributes are written by jsoniter's fastest config: no HTML escaping
    return json.dumps(value, ensure_ascii=False)


def wrap(
    config: FunctionConfig,
    user_data: bytes,
    metadata: Mapping[str, str],
    *,
    event_id: str | None = None,
    time: datetime | None = None,
) -> bytes:
    """The inner event carrying `user_data` and `metadata`, as JSON bytes."""
    source, event_type = event_source(config)
    inner: dict[str, Any] = {}
    if metadata:
        inner["metadata"] = {str(k): str(v) for k, v in metadata.items()}
    if user_data:
        inner["userData"] = base64.b64encode(user_data).decode("ascii")
    parts = [
        '"specversion":"1.0"',
        f'"id":{_attribute(event_id or str(uuid.uuid4()))}',
        f'"source":{_attribute(source)}',
        f'"type":{_attribute(event_type)}',
        f'"datacontenttype":"{CONTENT_TYPE}"',
        f'"time":"{format_time(time or datetime.now(timezone.utc))}"',
        f'"data_base64":"{base64.b64encode(_go_json(inner).encode()).decode("ascii")}"',
    ]
    return ("{" + ",".join(parts) + "}").encode()


# ---------------------------------------------------------------- reading


def is_inner_event_type(event_type: str) -> bool:
    return event_type == TYPE_PREFIX or event_type.startswith(TYPE_PREFIX + ".")


def unwrap(raw: bytes | str) -> InnerEvent | None:
    """The inner event in `raw` (JSON), or None when `raw` is not one.

    Whatever cannot be read is delivered as it came, never retried for ever: `raw` that
    is not JSON (or nests deeper than Python's parser goes) is not an inner event; a
    `data_base64` that is not base64 is the payload as it is; decoded data that is not the
    `{metadata, userData}` JSON object is the payload, the decoded bytes unchanged.
    """
    if not raw:
        return None
    if raw.lstrip()[:1] not in ("{", b"{"):
        return None
    if (("specversion" not in raw) if isinstance(raw, str) else (b"specversion" not in raw)):
        return None  # the common case, decided without parsing
    try:
        doc = json.loads(raw)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return None
    if not isinstance(doc, dict) or "specversion" not in doc:
        return None
    event_type = doc.get("type")
    if not isinstance(event_type, str) or not is_inner_event_type(event_type):
        return None
    attributes = {k: v for k, v in doc.items() if k not in ("data", "data_base64")}
    if not isinstance(doc.get("data_base64"), str):
        try:
            return from_envelope_data(doc.get("data"), attributes)
        except RecursionError:  # re-encoding inline data nested about as deep as the limit
            return None
    try:
        decoded = base64.b64decode(doc["data_base64"], validate=True)
    except (binascii.Error, ValueError):
        return InnerEvent(_raw_bytes(doc["data_base64"]), {}, attributes)
    try:
        payload: Any = json.loads(decoded)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return InnerEvent(decoded, {}, attributes)  # binary data of some other CloudEvent
    return from_envelope_data(payload, attributes, original=decoded)


def from_envelope_data(
    payload: Any, attributes: Mapping[str, Any] | None = None, *, original: bytes | None = None
) -> InnerEvent:
    """The inner event whose envelope `data` is `payload` (already JSON-decoded).

    `original`: the bytes `payload` was decoded from, delivered as they are when `payload`
    is not the `{metadata, userData}` object (else it is re-encoded as compact JSON).
    """
    attributes = dict(attributes or {})
    if payload is None:
        return InnerEvent(b"", {}, attributes)
    if isinstance(payload, dict) and set(payload) <= {"metadata", "userData"}:
        metadata = payload.get("metadata") or {}
        user_data = payload.get("userData")
        if isinstance(metadata, dict) and all(isinstance(v, str) for v in metadata.values()) and (
            user_data is None or isinstance(user_data, str)
        ):
            try:
                data = base64.b64decode(user_data, validate=True) if user_data else b""
            except binascii.Error:
                pass
            else:
                return InnerEvent(data, dict(metadata), attributes)
    # Not the {metadata, userData} shape: the whole data is the payload.
    return InnerEvent(original if original is not None else _raw_bytes(payload), {}, attributes)


def _raw_bytes(value: Any) -> bytes:
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode()
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()
