"""Which plugins get a fresh instance for every invocation, and which can share one.

A plugin whose hooks set attributes on `self` keeps per-invocation state: each invocation
gets its own instance from `init()`, so two concurrent invocations never see each other's
attributes. A plugin whose methods never set an attribute (a no-op, a logger writing only
to `ctx`, a counter updating a shared object) can safely serve every invocation with the
one instance made at start-up, which saves the copy on the hot path.

The decision, made once per plugin at start-up:

* `per_invocation = True` / `False` on the class: as declared.
* a class that overrides `init()`: `init()` is always called.
* otherwise the code of the class's methods (and of its bases below `Plugin`) is read: any
  attribute assignment or deletion, or any use of `setattr`, `delattr`, `__dict__`, `vars`,
  `exec` or `eval`, outside `__init__`, `setup` and `close` (run once), means per-invocation
  instances.

A shared instance is watched: should it set an attribute anyway (from a helper function
the scan cannot see), the write goes through, a warning names the plugin and the fix, and
from then on the plugin gets per-invocation instances.
"""

from __future__ import annotations

import dis
import logging
import types
from typing import Any, Callable, Iterator

from openfunction.plugins.base import Plugin

logger = logging.getLogger("openfunction.plugins")

_WRITES = frozenset({"STORE_ATTR", "DELETE_ATTR"})
_WRITING_NAMES = frozenset({"setattr", "delattr", "__dict__", "__setattr__", "__delattr__",
                            "vars", "exec", "eval"})
_ONCE_METHODS = frozenset({"__init__", "setup", "close", "__init_subclass__", "__set_name__"})


def needs_own_instance(plugin: Plugin) -> bool:
    """True when `plugin` must be copied (`init()`) for every invocation."""
    cls = type(plugin)
    declared = getattr(cls, "per_invocation", None)
    if declared is not None:
        return bool(declared)
    if cls.init is not Plugin.init:
        return True
    return any(_writes_attributes(code) for code in _method_code(cls))


def _method_code(cls: type) -> Iterator[Any]:
    for klass in cls.__mro__:
        if klass is Plugin or klass is object:
            continue
        for name, member in vars(klass).items():
            if name in _ONCE_METHODS:
                continue
            yield from _code_of(member)


def _code_of(member: Any) -> Iterator[Any]:
    if isinstance(member, (staticmethod, classmethod)):
        member = member.__func__
    if isinstance(member, property):
        for accessor in (member.fget, member.fset, member.fdel):
            if accessor is not None:
                yield from _code_of(accessor)
        return
    if isinstance(member, types.FunctionType):
        yield member.__code__
    elif callable(member) and not isinstance(member, type):
        # a callable the scan cannot read (a partial, a C function bound as a method)
        yield None


def _writes_attributes(code: types.CodeType | None) -> bool:
    if code is None:
        return True
    if _WRITING_NAMES.intersection(code.co_names):
        return True
    if any(instruction.opname in _WRITES for instruction in dis.get_instructions(code)):
        return True
    return any(
        _writes_attributes(const) for const in code.co_consts if isinstance(const, types.CodeType)
    )


# ------------------------------------------------------------------------ watching


def watch_shared(plugin: Plugin, on_write: Callable[[Plugin], None]) -> None:
    """Call `on_write(plugin)` the first time a hook sets or deletes an attribute on it."""
    original = type(plugin)

    def _switch(self: Plugin, attribute: str) -> None:
        object.__setattr__(self, "__class__", original)
        logger.warning(
            "plugin %r set attribute %r on the instance shared by all invocations; it gets "
            "its own instance per invocation from now on. Set `per_invocation = True` on %s "
            "to say so from the start.",
            self.name, attribute, original.__qualname__,
        )
        on_write(self)

    def __setattr__(self: Plugin, attribute: str, value: Any) -> None:
        _switch(self, attribute)
        setattr(self, attribute, value)

    def __delattr__(self: Plugin, attribute: str) -> None:
        _switch(self, attribute)
        delattr(self, attribute)

    watched = type(original.__name__, (original,), {
        "__setattr__": __setattr__,
        "__delattr__": __delattr__,
        "__module__": original.__module__,
        "__qualname__": original.__qualname__,
        "_watched_class": original,
    })
    object.__setattr__(plugin, "__class__", watched)


def unwatch(plugin: Plugin) -> None:
    """Give a watched plugin its own class back (before `close()`, which may set attributes)."""
    original = type(plugin).__dict__.get("_watched_class")
    if original is not None:
        object.__setattr__(plugin, "__class__", original)
