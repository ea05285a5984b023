"""OTLP trace requests, written straight from the SDK's finished spans as protobuf bytes.

The OTLP exporters of `opentelemetry-exporter-otlp` build a tree of protobuf message objects
for every span (a KeyValue and an AnyValue per attribute) before serialising it, which costs
more CPU than making the span did. `encode_request(spans)` writes the same
`ExportTraceServiceRequest` directly: the fields that repeat from span to span - the
resource, the instrumentation scope, the name and most attributes - are encoded once and
reused. The result parses to the message the SDK's `encode_spans` makes (tests check it
field by field); spans are grouped by resource and scope object, as the SDK makes them.
"""

from __future__ import annotations

import logging
import struct
from collections.abc import Mapping, Sequence
from typing import Any

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import SpanKind
from opentelemetry.trace.span import DEFAULT_TRACE_STATE

from openfunction.tracing.otel_spans import CONTEXT_IS_TUPLE, UNSET_STATUS, RecordingSpan

logger = logging.getLogger("openfunction.tracing")

_pack_fixed64 = struct.Struct("<Q").pack
_pack_fixed32 = struct.Struct("<I").pack
_pack_double = struct.Struct("<d").pack

CACHE_LIMIT = 8192
"""Encoded attributes, names and parents kept for reuse; the caches start over past this."""

# OTLP's SpanKind numbers are the API's plus one (0 is UNSPECIFIED).
_KIND = {kind: int(kind.value) + 1 for kind in SpanKind}
_HAS_IS_REMOTE = 0x100
_IS_REMOTE = 0x200


def varint(value: int) -> bytes:
    """`value` (>= 0) as a protobuf base-128 varint."""
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


_SMALL = [varint(n) for n in range(1 << 14)]


def _length(size: int) -> bytes:
    return _SMALL[size] if size < 16384 else varint(size)


def _field(tag: bytes, payload: bytes) -> bytes:
    """A length-delimited field: its tag byte(s), the payload's length, the payload."""
    return tag + _length(len(payload)) + payload


def _tag(number: int, wire_type: int) -> bytes:
    return varint(number << 3 | wire_type)


# Tags, by message. Wire types: 0 varint, 1 fixed64, 2 length-delimited, 5 fixed32.
_REQUEST_RESOURCE_SPANS = _tag(1, 2)
_RS_RESOURCE, _RS_SCOPE_SPANS, _RS_SCHEMA = _tag(1, 2), _tag(2, 2), _tag(3, 2)
_RESOURCE_ATTRIBUTE = _tag(1, 2)
_SS_SCOPE, _SS_SPANS, _SS_SCHEMA = _tag(1, 2), _tag(2, 2), _tag(3, 2)
_SCOPE_NAME, _SCOPE_VERSION, _SCOPE_ATTRIBUTE = _tag(1, 2), _tag(2, 2), _tag(3, 2)
_SPAN_TRACE_ID, _SPAN_ID, _SPAN_TRACE_STATE, _SPAN_PARENT = (
    _tag(1, 2), _tag(2, 2), _tag(3, 2), _tag(4, 2))
_SPAN_NAME, _SPAN_KIND, _SPAN_START, _SPAN_END = _tag(5, 2), _tag(6, 0), _tag(7, 1), _tag(8, 1)
_SPAN_ATTRIBUTE, _SPAN_DROPPED_ATTRIBUTES = _tag(9, 2), _tag(10, 0)
_SPAN_EVENT, _SPAN_DROPPED_EVENTS = _tag(11, 2), _tag(12, 0)
_SPAN_LINK, _SPAN_DROPPED_LINKS = _tag(13, 2), _tag(14, 0)
_SPAN_STATUS, _SPAN_FLAGS = _tag(15, 2), _tag(16, 5)
_EVENT_TIME, _EVENT_NAME, _EVENT_ATTRIBUTE, _EVENT_DROPPED = (
    _tag(1, 1), _tag(2, 2), _tag(3, 2), _tag(4, 0))
_LINK_TRACE_ID, _LINK_SPAN_ID, _LINK_TRACE_STATE, _LINK_ATTRIBUTE, _LINK_DROPPED, _LINK_FLAGS = (
    _tag(1, 2), _tag(2, 2), _tag(3, 2), _tag(4, 2), _tag(5, 0), _tag(6, 5))
