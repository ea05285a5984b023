"""Resolve plugin names listed in `prePlugins` / `postPlugins` to plugin objects.

Each name is looked up, in this order:

1. the built-in plugins (`logger`, `counter`, `skywalking`, `opentelemetry`);
2. Python entry points in the group `openfunction.plugins` (a pip-installed plugin);
3. a `module:Class` path (`mypkg.plugins:Audit`);
4. a `plugins/` package next to the function source: the module `plugins/<name>.py`
   (dashes read as underscores), or any module there defining a plugin whose `name`
   is the listed name.

A plugin is known to the others (`plugins[name]`) by its `name`, so two different plugins
with one `name` stop start-up; two listings that resolve to the same plugin class run it
once, as a name listed twice does.
"""

from __future__ import annotations

import importlib
import inspect
import logging
import pkgutil
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable

from openfunction.errors import PluginError
from openfunction.loader import user_traceback
from openfunction.plugins.base import Plugin

if TYPE_CHECKING:
    from importlib.metadata import EntryPoint

logger = logging.getLogger("openfunction.plugins")

ENTRY_POINT_GROUP = "openfunction.plugins"

BUILTINS: dict[str, str] = {
    "logger": "openfunction.plugins.builtin:InvocationLogger",
    "counter": "openfunction.plugins.builtin:InvocationCounter",
    "skywalking": "openfunction.tracing.skywalking:SkyWalkingPlugin",
    "opentelemetry": "openfunction.tracing.opentelemetry:OpenTelemetryPlugin",
}


class PluginResolver:
    def __init__(self, source_dir: Path | None = None) -> None:
        self.source_dir = source_dir
        self._cache: dict[str, Plugin] = {}
        self._by_class: dict[type, Plugin] = {}
        self._by_name: dict[str, tuple[str, Plugin]] = {}
        """Each resolved plugin by its `name`, with the name it was listed as."""
        self._entry_points: dict[str, EntryPoint] | None = None
        self._broken: dict[str, str] = {}
        """Modules of the `plugins/` folder that failed to import while looking for a name."""

    def resolve_all(self, names: Iterable[str], listing: str) -> list[Plugin]:
        """Resolve a list, dropping repeated plugins (with a warning)."""
        result: list[Plugin] = []
        for name in names:
            plugin = self.resolve(name, listing)
            if any(plugin is other for other in result):
                logger.warning("plugin %r is listed twice in %s; it runs once", name, listing)
                continue
            result.append(plugin)
        return result

    def resolve(self, name: str, listing: str = "plugins") -> Plugin:
        if not name.strip():
            raise PluginError(
                f"an empty plugin name in {listing}",
                "each entry names a plugin.",
                f"remove the empty entry from {listing}",
            )
        if name in self._cache:
            return self._cache[name]
        obj = self._find(name, listing)
        plugin = self._by_class.get(obj) if inspect.isclass(obj) else None
        if plugin is None:
            plugin = _instantiate(obj, name, listing)
            if inspect.isclass(obj):
                self._by_class[obj] = plugin
        self._check_unique(plugin, name, listing)
        self._cache[name] = plugin
        return plugin

    def _check_unique(self, plugin: Plugin, listed: str, listing: str) -> None:
        key = plugin.name or listed
        first = self._by_name.setdefault(key, (listed, plugin))
        if first[1] is not plugin:
            raise PluginError(
                f"plugins {first[0]!r} and {listed!r} in {listing} are both named {key!r}",
                f"{_describe(first[1])} and {_describe(plugin)} have the same `name`; the "
                "other plugins know a plugin by its name (plugins[name]), so it must be unique.",
                "give one of the classes another `name`, or list only one of them",
            )

    def _find(self, name: str, listing: str) -> Any:
        if name in BUILTINS:
            return _import_path(BUILTINS[name], name, listing)
        entry = self._entry_point_map().get(name)
        if entry is not None:
            try:
                return entry.load()
            except Exception as exc:  # noqa: BLE001
                raise PluginError(
                    f"plugin {name!r} (entry point {entry.value}) failed to load",
                    user_traceback(exc),
                    "fix the plugin package or remove it from " + listing,
                ) from None
        if ":" in name:
            return _import_path(name, name, listing)
        found = self._from_source_dir(name, listing)
        if found is not None:
            return found
        broken = "".join(
            f"\nplugins/{module} could not be imported, so it was not searched:\n{error}"
            for module, error in self._broken.items()
        )
        raise PluginError(
            f"unknown plugin {name!r} in {listing}",
            f"plugins found: {', '.join(self.available()) or '(none)'}.{broken}",
            "install the plugin's package, add plugins/<name>.py next to your function, "
            "or list it as module:Class" + (", and fix the import error above" if broken else ""),
        )

    def available(self) -> list[str]:
        """The names that resolve: built-ins, entry points and the plugins the `plugins/`
        folder defines (as far as its modules import)."""
        names = set(BUILTINS) | set(self._entry_point_map())
        folder = self._folder()
        if folder is not None:
            for info in pkgutil.iter_modules([str(folder)]):
                module = sys.modules.get(f"plugins.{info.name}")
                if module is None:
                    continue
                classes = _plugin_classes(module)
                names.update(cls.name for cls in classes if cls.name)
                if len(classes) == 1 and not classes[0].name:
                    names.add(info.name)
        return sorted(names)

    def _folder(self) -> Path | None:
        if self.source_dir is None:
            return None
        folder = self.source_dir / "plugins"
        return folder if folder.is_dir() else None

    def _entry_point_map(self) -> dict[str, EntryPoint]:
        if self._entry_points is None:
            from importlib import metadata  # costly to import; only when a name needs it

            eps = metadata.entry_points(group=ENTRY_POINT_GROUP)
            self._entry_points = {ep.name: ep for ep in eps}
        return self._entry_points

    def _from_source_dir(self, name: str, listing: str) -> Any:
        folder = self._folder()
        if folder is None:
            return None
        if str(self.source_dir) not in sys.path:
            sys.path.insert(0, str(self.source_dir))
        module_name = name.replace("-", "_")
        own = (folder / f"{module_name}.py").is_file() or (
            folder / module_name / "__init__.py").is_file()
        modules = [module_name] if own else []
        modules += [i.name for i in pkgutil.iter_modules([str(folder)]) if i.name != module_name]
        for mod in modules:
            try:
                module = _import_module(f"plugins.{mod}", name, listing)
            except PluginError as exc:
                if mod == module_name:
                    raise  # plugins/<name>.py itself: the plugin the list means
                self._broken[f"{mod}.py"] = exc.detail
                continue
            classes = _plugin_classes(module)
            named = [cls for cls in classes if cls.name == name]
            if named:
                return named[0]
            if mod == module_name and len(classes) == 1:
                return classes[0]
            if mod == module_name:
                raise PluginError(
                    f"plugin {name!r} in {listing}: plugins/{mod}.py does not say which plugin "
                    "it is",
                    f"it defines {len(classes)} plugin classes"
                    + (f" ({', '.join(c.__name__ for c in classes)})" if classes else "")
                    + f", none of them with name = {name!r}.",
                    f'set name = "{name}" on the plugin class (a subclass of '
                    "openfunction.plugins.Plugin) it should run",
                )
        return None


