"""Typed registries: one per kind of component, plus one for recipes.

The host calls each plugin's ``encoder_recipes_register_*`` implementation on
its own, so that it knows which plugin contributed what, a plugin that raises
inside a hook is skipped with a warning naming the plugin and the hook, and a
name claimed twice is an error naming both plugins (never "last one wins").
"""

from __future__ import annotations

import difflib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, TypeVar

from encoder_recipes.components.base import KINDS, Component
from encoder_recipes.plugin_manager import LoadedPlugins, PluginFailure, load_plugins

T = TypeVar("T")

HOOK_FOR_KIND = {
    "tokenizer": "encoder_recipes_register_tokenizers",
    "masking": "encoder_recipes_register_maskings",
    "context": "encoder_recipes_register_context_schedules",
    "lr_schedule": "encoder_recipes_register_lr_schedules",
    "evaluator": "encoder_recipes_register_evaluators",
}


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
        hint = f" (did you mean {self.suggestion!r}?)" if self.suggestion else ""
        return f"unknown {self.kind} {self.name!r}{hint}; known: {', '.join(self.known) or 'none'}"

    def __str__(self) -> str:  # KeyError would otherwise quote the whole message
        return self.message


def did_you_mean(name: str, known: list[str]) -> str | None:
    close = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
    return close[0] if close else None


@dataclass
class Registry(Generic[T]):
    """Name → entry for one kind, remembering which plugin gave each name."""

    kind: str
    description: str
    entries: dict[str, T] = field(default_factory=dict)
    owners: dict[str, str] = field(default_factory=dict)

    def add(self, name: str, entry: T, plugin: str) -> None:
        if name in self.entries:
            raise DuplicateNameError(self.kind, name, self.owners[name], plugin)
        self.entries[name] = entry
        self.owners[name] = plugin

    def get(self, name: str) -> T:
        try:
            return self.entries[name]
        except KeyError:
            raise UnknownNameError(self.kind, name, list(self.entries)) from None

    def names(self) -> list[str]:
        return sorted(self.entries)

    def __contains__(self, name: object) -> bool:
        return name in self.entries

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
    def hook(self):
        return self.loaded.pm.hook

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
        """The first segmenter a plugin offers (pluggy's ``firstresult`` order), or None."""
        for _, result in self._answers("encoder_recipes_word_segmenter", language=language, name=name):
            if result is not None:
                return result
        return None

    def fill_mask_probes(self, language: str) -> list[dict]:
        probes: list[dict] = []
        for _, result in self._answers("encoder_recipes_fill_mask_probes", language=language):
            probes.extend(result or [])
        return probes

    def _answers(self, hook_name: str, **kwargs: Any) -> Iterator[tuple[str, Any]]:
        """Each plugin's answer to a look-up hook, in the order pluggy would call them.

        A plugin that raises is reported once, naming it and the hook, and
        skipped from then on, so a plugin that breaks for one language
        cannot stop a recipe that does not need it.
        """
        for impl in reversed(getattr(self.hook, hook_name).get_hookimpls()):
            if impl.hookwrapper or impl.wrapper or (impl.plugin_name, hook_name) in self.broken:
                continue
            try:
                # arguments with defaults are pluggy's kwargnames; pass those the call gives too
                value = impl.function(*(kwargs[arg] for arg in impl.argnames),
                                      **{k: kwargs[k] for k in impl.kwargnames if k in kwargs})
            except Exception as exc:
                self.broken.add((impl.plugin_name, hook_name))
                info = self.loaded.plugins.get(impl.plugin_name)
                self.loaded.report_failure(PluginFailure(impl.plugin_name, info.distribution if info else "<unknown>",
                                                         hook_name, f"{type(exc).__name__}: {exc}"))
                continue
            yield impl.plugin_name, value

    def contributions(self, plugin: str) -> dict[str, list[str]]:
        """Names each registry holds from ``plugin``, by kind (for ``encoder-recipes plugins``)."""
        out: dict[str, list[str]] = {}
        for kind, reg in {**self.components, "recipe": self.recipes, "sample corpus": self.sample_corpora}.items():
            names = sorted(n for n, owner in reg.owners.items() if owner == plugin)
            if names:
                out[kind] = names
        return out


def _call_each(loaded: LoadedPlugins, hook_name: str) -> list[tuple[str, list]]:
    """Call ``hook_name`` on each plugin on its own; a plugin that raises is skipped."""
    results: list[tuple[str, list]] = []
    caller = getattr(loaded.pm.hook, hook_name)
    for impl in caller.get_hookimpls():
        plugin_name = impl.plugin_name
        try:
            value = impl.function(**{arg: None for arg in impl.argnames})
        except Exception as exc:
            info = loaded.plugins.get(plugin_name)
            loaded.report_failure(PluginFailure(plugin_name, info.distribution if info else "<unknown>",
                                                hook_name, f"{type(exc).__name__}: {exc}"))
            continue
        results.append((plugin_name, list(value or [])))
    return results


def build_registries(loaded: LoadedPlugins) -> Registries:
    """Collect every plugin's components and recipes into typed registries."""
    from encoder_recipes.recipe_files import RecipeError, read_recipe_name  # late: avoids an import cycle

    components: dict[str, Registry[type[Component]]] = {}
    for kind, hook_name in HOOK_FOR_KIND.items():
        reg: Registry[type[Component]] = Registry(kind, KINDS[kind])
        for plugin_name, classes in _call_each(loaded, hook_name):
            for cls in classes:
                if getattr(cls, "kind", None) != kind:
                    raise RegistryError(
                        f"plugin {plugin_name!r} returned {cls!r} from {hook_name}, "
                        f"but its kind is {getattr(cls, 'kind', None)!r}, not {kind!r}"
                    )
                reg.add(cls.name, cls, plugin_name)
        components[kind] = reg

    recipes: Registry[RecipeEntry] = Registry("recipe", "a registered recipe file")
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
    return Registries(loaded, components, recipes)


_DEFAULT: Registries | None = None


def default_registries(refresh: bool = False) -> Registries:
    """The registries of the installed plugins, loaded once per process."""
    global _DEFAULT
    if _DEFAULT is None or refresh:
        _DEFAULT = build_registries(load_plugins())
    return _DEFAULT