_STATUS_MESSAGE, _STATUS_CODE = _tag(2, 2), _tag(3, 0)
_KV_KEY, _KV_VALUE = _tag(1, 2), _tag(2, 2)
_ANY_STRING, _ANY_BOOL, _ANY_INT, _ANY_DOUBLE, _ANY_ARRAY, _ANY_KVLIST, _ANY_BYTES = (
    _tag(1, 2), _tag(2, 0), _tag(3, 0), _tag(4, 1), _tag(5, 2), _tag(6, 2), _tag(7, 2))
_LIST_VALUE = _tag(1, 2)

_SPAN_TRACE_ID_16 = _SPAN_TRACE_ID + b"\x10"
_SPAN_ID_8 = _SPAN_ID + b"\x08"
_SPAN_PARENT_8 = _SPAN_PARENT + b"\x08"
_FLAGS_LOCAL = _SPAN_FLAGS + _pack_fixed32(_HAS_IS_REMOTE)
_FLAGS_REMOTE = _SPAN_FLAGS + _pack_fixed32(_HAS_IS_REMOTE | _IS_REMOTE)
_KIND_FIELD = {kind: _SPAN_KIND + varint(number) for kind, number in _KIND.items()}
_UNSET = UNSET_STATUS
_STATUS_UNSET = _SPAN_STATUS + b"\x00"
# the trace id and span id fields as one 28-byte big-endian number: their tags and lengths
# here, the trace id at bit 80, the span id at bit 0
_IDS_TAGS = int.from_bytes(_SPAN_TRACE_ID_16, "big") << 208 | int.from_bytes(_SPAN_ID_8, "big") << 64
_pack_start_end = struct.Struct("<cQcQ").pack
"""The start and end time fields (one-byte tags, fixed64 values) in one call."""


