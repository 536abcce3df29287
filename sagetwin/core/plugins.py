"""The plugin manager: built-in backends and entry-point plugins loaded the same way.

Built-in backends are modules listed in ``DEFAULT_PLUGINS``; third-party ones are found
through the ``sagetwin`` entry-point group. Both implement the same hooks
(``sagetwin_register_backends``, ``sagetwin_register_commands``, ...).
Set ``SAGETWIN_DISABLE_PLUGIN_AUTOLOAD=1`` to load the built-ins only.
"""

from __future__ import annotations

import importlib
import os
from dataclasses import dataclass
from types import ModuleType

import pluggy

from sagetwin.core import hookspecs
from sagetwin.core.backend import Check
from sagetwin.core.errors import BackendNotFoundError, ConfigurationError

ENTRY_POINT_GROUP = "sagetwin"
DEFAULT_PLUGINS: tuple[str, ...] = (
    "sagetwin.backends.process.plugin",
    "sagetwin.backends.local.plugin",
    "sagetwin.backends.sagemaker.plugin",
    "sagetwin.aws.plugin",
    "sagetwin.runs.plugin",
)


BACKEND_MEMBERS = ("name", "description", "availability", "fit", "deploy")  # the Backend protocol


@dataclass(frozen=True)
class BackendEntry:
    """A registered backend class and where it came from."""

    name: str
    cls: type
    plugin: str
    distribution: str

    def availability(self) -> Check:
        try:
            return self.cls.availability()
        except Exception as exc:  # a broken plugin must not break `sagetwin backends`
            return Check(False, f"availability check failed: {exc}")


def _builtin_module(name: str) -> ModuleType | None:
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name == name:  # not shipped in this build; a missing dependency still raises
            return None
        raise


def new_plugin_manager(*, autoload: bool | None = None) -> pluggy.PluginManager:
    """Build a plugin manager with the built-ins and (unless disabled) entry-point plugins."""
    pm = pluggy.PluginManager("sagetwin")
    pm.add_hookspecs(hookspecs)
    for name in DEFAULT_PLUGINS:
        module = _builtin_module(name)
        if module is not None:
            pm.register(module, name=name)
    if autoload is None:
        autoload = not os.environ.get("SAGETWIN_DISABLE_PLUGIN_AUTOLOAD")
    if autoload:
        pm.load_setuptools_entrypoints(ENTRY_POINT_GROUP)
    pm.check_pending()
    return pm


_pm: pluggy.PluginManager | None = None


def get_plugin_manager() -> pluggy.PluginManager:
    """The process-wide plugin manager, created on first use."""
    global _pm
    if _pm is None:
        _pm = new_plugin_manager()
    return _pm


def reset_plugin_manager() -> None:
    """Forget the process-wide manager (after installing a plugin, or in tests)."""
    global _pm
    _pm = None


def _distribution_of(pm: pluggy.PluginManager, plugin: object) -> str:
    for dist_plugin, dist in pm.list_plugin_distinfo():
        if dist_plugin is plugin:
            return f"{dist.project_name} {dist.version}"
    return "sagetwin (built-in)" if pm.get_name(plugin) in DEFAULT_PLUGINS else "registered at runtime"


def backend_entries(pm: pluggy.PluginManager | None = None) -> dict[str, BackendEntry]:
    """All registered backends by name, in registration order."""
    pm = pm or get_plugin_manager()
    entries: dict[str, BackendEntry] = {}
    for impl in pm.hook.sagetwin_register_backends.get_hookimpls():
        plugin = impl.plugin
        plugin_name = pm.get_name(plugin) or repr(plugin)
        found: list[type] = []
        impl.function(register=found.append)
        for cls in found:
            missing = [member for member in BACKEND_MEMBERS if member not in dir(cls)]
            if missing or not isinstance(cls.name, str) or not cls.name:
                raise ConfigurationError(
                    f"plugin {plugin_name} registered {cls!r}, which is not a backend class: it lacks "
                    + (", ".join(missing) if missing else "a non-empty string `name`") + ".",
                    "give it name = 'mybackend', description, availability(), fit() and deploy() "
                    "(see docs/plugins.md).",
                )
            name = cls.name
            if name in entries:
                raise ConfigurationError(
                    f"backend name {name!r} is registered twice: by {entries[name].plugin} and {plugin_name}.",
                    "uninstall one of the two plugins or rename one backend.",
                )
            entries[name] = BackendEntry(name, cls, plugin_name, _distribution_of(pm, plugin))
    return entries  # get_hookimpls() is in registration order: built-ins first


def get_backend_entry(name: str, pm: pluggy.PluginManager | None = None) -> BackendEntry:
    entries = backend_entries(pm)
    if name not in entries:
        installed = ", ".join(sorted(entries)) or "none"
        raise BackendNotFoundError(
            f"unknown backend {name!r}; installed backends: {installed}.",
            "pick one of those (e.g. --backend process), or install the plugin that provides "
            f"{name!r} and check it with `sagetwin backends`.",
        )
    return entries[name]
