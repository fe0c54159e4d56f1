"""The per-app plugin manager: hookspecs, built-in plugins and safely loaded entry points."""
import importlib.metadata
import logging

import pluggy

from callrec_plugin.hooks import PROJECT, extension as extension_specs, host as host_specs

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "callrec"

BUILTIN_PLUGINS = (
    "callrec_plugin.defaults.complaints",
    "callrec_plugin.defaults.identity",
    "callrec_plugin.defaults.panels",
    "callrec_plugin.defaults.storage",
    "callrec_plugin.defaults.objections",
    "callrec_plugin.defaults.training",
    "callrec_plugin.defaults.practice_settings",
)


class PluginLoadError(RuntimeError):
    """A plugin could not be loaded and CALLREC_STRICT_PLUGINS is set."""


def make_plugin_manager(load_entry_points=True, strict=False):
    """Build a manager with callrec's hookspecs, its built-in plugins and the installed ones.

    Returns (pm, names of entry points that failed to load).
    """
    pm = pluggy.PluginManager(PROJECT)
    pm.add_hookspecs(host_specs)
    pm.add_hookspecs(extension_specs)
    for name in BUILTIN_PLUGINS:
        pm.register(importlib.import_module(name), name=name)
    failed = load_entry_point_plugins(pm, strict=strict) if load_entry_points else []
    pm.check_pending()
    return pm, failed


def load_entry_point_plugins(pm, strict=False, entry_points=None):
    """Load each entry point on its own, so one broken plugin does not stop the others.

    Returns the names of the plugins that failed. pluggy's load_setuptools_entrypoints lets the first
    import error escape, which is why this loop exists.
    """
    if entry_points is None:
        entry_points = importlib.metadata.entry_points(group=ENTRY_POINT_GROUP)
    failed = []
    for entry_point in entry_points:
        if pm.get_plugin(entry_point.name) is not None or pm.is_blocked(entry_point.name):
            continue
        try:
            plugin = entry_point.load()
            pm.register(plugin, name=entry_point.name)
        except Exception as exc:
            if strict:
                raise PluginLoadError(f"callrec plugin {entry_point.name!r} failed to load: {exc}") from exc
            log.exception("callrec plugin %r failed to load and was skipped", entry_point.name)
            failed.append(entry_point.name)
    return failed


def describe_plugins(pm):
    """Return [{"name", "hooks": [...]}] for every registered plugin, sorted by name."""
    rows = []
    for name, plugin in pm.list_name_plugin():
        hooks = sorted(caller.name for caller in pm.get_hookcallers(plugin) or [])
        rows.append({"name": name, "hooks": hooks})
    return sorted(rows, key=lambda row: row["name"])
