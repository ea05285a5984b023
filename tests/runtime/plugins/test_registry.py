import sys
import textwrap
from importlib import metadata

import pytest

from openfunction.errors import PluginError
from openfunction.plugins import PluginResolver
from openfunction.plugins.builtin import InvocationCounter, InvocationLogger


def test_builtins():
    resolver = PluginResolver()
    assert isinstance(resolver.resolve("logger"), InvocationLogger)
    assert isinstance(resolver.resolve("counter"), InvocationCounter)


def test_module_class_path(tmp_path, monkeypatch):
    (tmp_path / "myplugins_mod.py").write_text(textwrap.dedent("""
        from openfunction.plugins import Plugin
        class Audit(Plugin):
            name = "audit"
    """))
    monkeypatch.syspath_prepend(str(tmp_path))
    plugin = PluginResolver().resolve("myplugins_mod:Audit")
    assert plugin.name == "audit"


def test_plugins_folder_next_to_source(tmp_path):
    folder = tmp_path / "plugins"
    folder.mkdir()
    (folder / "stamp.py").write_text(textwrap.dedent("""
        from openfunction.plugins import Plugin
        class Stamp(Plugin):
            name = "stamp"
    """))
    (folder / "misc.py").write_text(textwrap.dedent("""
        from openfunction.plugins import Plugin
        class Other(Plugin):
            name = "other-name"
    """))
    resolver = PluginResolver(tmp_path)
    try:
        assert resolver.resolve("stamp").name == "stamp"
        assert resolver.resolve("other-name").name == "other-name"
    finally:
        for mod in [m for m in sys.modules if m == "plugins" or m.startswith("plugins.")]:
            del sys.modules[mod]


def test_entry_point(monkeypatch):
    class FromPackage:
        name = "from-pkg"

        def exec_pre_hook(self, ctx, plugins):
            pass

        def exec_post_hook(self, ctx, plugins):
            pass

    entry = metadata.EntryPoint("from-pkg", "x:y", "openfunction.plugins")
    monkeypatch.setattr(metadata.EntryPoint, "load", lambda self: FromPackage)
    monkeypatch.setattr(metadata, "entry_points", lambda group=None: [entry])
    plugin = PluginResolver().resolve("from-pkg")
    assert plugin.name == "from-pkg" and callable(plugin.init)


def test_builtin_wins_over_entry_point(monkeypatch):
    entry = metadata.EntryPoint("logger", "x:y", "openfunction.plugins")
    monkeypatch.setattr(metadata, "entry_points", lambda group=None: [entry])
    assert isinstance(PluginResolver().resolve("logger"), InvocationLogger)


def test_unknown_name_lists_what_exists(tmp_path):
    with pytest.raises(PluginError) as info:
        PluginResolver(tmp_path).resolve("nope", "prePlugins")
    text = str(info.value)
    assert "unknown plugin 'nope' in prePlugins" in text
    assert "logger" in text and "counter" in text


def test_duplicates_run_once(caplog):
    plugins = PluginResolver().resolve_all(["logger", "counter", "logger"], "prePlugins")
    assert [p.name for p in plugins] == ["logger", "counter"]
    assert "listed twice" in caplog.text


def test_not_a_plugin(tmp_path, monkeypatch):
    (tmp_path / "notplugin_mod.py").write_text("class Thing:\n    pass\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(PluginError, match="is not a plugin"):
        PluginResolver().resolve("notplugin_mod:Thing")


def test_broken_plugin_module_shows_its_traceback(tmp_path, monkeypatch):
    (tmp_path / "broken_mod.py").write_text("raise RuntimeError('plugin import exploded')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(PluginError) as info:
        PluginResolver().resolve("broken_mod:X")
    assert "plugin import exploded" in str(info.value)
