"""`audit`: times each invocation and reports it in response headers.

Listed in both prePlugins and postPlugins, it records when the invocation started (pre)
and, after the function, adds `x-audit-duration-ms` and `x-audit-hooks` (the hooks that
ran for this invocation, in order) to the HTTP response.
"""

import time

from openfunction.plugins import Plugin


class Audit(Plugin):
    name = "audit"
    version = "v1"

    def exec_pre_hook(self, ctx, plugins):
        self.started = time.perf_counter()
        ctx.state.setdefault("hooks", []).append("pre:audit")

    def exec_post_hook(self, ctx, plugins):
        ctx.state.setdefault("hooks", []).append("post:audit")
        if ctx.response is not None:
            elapsed_ms = (time.perf_counter() - self.started) * 1000
            ctx.response.headers["x-audit-duration-ms"] = f"{elapsed_ms:.3f}"
            ctx.response.headers["x-audit-hooks"] = ",".join(ctx.state["hooks"])
            invocations = plugins.value("counter", "invocations")
            if invocations is not None:
                ctx.response.headers["x-audit-invocations"] = str(invocations)

    def get(self, key):
        return getattr(self, key, None)
