"""``encoder-recipes new-plugin LANG``: write an installable language plugin to start from.

The package it writes is what an outside author needs and nothing more::

    encoder-recipes-LANG/
        pyproject.toml                  the ``encoder_recipes`` entry point, a dependency on encoder-recipes
        README.md                       install, test, run, and what to edit
        encoder_recipes_LANG/
            __init__.py                 the language code and where the recipes are
            plugin.py                   @hookimpl functions only
            segmenter.py                the word segmenter (whitespace, or characters for unspaced scripts)
            probes.py                   a few starter fill-mask probes
            recipes/LANG_starter.yaml   a recipe that ``extends`` a registered one
        tests/test_plugin.py            tests on the fixtures the host provides (encoder_recipes.testing)

The files are rendered from ``scaffold_templates/`` with :class:`string.Template`
(``$name`` placeholders: Python and YAML use braces, dollars almost never).
The starter recipe is checked before anything is written: its parent must be
registered, and a parent whose tokenizer is a pretrained one for another
language is refused, because ``extends`` merges mappings key by key and so
cannot swap a ``pretrained`` tokenizer for one trained on the new language.
"""

from __future__ import annotations

import argparse
import importlib.metadata as md
import json
import re
import sys
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path
from string import Template
from typing import TYPE_CHECKING

from encoder_recipes import __version__
from encoder_recipes.plugin_manager import ENTRY_POINT_GROUP

if TYPE_CHECKING:
    from encoder_recipes.registry import Registries


#: Starter fill-mask probes in any language that writes Arabic digits; the
#: author replaces them with sentences of the language (the scaffold knows none).
NUMBER_PROBES: list[dict] = [
    {"text": "1, 2, 3, 4, {mask}, 6", "answers": ["5"]},
    {"text": "2, 4, 6, 8, {mask}, 12", "answers": ["10"]},
    {"text": "10, 20, 30, {mask}, 50", "answers": ["40"]},
]

#: The text and words of the generated segmenter test, by script kind: neutral
#: words, since the scaffold knows no language; the author swaps in a sentence.
SPACED_EXAMPLE = ("alpha beta\tgamma\n  delta 42", ["alpha", "beta", "gamma", "delta", "42"])
UNSPACED_EXAMPLE = ("abc 12\u3000\u5929\u6c17", ["abc", "12", "\u5929", "\u6c17"])

_LANG = re.compile(r"^[a-z]{2,3}$")
_DIST = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9._-]*[A-Za-z0-9])?$")
_PLUGIN_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]*$")


class ScaffoldError(ValueError):
    """The plugin cannot be written as asked; the message says why and what to do."""


@dataclass(frozen=True)
class PluginNames:
    """Every name the generated package uses, derived once from the language."""

    lang: str
    dist_name: str  # encoder-recipes-LANG
    package: str  # encoder_recipes_LANG
    plugin_name: str  # the entry-point name, LANG
    recipe_name: str  # LANG-starter
    recipe_file: str  # LANG_starter.yaml


def plugin_names(lang: str, dist_name: str | None = None, plugin_name: str | None = None) -> PluginNames:
    """Check the language code and derive the distribution, package, entry-point and recipe names."""
    if not _LANG.match(lang):
        raise ScaffoldError(f"LANG must be an ISO 639 code in lower case, such as 'ko' or 'en' (got {lang!r})")
    dist = dist_name or f"encoder-recipes-{lang}"
    if not _DIST.match(dist):
        raise ScaffoldError(f"{dist!r} is not a valid distribution name (letters, digits, '.', '_', '-')")
    package = re.sub(r"[^a-z0-9]+", "_", dist.lower()).strip("_")
    if not package.isidentifier():
        raise ScaffoldError(f"distribution name {dist!r} gives the import name {package!r}, "
                            "which is not a Python identifier; choose one that starts with a letter")
    plugin = plugin_name or lang
    if not _PLUGIN_NAME.match(plugin):
        raise ScaffoldError(f"{plugin!r} is not a valid entry-point name")
    return PluginNames(lang, dist, package, plugin, f"{lang}-starter", f"{lang}_starter.yaml")


