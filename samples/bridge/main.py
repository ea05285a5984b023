"""A sync function feeding an async one through a topic (the sync-to-async bridge).

    POST /  ->  order(ctx, data)  --ctx.send-->  topic "orders"  ->  fulfil(ctx, data)  ->  Redis

`order` is a Knative (HTTP) function with a Dapr output: `ctx.send` publishes through the
sidecar and returns once the topic has the message, so a 200 means the order is queued.
`fulfil` is an Async function subscribed to the topic; it acknowledges a message only
after its own output succeeded, and asks for a redelivery (`Retry`) when it cannot
handle the message yet. Both live in this file; each Function CR picks one (FUNC_NAME).
"""

import openfunction
from openfunction.dapr import Drop


@openfunction.function
def order(ctx, data):
    if not isinstance(data, dict) or not data.get("item"):
        return {"error": 'send JSON such as {"item": "book", "quantity": 2}'}, 400
    message = {"item": data["item"], "quantity": int(data.get("quantity", 1))}
    ctx.send(message, "orders")
    return {"queued": message}


@openfunction.function
def fulfil(ctx, data):
    if not isinstance(data, dict) or "item" not in data:
        return Drop(f"not an order: {data!r}")  # never deliverable: do not retry it
    ctx.send({"fulfilled": data["item"], "quantity": data["quantity"]}, "ledger")
