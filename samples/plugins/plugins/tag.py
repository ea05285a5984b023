"""`tag`: an async plugin that records its hooks, to show ordering among plugins."""

from openfunction.plugins import Plugin


class Tag(Plugin):
    name = "tag"

    async def exec_pre_hook(self, ctx, plugins):
        ctx.state.setdefault("hooks", []).append("pre:tag")

    async def exec_post_hook(self, ctx, plugins):
        ctx.state.setdefault("hooks", []).append("post:tag")
