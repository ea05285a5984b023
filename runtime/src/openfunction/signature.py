"""Signature types, and the decorators that declare them on a function.

    import openfunction

    @openfunction.http
    def hello(request): ...

    @openfunction.cloud_event
    def on_event(event): ...

    @openfunction.function
    def handler(ctx, data): ...
"""

from __future__ import annotations

from enum import Enum
from typing import Callable, TypeVar

F = TypeVar("F", bound=Callable[..., object])

_ATTRIBUTE = "__openfunction_signature__"


class SignatureType(str, Enum):
    HTTP = "http"
    CLOUDEVENT = "cloudevent"
    OPENFUNCTION = "openfunction"

    def __str__(self) -> str:
        return self.value

    @property
    def arguments(self) -> tuple[str, ...]:
        """The positional arguments the runner passes: `func(request)`, `func(event)` or
        `func(ctx, data)`."""
        return _ARGUMENTS[self]

    @property
    def decorator(self) -> str:
        """The decorator that declares this signature type on a function."""
        return _DECORATORS[self]

    @classmethod
    def parse(cls, text: str) -> "SignatureType":
        value = text.strip().lower().replace("_", "").replace("-", "")
        aliases = {"http": cls.HTTP, "cloudevent": cls.CLOUDEVENT, "event": cls.CLOUDEVENT,
                   "openfunction": cls.OPENFUNCTION, "function": cls.OPENFUNCTION}
        try:
            return aliases[value]
        except KeyError:
            raise ValueError(text) from None


_ARGUMENTS: dict[SignatureType, tuple[str, ...]] = {
    SignatureType.HTTP: ("request",),
    SignatureType.CLOUDEVENT: ("event",),
    SignatureType.OPENFUNCTION: ("ctx", "data"),
}

_DECORATORS: dict[SignatureType, str] = {
    SignatureType.HTTP: "@openfunction.http",
    SignatureType.CLOUDEVENT: "@openfunction.cloud_event",
    SignatureType.OPENFUNCTION: "@openfunction.function",
}


def _declare(signature: SignatureType) -> Callable[[F], F]:
    def decorator(func: F) -> F:
        setattr(func, _ATTRIBUTE, signature)
        return func

    return decorator


def http(func: F) -> F:
    """Serve `func(request)` for plain HTTP requests."""
    return _declare(SignatureType.HTTP)(func)


def cloud_event(func: F) -> F:
    """Serve `func(event)` for CloudEvents (binary or structured mode)."""
    return _declare(SignatureType.CLOUDEVENT)(func)


def function(func: F) -> F:
    """Serve `func(ctx, data)`: the OpenFunction signature (sync HTTP or async Dapr events)."""
    return _declare(SignatureType.OPENFUNCTION)(func)


def declared_signature(func: object) -> SignatureType | None:
    value = getattr(func, _ATTRIBUTE, None)
    return value if isinstance(value, SignatureType) else None
