"""Typed registries: one per kind of component, plus one for recipes.

Every hook is called one way: through pluggy's hook caller, with keyword
arguments. The host calls each plugin's ``encoder_recipes_register_*``
implementation through a hook caller restricted to that plugin, so that it
knows which plugin contributed what; a plugin that raises inside a hook is
skipped with a warning naming the plugin and the hook; a name claimed twice
is an error naming both plugins (never "last one wins").
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, TypeVar

from encoder_recipes.components.base import Component
from encoder_recipes.components.kinds import KINDS
from encoder_recipes.names import did_you_mean, normalise, suggestion_hint
from encoder_recipes.plugin_manager import LoadedPlugins, PluginFailure, load_plugins
from encoder_recipes.recipe_files import RecipeError, read_recipe_name

T = TypeVar("T")

class RegistryError(Exception):
    """Base of registry errors."""


class DuplicateNameError(RegistryError):
    def __init__(self, kind: str, name: str, first: str, second: str) -> None:
        super().__init__(f"{kind} {name!r} is registered by both plugin {first!r} and plugin {second!r}")
        self.kind, self.name, self.plugins = kind, name, (first, second)


class UnknownNameError(RegistryError, KeyError):
    def __init__(self, kind: str, name: str, known: list[str]) -> None:
        self.kind, self.name, self.known = kind, name, sorted(known)
        self.suggestion = did_you_mean(name, known)
        super().__init__(self.message)

    @property
    def message(self) -> str:
        return f"unknown {self.kind} {self.name!r}{suggestion_hint(self.suggestion)}; known: {', '.join(self.known) or 'none'}"

    def __str__(self) -> str:  # KeyError would otherwise quote the whole message
        return self.message


@dataclass
class Registry(Generic[T]):
    """Name → entry for one kind, remembering which plugin gave each name.

    ``spelling`` maps a name to the key it is stored and found under: the
    recipe registry normalises ``_`` and ``-`` as packaging does, so
    ``ja_llmjp`` finds ``ja-llmjp`` and the two cannot both be registered.
    """

    kind: str
    description: str
    entries: dict[str, T] = field(default_factory=dict)
    owners: dict[str, str] = field(default_factory=dict)
    spelling: Callable[[str], str] = str
    _keys: dict[str, str] = field(default_factory=dict, repr=False)  # spelling(name) -> registered name

    def add(self, name: str, entry: T, plugin: str) -> None:
        key = self.spelling(name)
        if key in self._keys:
            raise DuplicateNameError(self.kind, name, self.owners[self._keys[key]], plugin)
        self._keys[key] = name
        self.entries[name] = entry
        self.owners[name] = plugin

    def get(self, name: str) -> T:
        try:
            return self.entries[self._keys[self.spelling(name)]]
        except KeyError:
            raise UnknownNameError(self.kind, name, list(self.entries)) from None

    def names(self) -> list[str]:
        return sorted(self.entries)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self.spelling(name) in self._keys

    def __len__(self) -> int:
        return len(self.entries)


@dataclass(frozen=True)
class RecipeEntry:
    name: str
    path: Path
    plugin: str


@dataclass
class Registries:
    """Everything the loaded plugins contributed."""

    loaded: LoadedPlugins
    components: dict[str, Registry[type[Component]]]
    recipes: Registry[RecipeEntry]
    #: (plugin, hook) pairs that raised once: reported then, skipped since
    broken: set[tuple[str, str]] = field(default_factory=set)
    _sample_corpora: Registry | None = field(default=None, repr=False)

    def component(self, kind: str, name: str) -> type[Component]:
        return self.components[kind].get(name)

    @property
    def sample_corpora(self) -> Registry:
        """The offline sample corpora the plugins register, by name (collected on first use)."""
        if self._sample_corpora is None:
            corpora: Registry = Registry("sample corpus", "an offline sample corpus (encoder-recipes data samples)")
            for plugin_name, items in _call_each(self.loaded, "encoder_recipes_register_sample_corpora"):
                for corpus in items:
                    corpora.add(corpus.name, corpus, plugin_name)
            self._sample_corpora = corpora
        return self._sample_corpora

    def word_segmenter(self, language: str, name: str | None = None):
        """The word segmenter the first answering plugin offers (the hook is ``firstresult``), or None."""
        return self.call("encoder_recipes_word_segmenter", language=language, name=name)

    def fill_mask_probes(self, language: str) -> list[dict]:
        """Every plugin's fill-mask probes for ``language``, concatenated."""
        return [probe for answer in self.call("encoder_recipes_fill_mask_probes", language=language)
                for probe in answer]

    def call(self, hook_name: str, **kwargs: Any) -> Any:
        """Call a look-up hook through pluggy's hook caller, with keyword arguments.

        pluggy applies the spec: ``firstresult`` stops at the first non-None
        answer, other hooks return the list of non-None answers. A plugin
        that raises is reported once, naming it and the hook, and left out of
        that hook from then on (``pm.subset_hook_caller``), so a plugin that
        breaks for one language cannot stop a recipe that does not need it.
        The call is then made again without it; look-ups have no side effects.
        """
        pm = self.loaded.pm
        while True:
            left_out = [pm.get_plugin(plugin) for plugin, hook in self.broken if hook == hook_name]
            try:
                return pm.subset_hook_caller(hook_name, remove_plugins=left_out)(**kwargs)
            except Exception as exc:
                plugin = _raised_in(pm, hook_name, exc)
                if plugin is None:  # not raised by an implementation: a host bug, not a plugin's
                    raise
                self.broken.add((plugin, hook_name))
                self.loaded.report_failure(_failure(self.loaded, plugin, hook_name, exc))

    def contributions(self, plugin: str) -> dict[str, list[str]]:
        """Names each registry holds from ``plugin``, by kind (for ``encoder-recipes plugins``)."""
        out: dict[str, list[str]] = {}
        for kind, reg in {**self.components, "recipe": self.recipes, "sample corpus": self.sample_corpora}.items():
            names = sorted(n for n, owner in reg.owners.items() if owner == plugin)
            if names:
                out[kind] = names
        return out


