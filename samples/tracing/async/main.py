"""An async function: handles the orders `order-front` publishes, in the same trace."""

import logging

logger = logging.getLogger("order-handler")


def handle(ctx, data):
    plugins = ctx.invocation.plugins
    trace_id = plugins and (plugins.value("skywalking", "trace_id")
                            or plugins.value("opentelemetry", "trace_id"))
    logger.info("order %s (trace %s)", data, trace_id or "-")
