"""An Async function: each tick of a cron input binding is written to Redis.

    cron (bindings.cron, every 2s)  ->  tick(ctx, data)  ->  sink (bindings.redis, key "last-tick")

`ctx.send` returns once the Redis binding has stored the value; only then is the tick
acknowledged. If the send fails, the function raises and the tick is reported as failed
(a cron binding does not redeliver: the next tick comes on schedule).
"""

from datetime import datetime, timezone


def tick(ctx, data):
    record = {
        "function": ctx.name,
        "input": ctx.input_name,
        "at": datetime.now(timezone.utc).isoformat(timespec="milliseconds"),
    }
    ctx.send(record, "sink")