def _raised_in(pm: Any, hook_name: str, exc: BaseException) -> str | None:
    """The plugin whose implementation of ``hook_name`` raised ``exc``, found in its traceback.

    pluggy calls implementations one after another from one frame, so the
    first traceback frame running an implementation's code is the one that raised.
    """
    owners = {getattr(impl.function, "__code__", None): impl.plugin_name
              for impl in getattr(pm.hook, hook_name).get_hookimpls()}
    tb = exc.__traceback__
    while tb is not None:
        if tb.tb_frame.f_code in owners:
            return owners[tb.tb_frame.f_code]
        tb = tb.tb_next
    return None


def _failure(loaded: LoadedPlugins, plugin: str, hook_name: str, exc: BaseException) -> PluginFailure:
    info = loaded.plugins.get(plugin)
    return PluginFailure(plugin, info.distribution if info else "<unknown>", hook_name, f"{type(exc).__name__}: {exc}")


def _call_each(loaded: LoadedPlugins, hook_name: str, **kwargs: Any) -> list[tuple[str, list]]:
    """Each plugin's answer to a ``register_*`` hook, with the plugin that gave it.

    Every call goes through pluggy's hook caller with keyword arguments,
    restricted to one plugin (``pm.subset_hook_caller``), so the registry
    knows who registered what; a plugin that raises is reported, naming it
    and the hook, and the others still register.
    """
    pm = loaded.pm
    everyone = [impl.plugin for impl in getattr(pm.hook, hook_name).get_hookimpls()]
    results: list[tuple[str, list]] = []
    for impl in getattr(pm.hook, hook_name).get_hookimpls():
        caller = pm.subset_hook_caller(hook_name, remove_plugins=[p for p in everyone if p is not impl.plugin])
        try:
            answers = caller(**kwargs)
        except Exception as exc:
            loaded.report_failure(_failure(loaded, impl.plugin_name, hook_name, exc))
            continue
        results.append((impl.plugin_name, [item for answer in answers for item in (answer or [])]))
    return results


def build_registries(loaded: LoadedPlugins) -> Registries:
    """Collect every plugin's components and recipes into typed registries."""
    components: dict[str, Registry[type[Component]]] = {}
    for kind in KINDS.values():
        reg: Registry[type[Component]] = Registry(kind.name, kind.description)
        for plugin_name, classes in _call_each(loaded, kind.hook):
            for cls in classes:
                if not (isinstance(cls, type) and issubclass(cls, kind.base)):
                    raise RegistryError(
                        f"plugin {plugin_name!r} returned {cls!r} from {kind.hook}, "
                        f"but its kind is {getattr(cls, 'kind', None)!r}, not {kind.name!r} "
                        f"(a {kind.name} subclasses {kind.base.__module__}.{kind.base.__name__})"
                    )
                reg.add(cls.name, cls, plugin_name)
        components[kind.name] = reg

    recipes: Registry[RecipeEntry] = Registry("recipe", "a registered recipe file", spelling=normalise)
    for plugin_name, paths in _call_each(loaded, "encoder_recipes_register_recipes"):
        for path in paths:
            path = Path(path)
            try:
                name = read_recipe_name(path)
            except RecipeError as exc:  # one unreadable recipe must not hide the others
                info = loaded.plugins.get(plugin_name)
                loaded.report_failure(PluginFailure(plugin_name, info.distribution if info else "<unknown>",
                                                    "encoder_recipes_register_recipes", str(exc)))
                continue
            recipes.add(name, RecipeEntry(name, path, plugin_name), plugin_name)
    registries = Registries(loaded, components, recipes)
    registries.sample_corpora  # collected now, like the other registrations: a duplicate name fails here
    return registries


_DEFAULT: Registries | None = None


def default_registries(refresh: bool = False) -> Registries:
    """The registries of the installed plugins, loaded once per process.

    For composition roots only (the CLI, benchmarks, tests): the engine never
    calls this; it is handed the registries it works with.
    """
    global _DEFAULT
    if _DEFAULT is None or refresh:
        _DEFAULT = build_registries(load_plugins())
    return _DEFAULT