def default_extends(lang: str, registries: Registries) -> str:
    """The recipe a starter extends, chosen from what is registered.

    The first registered recipe of ``lang`` (its tokenizer fits), else the first
    registered recipe, by name, that trains its tokenizer from the data (so it
    suits any language; a pretrained tokenizer of another language cannot be
    swapped out by ``extends``).
    """
    from encoder_recipes.recipe_files import RecipeError, load_yaml_file

    trains: list[str] = []
    for name in registries.recipes.names():
        try:
            data = load_yaml_file(registries.recipes.get(name).path)
        except RecipeError:  # an unreadable recipe is reported by `list`; it is just not a candidate
            continue
        metadata = data.get("metadata") if isinstance(data, dict) else None
        if isinstance(metadata, dict) and metadata.get("language") == lang:
            return name
        if _trains_tokenizer(name, registries):
            trains.append(name)
    if not trains:
        raise ScaffoldError(f"no registered recipe is of {lang!r} or trains its tokenizer, so there is nothing "
                            "to extend; install a language plugin with such a recipe, or pass --extends")
    return trains[0]


def _trains_tokenizer(name: str, registries: Registries) -> bool:
    """Whether a registered recipe (extends resolved) trains its tokenizer; False when it does not validate."""
    from encoder_recipes.recipe_files import RecipeError
    from encoder_recipes.registry import RegistryError
    from encoder_recipes.validation import load_recipe

    try:
        resolved = load_recipe(name, registries=registries)
        return resolved.component(registries, "tokenizer", resolved.recipe.tokenizer).learns_from_texts()
    except (RecipeError, RegistryError, KeyError):
        return False


def is_unspaced(lang: str, registries: Registries) -> bool:
    """Whether ``lang`` is written without spaces, as its registered sample corpus says (else: spaced)."""
    from encoder_recipes.data.samples import corpus_for_language

    corpus = corpus_for_language(lang, registries)
    return corpus is not None and corpus.unspaced


def new_plugin(
    lang: str,
    *,
    dest: Path | str = ".",
    dist_name: str | None = None,
    extends: str | None = None,
    plugin_name: str | None = None,
    force: bool = False,
    registries: Registries,
    unspaced: bool | None = None,
) -> Path:
    """Write the package ``encoder-recipes-LANG`` under ``dest`` and return its folder.

    :param lang: ISO 639 code of the language (``"ko"``, ``"en"``).
    :param dest: the folder the package folder is created in.
    :param dist_name: the distribution name (default ``encoder-recipes-LANG``); the
        import package is its normalised form (``encoder_recipes_LANG``).
    :param extends: the registered recipe the starter recipe extends (default:
        :func:`default_extends`).
    :param plugin_name: the entry-point name (default ``LANG``); it must not be taken
        by another installed distribution.
    :param force: overwrite the files of an existing package folder.
    :param registries: where ``extends`` is looked up (the installed plugins' registries).
    :param unspaced: the language is written without spaces between words, so the
        starter segmenter makes each character a word (default: what the
        registered sample corpus of ``lang`` says, else spaced).
    """
    from encoder_recipes.data.samples import corpus_for_language

    names = plugin_names(lang, dist_name, plugin_name)
    _check_plugin_name_free(names)
    parent = extends or default_extends(lang, registries)
    parent_recipe = _parent_recipe(parent, lang, registries)

    root = Path(dest) / names.dist_name
    if root.exists() and not force:
        raise ScaffoldError(f"{root} exists; pass --force to overwrite its generated files")

    spaced = not (is_unspaced(lang, registries) if unspaced is None else unspaced)
    has_sample = corpus_for_language(lang, registries) is not None
    example_text, example_words = SPACED_EXAMPLE if spaced else UNSPACED_EXAMPLE
    values = {
        "lang": lang,
        "dist_name": names.dist_name,
        "package": names.package,
        "plugin_name": names.plugin_name,
        "recipe_name": names.recipe_name,
        "recipe_file": names.recipe_file,
        "extends": parent,
        "extends_description": parent_recipe.metadata.description,
        "host_version": __version__,
        "description": f"Starter recipe for '{lang}': {parent}'s model, tokenizer and stages, on {lang} data",
        "probes": _python_list(NUMBER_PROBES, indent=4),
        "example_text": json.dumps(example_text, ensure_ascii=False),
        "example_words": json.dumps(example_words, ensure_ascii=False),
        "segmenter_kind": "whitespace" if spaced else "character",
        "data_sources": _data_sources_yaml(parent_recipe, lang),
        "smoke_data": _smoke_data_yaml(lang, has_sample),
        "smoke_readme": _smoke_readme(lang, has_sample),
    }
    outputs = {
        "pyproject.toml": "pyproject.toml.tmpl",
        "README.md": "README.md.tmpl",
        ".gitignore": "gitignore.tmpl",
        f"{names.package}/__init__.py": "package/__init__.py.tmpl",
        f"{names.package}/plugin.py": "package/plugin.py.tmpl",
        f"{names.package}/segmenter.py": f"package/segmenter_{'spaced' if spaced else 'unspaced'}.py.tmpl",
        f"{names.package}/probes.py": "package/probes.py.tmpl",
        f"{names.package}/recipes/{names.recipe_file}": "recipe.yaml.tmpl",
        "tests/test_plugin.py": "tests/test_plugin.py.tmpl",
    }
    for target, template in outputs.items():
        path = root / target
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(render(template, values), encoding="utf-8")
    return root


