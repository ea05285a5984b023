"""Function plugins: code that runs before and after every invocation."""

from openfunction.errors import FrameworkError, PluginError
from openfunction.invocation import Invocation as PluginContext
from openfunction.loader import user_traceback
from openfunction.plugins.base import Plugin
from openfunction.plugins.pipeline import Pipeline, PluginSet, PreHookFailed
from openfunction.plugins.registry import PluginResolver

__all__ = ["Plugin", "PluginContext", "PluginSet", "Pipeline", "PluginResolver", "PreHookFailed"]


def build_pipeline(config, source_dir=None) -> Pipeline:  # type: ignore[no-untyped-def]
    """Resolve the configured plugins and call their `setup` once."""
    resolver = PluginResolver(source_dir)
    pre = resolver.resolve_all(config.pre_plugins, config.pre_field)
    post = resolver.resolve_all(config.post_plugins, config.post_field)
    for plugin in {id(p): p for p in [*pre, *post]}.values():
        try:
            plugin.setup(config)
        except FrameworkError:
            raise
        except Exception as exc:  # noqa: BLE001 - the plugin's code: reported, not a traceback
            raise PluginError(
                f"plugin {plugin.name!r} failed to set up",
                user_traceback(exc),
                "fix the plugin's setup() or its configuration",
            ) from None
    return Pipeline(pre, post)