def _plugin_classes(module: Any) -> list[type[Plugin]]:
    """The plugin classes a module defines (not those it imports)."""
    return [
        obj for obj in vars(module).values()
        if inspect.isclass(obj) and issubclass(obj, Plugin) and obj is not Plugin
        and obj.__module__ == module.__name__
    ]


def _describe(plugin: Plugin) -> str:
    inner = getattr(plugin, "_inner", plugin)
    kind = type(inner)
    return f"{kind.__module__}.{kind.__qualname__}"


def _import_module(module_name: str, name: str, listing: str) -> Any:
    try:
        return importlib.import_module(module_name)
    except ImportError as exc:
        if module_name.startswith("openfunction.") and exc.name and not exc.name.startswith(
            "openfunction"
        ):
            raise PluginError(
                f"plugin {name!r} needs the package {exc.name!r}, which is not installed",
                str(exc),
                "install openfunction-functions-framework[all] (the buildpack does)",
            ) from None
        raise PluginError(
            f"plugin {name!r} in {listing} cannot be imported",
            user_traceback(exc),
            "check the module path, or install the package that provides it",
        ) from None
    except Exception as exc:  # noqa: BLE001
        raise PluginError(
            f"plugin {name!r}: importing {module_name} failed",
            user_traceback(exc),
            "fix the error above in the plugin's code",
        ) from None


def _import_path(path: str, name: str, listing: str) -> Any:
    module_name, _, attr = path.partition(":")
    module = _import_module(module_name, name, listing)
    try:
        return getattr(module, attr)
    except AttributeError:
        raise PluginError(
            f"plugin {name!r}: {module_name} has no attribute {attr!r}",
            f"{listing} names {path}.",
            "use module:Class with a class that exists",
        ) from None


def _instantiate(obj: Any, name: str, listing: str) -> Plugin:
    if inspect.isclass(obj):
        try:
            obj = obj()
        except Exception as exc:  # noqa: BLE001
            raise PluginError(
                f"plugin {name!r} could not be created",
                user_traceback(exc),
                "a plugin class must be constructible without arguments",
            ) from None
    missing = [m for m in ("exec_pre_hook", "exec_post_hook") if not callable(getattr(obj, m, None))]
    if missing:
        raise PluginError(
            f"{name!r} in {listing} is not a plugin",
            f"{type(obj).__name__} lacks {', '.join(missing)}.",
            "subclass openfunction.plugins.Plugin",
        )
    if not isinstance(obj, Plugin):
        obj = _Adapter(obj)
    if not getattr(obj, "name", ""):
        try:
            obj.name = name  # type: ignore[misc]
        except AttributeError:
            pass
    return obj


class _Adapter(Plugin):
    """Wraps a duck-typed plugin object (one that does not subclass Plugin)."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner
        self.__dict__["name"] = getattr(inner, "name", "")

    def init(self) -> Plugin:
        init = getattr(self._inner, "init", None)
        return _Adapter(init() if callable(init) else self._inner)

    def exec_pre_hook(self, ctx: Any, plugins: Any) -> Any:
        return self._inner.exec_pre_hook(ctx, plugins)

    def exec_post_hook(self, ctx: Any, plugins: Any) -> Any:
        return self._inner.exec_post_hook(ctx, plugins)

    def get(self, key: str) -> Any:
        get = getattr(self._inner, "get", None)
        return get(key) if callable(get) else None