def render(template: str, values: dict[str, str]) -> str:
    """Fill one template of ``scaffold_templates/``; a placeholder without a value is an error."""
    text = files("encoder_recipes").joinpath("scaffold_templates", *template.split("/")).read_text(encoding="utf-8")
    return Template(text).substitute(values)


# --- checks -------------------------------------------------------------------


def _check_plugin_name_free(names: PluginNames) -> None:
    """Refuse an entry-point name another installed distribution uses (the host would skip one of them)."""
    for ep in md.entry_points(group=ENTRY_POINT_GROUP):
        owner = ep.dist.metadata["Name"] if getattr(ep, "dist", None) is not None else "<unknown>"
        if ep.name == names.plugin_name and _normalise(owner) != _normalise(names.dist_name):
            raise ScaffoldError(
                f"the plugin name {names.plugin_name!r} is already used by the installed distribution "
                f"{owner!r}; choose another with --plugin-name (e.g. {names.lang}_extra)"
            )


def _normalise(dist: str) -> str:
    return re.sub(r"[-_.]+", "-", dist).lower()


def _parent_recipe(parent: str, lang: str, registries: Registries):
    from encoder_recipes.recipe_files import RecipeError
    from encoder_recipes.validation import load_recipe

    if parent not in registries.recipes:
        raise ScaffoldError(f"--extends {parent!r} is not a registered recipe; registered: "
                            f"{', '.join(registries.recipes.names()) or 'none'}")
    try:
        resolved = load_recipe(parent, registries=registries)
    except RecipeError as exc:
        raise ScaffoldError(f"the recipe {parent!r} does not validate, so it cannot be extended:\n{exc}") from None
    recipe = resolved.recipe
    trains_tokenizer = resolved.component(registries, "tokenizer", recipe.tokenizer).learns_from_texts()
    if not trains_tokenizer and recipe.metadata.language != lang:
        raise ScaffoldError(
            f"{parent!r} loads a pretrained {recipe.metadata.language!r} tokenizer, which a recipe extending it "
            f"cannot replace; extend a recipe that trains its tokenizer"
            + "".join(f", such as {n!r}" for n in registries.recipes.names()[:1] if _trains_tokenizer(n, registries))
        )
    return recipe


# --- rendered blocks ---------------------------------------------------------------


def _python_list(items: list[dict], indent: int) -> str:
    pad = " " * indent
    return "\n".join(f"{pad}{json.dumps(item, ensure_ascii=False)}," for item in items)


