"""A sync (Knative) function: takes an order over HTTP and publishes it to the `orders` topic.

With tracing on, its span continues the caller's trace (`sw8` or `traceparent` header) and
the published message carries the trace on to `order-handler`.
"""


def accept(ctx, data):
    order = {"item": (data or {}).get("item", "book"), "quantity": (data or {}).get("quantity", 1)}
    ctx.send(order, "orders")
    return {"accepted": order}
