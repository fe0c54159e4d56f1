"""Hooks: every hookspec documented, pending hooks checked, plugins loaded one by one, throwaway plugins."""
import importlib.metadata
import inspect
import re
import sys
from pathlib import Path

import pluggy
import pytest
from markupsafe import Markup

from callrec_plugin.hooks import extension as extension_specs, host as host_specs, hookimpl
from callrec_plugin.manager import BUILTIN_PLUGINS, PluginLoadError, load_entry_point_plugins, make_plugin_manager

README = Path(__file__).resolve().parent.parent / "README.md"


def hookspecs():
    for module in (host_specs, extension_specs):
        for name, function in inspect.getmembers(module, inspect.isfunction):
            if name.startswith("callrec_"):
                yield name, function


@pytest.mark.parametrize("name,function", list(hookspecs()), ids=lambda value: getattr(value, "__name__", value))
def test_every_hookspec_is_in_the_readme_hook_reference(name, function):
    signature = f"{name}({', '.join(inspect.signature(function).parameters)})"
    assert f"`{signature}`" in README.read_text(), f"README's hook reference lacks `{signature}`"
    assert function.__doc__ and "\n" not in function.__doc__.strip(), f"{name} needs a one-line docstring"


def test_readme_names_no_hook_that_does_not_exist():
    documented = set(re.findall(r"`(callrec_[a-z_]+)\(", README.read_text()))
    assert documented <= {name for name, _ in hookspecs()}


def test_builtins_are_trylast_and_pending_check_is_clean():
    pm, failed = make_plugin_manager(load_entry_points=False)
    assert failed == []
    pm.check_pending()
    for name in BUILTIN_PLUGINS:
        plugin = pm.get_plugin(name)
        for caller in pm.get_hookcallers(plugin):
            for impl in caller.get_hookimpls():
                if impl.plugin is plugin:
                    assert impl.trylast, f"{name}.{caller.name} must be trylast so hosts win"


def test_no_hook_implementation_gives_its_arguments_defaults():
    # pluggy never passes an argument that has a default: the implementation would always see it.
    from examples.practice_host import integrator
    from tests.hostapp import Integrator

    modules = [sys.modules[name] for name in BUILTIN_PLUGINS if name in sys.modules] + [integrator, Integrator]
    for module in modules:
        for name, function in inspect.getmembers(module, inspect.isfunction):
            if name.startswith("callrec_"):
                defaults = [p for p in inspect.signature(function).parameters.values() if p.default is not p.empty]
                assert not defaults, f"{module.__name__}.{name} gives defaults to {defaults}"


def test_a_misspelled_hook_is_reported_by_check_pending():
    pm, _ = make_plugin_manager(load_entry_points=False)

    class Typo:
        @hookimpl
        def callrec_slot_patient_panle(self, patient_ref, user):
            return "never called"

    pm.register(Typo())
    with pytest.raises(pluggy.PluginValidationError):
        pm.check_pending()


def write_module(tmp_path, name, source):
    (tmp_path / f"{name}.py").write_text(source)
    return importlib.metadata.EntryPoint(name=name, value=name, group="callrec")


GOOD_PLUGIN = """
from callrec_plugin.hooks import hookimpl

@hookimpl
def callrec_menu_links(user):
    return [{"href": "/good", "label": "Good plugin"}]
"""


def test_a_broken_entry_point_does_not_stop_the_others(tmp_path, monkeypatch, caplog):
    monkeypatch.syspath_prepend(str(tmp_path))
    broken = write_module(tmp_path, "callrec_test_broken", "raise ImportError('missing dependency xyz')\n")
    good = write_module(tmp_path, "callrec_test_good", GOOD_PLUGIN)
    pm, _ = make_plugin_manager(load_entry_points=False)
    failed = load_entry_point_plugins(pm, entry_points=[broken, good])
    assert failed == ["callrec_test_broken"]
    assert pm.get_plugin("callrec_test_good") is not None
    implementers = [impl.plugin_name for impl in pm.hook.callrec_menu_links.get_hookimpls()]
    assert "callrec_test_good" in implementers
    assert "callrec_test_broken" in caplog.text and "missing dependency xyz" in caplog.text