def _data_sources_yaml(parent_recipe, lang: str) -> str:
    """One source per source of the parent, same name (lists of named items merge by name, and
    the parent's stage mixtures name them), each pointed at a placeholder path."""
    lines = []
    for source in parent_recipe.data.sources:
        lines.append(f"    - name: {source.name}")
        lines.append(f'      paths: ["/path/to/{lang}-corpus/{source.name}/**/*.jsonl"]')
        if source.sample:
            lines.append("      sample: null")
        if source.dataset:
            lines += ["      dataset: null", "      config: null"]
    return "\n".join(lines)


def _smoke_data_yaml(lang: str, has_sample: bool) -> str:
    if has_sample:
        return (f"# `--scale smoke` trains on the offline sample corpus of '{lang}'\n"
                f"# (`encoder-recipes data samples --language {lang}`), not on data.sources.")
    return (f"# There is no offline sample corpus for '{lang}', so `--scale smoke` trains on\n"
            "# data.sources too: point them at a few MB of your text first.\n"
            "scales:\n"
            "  smoke:\n"
            "    sample_data: false")


def _smoke_readme(lang: str, has_sample: bool) -> str:
    if has_sample:
        return (f"`--scale smoke` trains on the offline sample corpus of `{lang}` (fetched by\n"
                f"`encoder-recipes data samples --language {lang}`, or on first use).")
    return (f"There is no offline sample corpus for `{lang}`: before `--scale smoke` (and the\n"
            "smoke test, which skips until then) point every `data.sources` entry of the\n"
            "recipe at a few MB of your own text (`.txt`, `.jsonl`, `.jsonl.gz`, `.parquet`).")


# --- command line ----------------------------------------------------------------


def cmd_new_plugin(args: argparse.Namespace) -> int:
    """``encoder-recipes new-plugin``: write the package and say what to do next."""
    try:
        root = new_plugin(args.lang, dest=Path(args.dest), dist_name=args.dist_name, extends=args.extends,
                          plugin_name=args.plugin_name, force=args.force, registries=args.registries(),
                          unspaced=args.unspaced)
    except ScaffoldError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    names = plugin_names(args.lang, args.dist_name, args.plugin_name)
    print(f"wrote {root}\nnext:\n"
          f"  pip install -e {root}\n"
          f"  encoder-recipes plugins                    # {names.plugin_name} is listed\n"
          f"  encoder-recipes validate {names.recipe_name}\n"
          f"  pytest {root}\n"
          f"  encoder-recipes run {names.recipe_name} --scale smoke")
    return 0


def add_new_plugin_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register ``new-plugin LANG [--dest DIR] [--name DIST] [--extends RECIPE] [--plugin-name NAME] [--force]``."""
    helptext = "write a new language plugin package (entry point, hooks, starter recipe, tests)"
    p = sub.add_parser("new-plugin", help=helptext, description=helptext)
    p.add_argument("lang", metavar="LANG", help="ISO 639 code of the language, e.g. ko")
    p.add_argument("--dest", default=".", help="folder to write the package folder in (default: .)")
    p.add_argument("--name", dest="dist_name", metavar="DIST", help="distribution name (default: encoder-recipes-LANG)")
    p.add_argument("--extends", metavar="RECIPE",
                   help="registered recipe the starter extends (default: one of LANG, else the first "
                   "registered one that trains its tokenizer)")
    space = p.add_mutually_exclusive_group()
    space.add_argument("--unspaced", dest="unspaced", action="store_true", default=None,
                       help="words are not separated by spaces (the starter segmenter splits characters); "
                       "default: as the registered sample corpus of LANG says, else spaced")
    space.add_argument("--spaced", dest="unspaced", action="store_false", help="words are separated by spaces")
    p.add_argument("--plugin-name", help="entry-point name (default: LANG)")
    p.add_argument("--force", action="store_true", help="overwrite the files of an existing package folder")
    p.set_defaults(func=cmd_new_plugin)
    return p


__all__ = ["PluginNames", "ScaffoldError", "add_new_plugin_parser", "cmd_new_plugin",
           "default_extends", "is_unspaced", "new_plugin", "plugin_names", "render"]
