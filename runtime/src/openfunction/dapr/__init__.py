"""Dapr for OpenFunction functions: the Async runtime, outputs, state, inner events.

What a function may import from here is light (no gRPC, no protobuf):

    from openfunction.dapr import Drop, Retry

    def handler(ctx, data):
        if "id" not in data:
            return Drop("no id: this event can never be processed")
        if not ready():
            return Retry("downstream not ready")
        ...

The rest is loaded by the framework when the function's configuration has inputs,
outputs or states (`openfunction.dapr.services`, `openfunction.dapr.server`).
"""

from openfunction.dapr.outcome import Drop, Retry

__all__ = ["Drop", "Retry"]
