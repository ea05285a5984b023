"""Function plugins: code that runs before and after every invocation."""

from openfunction.invocation import Invocation as PluginContext
from openfunction.plugins.base import Plugin
from openfunction.plugins.pipeline import Pipeline, PluginSet, PreHookFailed
from openfunction.plugins.registry import PluginResolver

__all__ = ["Plugin", "PluginContext", "PluginSet", "Pipeline", "PluginResolver", "PreHookFailed"]


def build_pipeline(config, source_dir=None) -> Pipeline:  # type: ignore[no-untyped-def]
    """Resolve the configured plugins and call their `setup` once."""
    resolver = PluginResolver(source_dir)
    pre = resolver.resolve_all(config.pre_plugins, "prePlugins")
    post = resolver.resolve_all(config.post_plugins, "postPlugins")
    for plugin in {id(p): p for p in [*pre, *post]}.values():
        plugin.setup(config)
    return Pipeline(pre, post)
