"""The `function` layer: launch-time defaults that say which function to serve.

It holds only env.launch/*.default files (FUNCTION_TARGET, FUNCTION_SOURCE,
FUNCTION_SIGNATURE_TYPE), so variables set when the container starts still win.
It is rewritten on every build (it is a few bytes); an unchanged one exports with the
same digest and is reused.
"""

from __future__ import annotations

import enum

from ofn_buildpack.cnb import BuildContext, LayerEnv, LayerTypes
from ofn_buildpack.function_source import FunctionSpec
from ofn_buildpack.log import Log

LAYER_NAME = "function"


class FunctionLayerErrorKind(enum.Enum):
    WRITE_FAILED = "write-failed"


class FunctionLayerError(Exception):
    def __init__(self, kind: FunctionLayerErrorKind, detail: str) -> None:
        super().__init__(f"{kind.value}: {detail}")
        self.kind = kind
        self.detail = detail


def launch_env(spec: FunctionSpec) -> dict[str, str]:
    env = {
        "FUNCTION_TARGET": spec.target,
        "FUNCTION_SOURCE": spec.source,
        "PYTHONUNBUFFERED": "1",
    }
    if spec.signature_type:
        env["FUNCTION_SIGNATURE_TYPE"] = spec.signature_type
    return env


def contribute(ctx: BuildContext, spec: FunctionSpec, log: Log) -> None:
    layer = ctx.layer(LAYER_NAME)
    values = launch_env(spec)
    env = LayerEnv()
    for name, value in values.items():
        env.default(name, value, scope="env.launch")
    try:
        layer.reset()
        layer.set_env(env)
        layer.write_metadata(LayerTypes(launch=True), {k.lower(): v for k, v in values.items()})
    except OSError as exc:
        raise FunctionLayerError(FunctionLayerErrorKind.WRITE_FAILED, str(exc)) from None
    shown = ", ".join(f"{k}={v}" for k, v in values.items() if k.startswith("FUNCTION_"))
    log.step(f"Launch defaults: {shown}")
