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


@pytest.fixture
def plugins_folder(tmp_path):
    """A `plugins/` folder next to a source; its modules are forgotten afterwards."""
    folder = tmp_path / "plugins"
    folder.mkdir()

    def write(module, text):
        (folder / f"{module}.py").write_text(textwrap.dedent(text))

    yield write
    for mod in [m for m in sys.modules if m == "plugins" or m.startswith("plugins.")]:
        del sys.modules[mod]


TWO_PLUGINS = """
    from openfunction.plugins import Plugin
    class A(Plugin):
        name = "fail-pre"
    class B(Plugin):
        name = "slow"
"""


def test_unknown_name_lists_the_names_the_folder_defines(tmp_path, plugins_folder):
    plugins_folder("misc", TWO_PLUGINS)
    with pytest.raises(PluginError) as info:
        PluginResolver(tmp_path).resolve("nope", "prePlugins")
    found = str(info.value).split("plugins found: ")[1].split(".")[0].split(", ")
    assert "fail-pre" in found and "slow" in found and "misc" not in found


def test_a_module_without_the_named_plugin_says_so(tmp_path, plugins_folder):
    plugins_folder("misc", TWO_PLUGINS)
    with pytest.raises(PluginError) as info:
        PluginResolver(tmp_path).resolve("misc", "prePlugins")
    text = str(info.value)
    assert "plugins/misc.py does not say which plugin it is" in text
    assert "(A, B)" in text and 'name = "misc"' in text


def test_a_broken_module_does_not_hide_an_unknown_name(tmp_path, plugins_folder):
    plugins_folder("broken", "def oops(:\n")
    with pytest.raises(PluginError) as info:
        PluginResolver(tmp_path).resolve("nope", "postPlugins")
    text = str(info.value)
    assert text.startswith("unknown plugin 'nope' in postPlugins")
    assert "plugins/broken.py could not be imported" in text and "SyntaxError" in text


def test_the_module_named_like_the_plugin_reports_its_own_import_error(tmp_path, plugins_folder):
    plugins_folder("audit", "raise RuntimeError('audit import exploded')\n")
    with pytest.raises(PluginError, match="audit import exploded"):
        PluginResolver(tmp_path).resolve("audit", "prePlugins")


def test_two_plugins_with_one_name_stop_start_up(tmp_path, plugins_folder):
    for module, cls in (("dup_a", "A"), ("dup_b", "B")):
        plugins_folder(module, f"""
            from openfunction.plugins import Plugin
            class {cls}(Plugin):
                name = "dup"
        """)
    with pytest.raises(PluginError) as info:
        PluginResolver(tmp_path).resolve_all(["dup-a", "dup-b"], "postPlugins")
    text = str(info.value)
    assert "plugins 'dup-a' and 'dup-b' in postPlugins are both named 'dup'" in text
    assert "plugins.dup_a.A" in text and "plugins.dup_b.B" in text


def test_two_listings_of_one_class_run_it_once(tmp_path, plugins_folder, caplog):
    plugins_folder("audit", """
        from openfunction.plugins import Plugin
        class Audit(Plugin):
            name = "different"
    """)
    resolver = PluginResolver(tmp_path)
    plugins = resolver.resolve_all(["audit", "different"], "prePlugins")
    assert [p.name for p in plugins] == ["different"]
    assert "listed twice" in caplog.text


def test_an_empty_name_is_refused(tmp_path):
    with pytest.raises(PluginError, match="an empty plugin name in preHooks"):
        PluginResolver(tmp_path).resolve_all([""], "preHooks")


def test_a_failing_setup_names_the_plugin(tmp_path, plugins_folder):
    from openfunction.config import FunctionConfig
    from openfunction.plugins import build_pipeline

    plugins_folder("needy", """
        from openfunction.plugins import Plugin
        class Needy(Plugin):
            name = "needy"
            def setup(self, config):
                {}["missing_key"]
    """)
    config = FunctionConfig(pre_plugins=("needy",))
    with pytest.raises(PluginError) as info:
        build_pipeline(config, tmp_path)
    text = str(info.value)
    assert text.startswith("plugin 'needy' failed to set up")
    assert "KeyError: 'missing_key'" in text and "needy.py" in text