def test_strict_plugins_make_a_broken_entry_point_fatal(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(tmp_path))
    broken = write_module(tmp_path, "callrec_test_broken_strict", "raise RuntimeError('boom')\n")
    pm, _ = make_plugin_manager(load_entry_points=False)
    with pytest.raises(PluginLoadError, match="callrec_test_broken_strict"):
        load_entry_point_plugins(pm, strict=True, entry_points=[broken])


class PanelNote:
    @hookimpl
    def callrec_slot_patient_panel(self, patient_ref, user):
        return Markup("<p class='throwaway'>Note for {}</p>").format(patient_ref)


def test_a_throwaway_plugin_adds_to_the_patient_panel(app, login):
    pm = app.extensions["callrec"].pm
    plugin = PanelNote()
    pm.register(plugin, name="throwaway")
    try:
        pm.check_pending()
        page = login("reception").get("/patients/pat1").get_data(as_text=True)
        assert "<p class='throwaway'>Note for pat1</p>" in page
        assert "Calls" in page  # the built-in panel is still there
    finally:
        pm.unregister(plugin)
    assert "throwaway" not in login("reception").get("/patients/pat1").get_data(as_text=True)


def test_slot_answers_are_escaped_unless_markup(app, login):
    class Unsafe:
        @hookimpl
        def callrec_slot_patient_panel(self, patient_ref, user):
            return "<script>alert(1)</script>"

    pm = app.extensions["callrec"].pm
    plugin = Unsafe()
    pm.register(plugin)
    try:
        page = login("reception").get("/patients/pat1").get_data(as_text=True)
        assert "<script>alert(1)</script>" not in page
        assert "&lt;script&gt;" in page
    finally:
        pm.unregister(plugin)


def test_unknown_slot_and_user_without_role_give_empty_string(app, login):
    from callrec_plugin.slots import callrec_slot

    with app.test_request_context():
        assert callrec_slot("no_such_slot", patient_ref="pat1") == ""
    page = login("norole").get("/patients/pat1").get_data(as_text=True)
    assert "callrec-panel" not in page


def test_plugins_command_lists_plugins_and_hooks(app):
    result = app.test_cli_runner().invoke(args=["callrec", "plugins"])
    assert result.exit_code == 0
    assert "callrec_plugin.defaults.panels: " in result.output
    assert "callrec_slot_patient_panel" in result.output
    assert "testhost: " in result.output and "callrec_user_roles" in result.output


def test_a_host_plugin_with_a_misspelt_hook_is_caught_at_the_first_request(tmp_path):
    from tests.hostapp import create_app

    app = create_app({"SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path / 'typo.db'}",
                      "CALLREC_STORAGE_DIR": str(tmp_path / "storage")})

    class HostTypo:
        @hookimpl
        def callrec_user_role(self, user):  # should be callrec_user_roles
            return {"owner"}

    app.extensions["callrec"].pm.register(HostTypo(), name="host_typo")  # after init_app, as hosts do
    with pytest.raises(pluggy.PluginValidationError, match="callrec_user_role"):
        app.test_client().get("/callrec/static/callrec.css")
    with app.app_context():
        result = app.test_cli_runner().invoke(args=["callrec", "plugins"])
    assert result.exit_code != 0 and "callrec_user_role" in str(result.exception)


def test_init_app_skips_a_broken_entry_point_and_the_plugins_command_says_so(tmp_path, monkeypatch):
    from tests.hostapp import create_app

    monkeypatch.syspath_prepend(str(tmp_path))
    broken = write_module(tmp_path, "callrec_test_broken_init", "raise ImportError('missing dependency abc')\n")
    good = write_module(tmp_path, "callrec_test_good_init", GOOD_PLUGIN.replace("/good", "/good-init"))
    real = importlib.metadata.entry_points
    monkeypatch.setattr(importlib.metadata, "entry_points",
                        lambda **kw: [broken, good] if kw.get("group") == "callrec" else real(**kw))
    app = create_app({"SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path / 'ep.db'}",
                      "CALLREC_STORAGE_DIR": str(tmp_path / "storage"), "CALLREC_LOAD_ENTRY_POINTS": True})
    state = app.extensions["callrec"]
    assert state.failed_plugins == ["callrec_test_broken_init"]
    assert state.pm.get_plugin("callrec_test_good_init") is not None
    with app.app_context():
        output = app.test_cli_runner().invoke(args=["callrec", "plugins"]).output
    assert "callrec_test_broken_init: FAILED TO LOAD" in output
    assert "callrec_test_good_init: callrec_menu_links" in output
