"""Keep the garbage collector off what start-up made.

Modules, the loaded function, plugins and the tracing SDKs (gRPC, protobuf, the agent)
live as long as the process: hundreds of thousands of objects that every full collection
would walk again while the function serves. `freeze_startup_objects` collects once and
moves them to the permanent generation (`gc.freeze`), so collections made while serving
only walk what serving made. Called once, just before the server starts.
"""

from __future__ import annotations

import gc


def freeze_startup_objects() -> int:
    """Collect, then exclude every object alive now from future collections; their number."""
    gc.collect()
    gc.freeze()
    return gc.get_freeze_count()
