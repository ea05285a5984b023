"""A small TOML writer for the files a buildpack writes (layer metadata, launch.toml, plans).

Reading uses the standard library's `tomllib`; Python has no TOML writer, and the
buildpack runs before anything is installed, so it carries this one. It writes
tables, arrays of tables, strings, integers, floats, booleans and arrays of those.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path

Value = object

_ESCAPES = {
    "\\": "\\\\",
    '"': '\\"',
    "\b": "\\b",
    "\t": "\\t",
    "\n": "\\n",
    "\f": "\\f",
    "\r": "\\r",
}


def dumps(document: Mapping[str, Value]) -> str:
    """The TOML text of `document` (a mapping of str to TOML-representable values)."""
    lines: list[str] = []
    _write_table(lines, (), document)
    return "\n".join(lines).strip("\n") + "\n"


def dump(document: Mapping[str, Value], path: Path) -> None:
    path.write_text(dumps(document), encoding="utf-8")


def _is_table(value: Value) -> bool:
    return isinstance(value, Mapping)


def _is_table_array(value: Value) -> bool:
    return (
        isinstance(value, Sequence)
        and not isinstance(value, (str, bytes))
        and len(value) > 0
        and all(isinstance(item, Mapping) for item in value)
    )


def _write_table(lines: list[str], path: tuple[str, ...], table: Mapping[str, Value]) -> None:
    # plain keys first, then sub-tables and arrays of tables, as TOML requires
    for key, value in table.items():
        if value is None or _is_table(value) or _is_table_array(value):
            continue
        lines.append(f"{_key(key)} = {_value(value)}")
    for key, value in table.items():
        if _is_table(value):
            assert isinstance(value, Mapping)
            lines.append("")
            lines.append(f"[{_dotted(path + (key,))}]")
            _write_table(lines, path + (key,), value)
        elif _is_table_array(value):
            assert isinstance(value, Sequence)
            for item in value:
                lines.append("")
                lines.append(f"[[{_dotted(path + (key,))}]]")
                _write_table(lines, path + (key,), item)


def _dotted(path: tuple[str, ...]) -> str:
    return ".".join(_key(part) for part in path)


def _key(key: str) -> str:
    if key and all(c.isascii() and (c.isalnum() or c in "-_") for c in key):
        return key
    return _string(key)


def _string(text: str) -> str:
    out = []
    for char in text:
        if char in _ESCAPES:
            out.append(_ESCAPES[char])
        elif ord(char) < 0x20 or ord(char) == 0x7F:
            out.append(f"\\u{ord(char):04x}")
        else:
            out.append(char)
    return '"' + "".join(out) + '"'


def _value(value: Value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, str):
        return _string(value)
    if isinstance(value, Mapping):  # inline table inside an array
        inner = ", ".join(f"{_key(k)} = {_value(v)}" for k, v in value.items() if v is not None)
        return "{" + inner + "}"
    if isinstance(value, Sequence) and not isinstance(value, bytes):
        return "[" + ", ".join(_value(item) for item in value) + "]"
    raise TypeError(f"cannot write {type(value).__name__} as TOML: {value!r}")