class SpanEncoder:
    """Writes `ExportTraceServiceRequest`s; keeps what it encoded for the next spans.

    One encoder belongs to one exporter, which calls it from one thread at a time.
    """

    def __init__(self) -> None:
        self._attributes: dict[bytes, dict[str, dict[Any, bytes]]] = {}
        """Encoded attribute fields (tag included) by tag, then by key, then by value: a
        string itself, another value with its type (`True == 1`)."""
        self._names: dict[tuple[str, int], bytes] = {}
        """The name and kind fields, by name and kind."""
        self._last_name: Any = None
        self._last_kind: Any = None
        self._last_name_and_kind = b""
        """The previous span's name and kind and their fields: most spans repeat them."""
        self._resources: dict[int, tuple[Any, bytes]] = {}
        self._scopes: dict[int, tuple[Any, bytes]] = {}

    def encode_request(self, spans: Sequence[ReadableSpan]) -> bytes:
        """The serialised `ExportTraceServiceRequest` carrying `spans`."""
        groups: dict[int, tuple[Any, dict[int, tuple[Any, list[bytes]]]]] = {}
        # spans come in runs of one resource and scope (one provider, one tracer): the
        # group of the previous span is tried first
        last_resource = last_scope = listed = None
        for span in spans:
            try:
                encoded = self.encode_span(span)
            except Exception:  # noqa: BLE001 - one odd span never loses the batch
                logger.exception("OpenTelemetry: could not encode span %r", span.name)
                continue
            if span.__class__ is RecordingSpan:
                resource, scope = span._resource, span._instrumentation_scope
            else:
                resource, scope = span.resource, span.instrumentation_scope
            if listed is None or resource is not last_resource or scope is not last_scope:
                by_scope = groups.get(id(resource))
                if by_scope is None:
                    by_scope = groups[id(resource)] = (resource, {})
                group = by_scope[1].get(id(scope))
                if group is None:
                    group = by_scope[1][id(scope)] = (scope, [])
                listed, last_resource, last_scope = group[1], resource, scope
            listed.append(encoded)
        out = []
        for resource, scopes in groups.values():
            parts = [self._resource(resource)]
            for scope, encoded_spans in scopes.values():
                body = self._scope(scope) + b"".join(encoded_spans)
                schema = getattr(scope, "schema_url", "") or ""
                if schema:
                    body += _field(_SS_SCHEMA, schema.encode())
                parts.append(_field(_RS_SCOPE_SPANS, body))
            if resource.schema_url:
                parts.append(_field(_RS_SCHEMA, resource.schema_url.encode()))
            out.append(_field(_REQUEST_RESOURCE_SPANS, b"".join(parts)))
        self._trim()
        return b"".join(out)

    def encode_span(self, span: ReadableSpan) -> bytes:
        """One `Span` field of a `ScopeSpans` (tag included)."""
        context: Any
        if span.__class__ is RecordingSpan:
            # the runtime's own spans: their fields, without the properties' copies
            context, parent, name, kind = span._context, span._parent, span._name, span._kind
            start, end, status = span._start_time, span._end_time, span._status
            attributes, events, links = span._attributes, span._events, span._links
            dropped_attributes = dropped_events = dropped_links = 0
        else:
            context, parent, name, kind = span.context, span.parent, span.name, span.kind
            start, end, status = span.start_time, span.end_time, span.status
            attributes, events, links = span.attributes, span.events, span.links
            dropped_attributes = span.dropped_attributes
            dropped_events, dropped_links = span.dropped_events, span.dropped_links
        if CONTEXT_IS_TUPLE:
            trace_id, span_id, _, _, trace_state, _ = context
        else:
            trace_id, span_id, trace_state = context.trace_id, context.span_id, context.trace_state
        # name and kind: the same from span to span, encoded once (an Enum hashes in Python)
        if name is self._last_name and kind is self._last_kind:
            name_and_kind = self._last_name_and_kind
        else:
            name_key = (name, id(kind))
            cached = self._names.get(name_key)
            if cached is None:
                cached = self._names[name_key] = (
                    _field(_SPAN_NAME, name.encode()) + _KIND_FIELD[kind])
            name_and_kind = cached
            self._last_name, self._last_kind = name, kind
            self._last_name_and_kind = name_and_kind
        # both id fields, tags included, in one conversion
        parts = [(_IDS_TAGS | trace_id << 80 | span_id).to_bytes(28, "big"), name_and_kind]
        if trace_state is not DEFAULT_TRACE_STATE and trace_state:
            parts.append(_field(_SPAN_TRACE_STATE, _trace_state(trace_state)))
        if parent is None:
            parts.append(_FLAGS_LOCAL)
        else:
            parts.append(_FLAGS_REMOTE if parent.is_remote else _FLAGS_LOCAL)
            parts.append(_SPAN_PARENT_8)
            parts.append(parent.span_id.to_bytes(8, "big"))
        if start and end:
            parts.append(_pack_start_end(_SPAN_START, start, _SPAN_END, end))
        elif start:
            parts.append(_SPAN_START + _pack_fixed64(start))
        elif end:
            parts.append(_SPAN_END + _pack_fixed64(end))
        if attributes:
            self._add_attributes(parts, attributes, _SPAN_ATTRIBUTE)
        if dropped_attributes:
            parts.append(_SPAN_DROPPED_ATTRIBUTES + varint(dropped_attributes))
        for event in events:
            parts.append(_field(_SPAN_EVENT, self._event(event)))
        if dropped_events:
            parts.append(_SPAN_DROPPED_EVENTS + varint(dropped_events))
        for link in links:
            parts.append(_field(_SPAN_LINK, self._link(link)))
        if dropped_links:
            parts.append(_SPAN_DROPPED_LINKS + varint(dropped_links))
        parts.append(_STATUS_UNSET if status is _UNSET else _field(_SPAN_STATUS, _status(status)))
        body = b"".join(parts)
        return _SS_SPANS + _length(len(body)) + body

    def _encode_attributes(self, attributes: Mapping[str, Any], tag: bytes) -> list[bytes]:
        out: list[bytes] = []
        self._add_attributes(out, attributes, tag)
        return out

    def _add_attributes(self, out: list[bytes], attributes: Mapping[str, Any],
                        tag: bytes) -> None:
        cache = self._attributes.get(tag)
        if cache is None:
            cache = self._attributes[tag] = {}
        for key, value in attributes.items():
            kind = value.__class__
            if kind is str or kind is bool or kind is int or kind is float:
                by_value = cache.get(key)
                if by_value is None:
                    by_value = cache[key] = {}
                value_key = value if kind is str else (kind, value)
                encoded = by_value.get(value_key)
                if encoded is None:
                    encoded = by_value[value_key] = tag + _key_value(key, value)
            else:
                try:
                    encoded = tag + _key_value(key, value)
                except (TypeError, ValueError) as error:
                    logger.warning("OpenTelemetry: attribute %r not exported: %s", key, error)
                    continue
            out.append(encoded)

    def _event(self, event: Any) -> bytes:
        parts = [_EVENT_TIME + _pack_fixed64(event.timestamp)] if event.timestamp else []
        if event.name:
            parts.append(_field(_EVENT_NAME, event.name.encode()))
        if event.attributes:
            parts.extend(self._encode_attributes(event.attributes, _EVENT_ATTRIBUTE))
        if event.dropped_attributes:
            parts.append(_EVENT_DROPPED + varint(event.dropped_attributes))
        return b"".join(parts)

    def _link(self, link: Any) -> bytes:
        context = link.context
        parts = [
            _LINK_TRACE_ID, b"\x10", context.trace_id.to_bytes(16, "big"),
            _LINK_SPAN_ID, b"\x08", context.span_id.to_bytes(8, "big"),
        ]
        if link.attributes:
            parts.extend(self._encode_attributes(link.attributes, _LINK_ATTRIBUTE))
        if link.dropped_attributes:
            parts.append(_LINK_DROPPED + varint(link.dropped_attributes))
        flags = _HAS_IS_REMOTE | (_IS_REMOTE if context.is_remote else 0)
        parts.append(_LINK_FLAGS + _pack_fixed32(flags))
        return b"".join(parts)

    def _resource(self, resource: Any) -> bytes:
        cached = self._resources.get(id(resource))
        if cached is None or cached[0] is not resource:
            attributes = b"".join(self._encode_attributes(resource.attributes, _RESOURCE_ATTRIBUTE))
            cached = self._resources[id(resource)] = (resource, _field(_RS_RESOURCE, attributes))
        return cached[1]

    def _scope(self, scope: Any) -> bytes:
        cached = self._scopes.get(id(scope))
        if cached is None or cached[0] is not scope:
            parts = []
            if scope is not None:
                if scope.name:
                    parts.append(_field(_SCOPE_NAME, scope.name.encode()))
                if scope.version:
                    parts.append(_field(_SCOPE_VERSION, scope.version.encode()))
                if scope.attributes:
                    parts.extend(self._encode_attributes(scope.attributes, _SCOPE_ATTRIBUTE))
            cached = self._scopes[id(scope)] = (scope, _field(_SS_SCOPE, b"".join(parts)))
        return cached[1]

    def _trim(self) -> None:
        for by_key in self._attributes.values():
            if sum(len(by_value) for by_value in by_key.values()) > CACHE_LIMIT:
                by_key.clear()
        for cache in (self._names, self._resources, self._scopes):
            if len(cache) > CACHE_LIMIT:
                cache.clear()


