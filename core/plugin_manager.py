"""Loading plugins from the ``encoder_recipes`` entry-point group, one at a time.

Built-in components and the shipped language plugins come through the same
entry-point group an outside plugin uses, so there is one way in.

A plugin that fails to import, fails pluggy's registration checks, or
implements a hook name that no spec declares (a misspelling) is skipped with
a :class:`PluginWarning` that names it and its distribution; the rest keep
working. ``ENCODER_RECIPES_STRICT_PLUGINS=1`` turns every such failure into a
:class:`PluginError`. ``ENCODER_RECIPES_DISABLE_PLUGINS=a,b`` blocks plugins by
entry-point name before they are imported.
"""

from __future__ import annotations

import importlib.metadata as md
import os
import warnings
from collections.abc import Iterable
from dataclasses import dataclass, field
from types import ModuleType

import pluggy

from encoder_recipes import hookspecs

ENTRY_POINT_GROUP = "encoder_recipes"
STRICT_ENV = "ENCODER_RECIPES_STRICT_PLUGINS"
DISABLE_ENV = "ENCODER_RECIPES_DISABLE_PLUGINS"


class PluginError(RuntimeError):
    """A plugin could not be loaded or used, and strict mode is on."""


class PluginWarning(UserWarning):
    """A plugin was skipped; the message names it, its distribution and why."""


@dataclass
class PluginInfo:
    """What the host knows about one loaded plugin."""

    name: str
    module: str
    distribution: str
    version: str
    path: str
    hooks: list[str] = field(default_factory=list)


@dataclass
class PluginFailure:
    name: str
    distribution: str
    stage: str  # "import", "register" or a hook name
    error: str


@dataclass
class LoadedPlugins:
    """A plugin manager together with what was loaded and what was skipped."""

    pm: pluggy.PluginManager
    plugins: dict[str, PluginInfo]
    failures: list[PluginFailure]
    strict: bool

    def report_failure(self, failure: PluginFailure) -> None:
        """Record a failure; raise in strict mode, warn otherwise."""
        self.failures.append(failure)
        message = (
            f"plugin {failure.name!r} (distribution {failure.distribution!r}) failed in "
            f"{failure.stage}: {failure.error}"
        )
        if self.strict:
            raise PluginError(message)
        warnings.warn(message + "; skipped", PluginWarning, stacklevel=3)


def env_flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in {"1", "true", "yes", "on"}


def env_list(name: str) -> set[str]:
    return {item.strip() for item in os.environ.get(name, "").split(",") if item.strip()}


def _distribution_of(ep: md.EntryPoint) -> tuple[str, str]:
    dist = getattr(ep, "dist", None)
    if dist is None:
        return "<unknown>", ""
    return dist.metadata["Name"], dist.version


def new_plugin_manager() -> pluggy.PluginManager:
    pm = pluggy.PluginManager(hookspecs.PROJECT)
    pm.add_hookspecs(hookspecs)
    return pm


def load_plugins(
    entry_points: Iterable[md.EntryPoint] | None = None,
    *,
    strict: bool | None = None,
    disabled: Iterable[str] | None = None,
) -> LoadedPlugins:
    """Load every plugin of the entry-point group into a fresh plugin manager.

    :param entry_points: the entry points to load; defaults to the installed ones.
    :param strict: raise instead of skipping a broken plugin; defaults to the
        ``ENCODER_RECIPES_STRICT_PLUGINS`` environment variable.
    :param disabled: entry-point names not to load; defaults to the
        ``ENCODER_RECIPES_DISABLE_PLUGINS`` environment variable.
    """
    if entry_points is None:
        entry_points = md.entry_points(group=ENTRY_POINT_GROUP)
    strict = env_flag(STRICT_ENV) if strict is None else strict
    blocked = env_list(DISABLE_ENV) if disabled is None else set(disabled)
    loaded = LoadedPlugins(new_plugin_manager(), {}, [], strict)

    for ep in sorted(entry_points, key=lambda e: e.name):
        if ep.name in blocked:
            continue
        dist_name, version = _distribution_of(ep)
        if ep.name in loaded.plugins:
            other = loaded.plugins[ep.name]
            loaded.report_failure(
                PluginFailure(ep.name, dist_name, "register",
                              f"the plugin name is already used by distribution {other.distribution!r}")
            )
            continue
        try:
            module = ep.load()
        except Exception as exc:  # any error in a plugin's import must not take the host down
            loaded.report_failure(PluginFailure(ep.name, dist_name, "import", f"{type(exc).__name__}: {exc}"))
            continue
        _register(loaded, ep.name, module, dist_name, version)
    return loaded


def register_module(loaded: LoadedPlugins, name: str, module: ModuleType | object,
                    distribution: str = "<local>", version: str = "") -> bool:
    """Register an already imported plugin object (used by tests and ``new-plugin``)."""
    return _register(loaded, name, module, distribution, version)


def _register(loaded: LoadedPlugins, name: str, module: object, dist_name: str, version: str) -> bool:
    pm = loaded.pm
    try:
        pm.register(module, name=name)
        # A hook implementation whose name matches no spec (a misspelling) is
        # reported here instead of being silently never called.
        pm.check_pending()
    except Exception as exc:
        if pm.is_registered(module):
            pm.unregister(module)
        loaded.report_failure(PluginFailure(name, dist_name, "register", f"{type(exc).__name__}: {exc}"))
        return False
    hooks = sorted(impl_hook for impl_hook in _hooks_of(pm, module))
    loaded.plugins[name] = PluginInfo(
        name=name,
        module=getattr(module, "__name__", type(module).__name__),
        distribution=dist_name,
        version=version,
        path=getattr(module, "__file__", "") or "",
        hooks=hooks,
    )
    return True


def _hooks_of(pm: pluggy.PluginManager, plugin: object) -> list[str]:
    callers = pm.get_hookcallers(plugin) or []
    return [caller.name for caller in callers]