def _trace_state(trace_state: Any) -> bytes:
    return ",".join(f"{key}={value}" for key, value in trace_state.items()).encode()


def _status(status: Any) -> bytes:
    if status is None:
        return b""
    parts = []
    if status.description:
        parts.append(_field(_STATUS_MESSAGE, status.description.encode()))
    code = int(status.status_code.value)
    if code:
        parts.append(_STATUS_CODE + varint(code))
    return b"".join(parts)


def _key_value(key: str, value: Any) -> bytes:
    """A `KeyValue` message's length and body (the caller writes the field's tag)."""
    body = _field(_KV_KEY, str(key).encode()) + _field(_KV_VALUE, _any_value(value))
    return _length(len(body)) + body


def _any_value(value: Any) -> bytes:
    if value is None:
        return b""
    if isinstance(value, bool):
        return _ANY_BOOL + (b"\x01" if value else b"\x00")
    if isinstance(value, str):
        return _field(_ANY_STRING, value.encode())
    if isinstance(value, int):
        return _ANY_INT + varint(value & 0xFFFFFFFFFFFFFFFF)
    if isinstance(value, float):
        return _ANY_DOUBLE + _pack_double(value)
    if isinstance(value, bytes):
        return _field(_ANY_BYTES, value)
    if isinstance(value, Sequence):
        return _field(_ANY_ARRAY, b"".join(_field(_LIST_VALUE, _any_value(v)) for v in value))
    if isinstance(value, Mapping):
        return _field(_ANY_KVLIST, b"".join(
            _LIST_VALUE + _key_value(str(k), v) for k, v in value.items()))
    raise TypeError(f"values of type {type(value).__name__} cannot be exported")
