"""The pages under docs/: generated ones are current, links resolve, recipe pages state the recipes' values.

The hook reference (docs/hooks.md) is checked by tests/test_hookspecs.py; the
tutorial's commands are run by tests/scaffold/test_tutorial.py.
"""

from __future__ import annotations

import importlib.metadata as md
import re
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml

from encoder_recipes.docs import recipe_reference_markdown
from encoder_recipes.plugin_manager import load_plugins
from encoder_recipes.registry import Registries, build_registries
from encoder_recipes.validation import load_recipe

REPO = Path(__file__).resolve().parents[1]
DOCS = REPO / "docs"
PAGES = sorted(p for p in DOCS.rglob("*.md"))
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


@cache
def project_registries() -> Registries:
    """Only this distribution's plugins: another installed plugin must not make the pages look stale."""
    eps = [ep for ep in md.entry_points(group="encoder_recipes")
           if getattr(ep, "dist", None) is not None and ep.dist.metadata["Name"] == "encoder-recipes"]
    return build_registries(load_plugins(eps, strict=True, disabled=()))


def test_recipe_reference_is_current():
    page = DOCS / "recipe-reference.md"
    assert page.read_text(encoding="utf-8") == recipe_reference_markdown(project_registries()), (
        "docs/recipe-reference.md is stale: run `encoder-recipes schema --markdown > docs/recipe-reference.md`"
    )


def test_index_links_every_page():
    index = (DOCS / "index.md").read_text(encoding="utf-8")
    linked = {(DOCS / target).resolve() for target in LINK.findall(index)}
    missing = [p.relative_to(DOCS).as_posix() for p in PAGES if p.name != "index.md" and p.resolve() not in linked]
    assert not missing, f"docs/index.md does not link {missing}"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.relative_to(DOCS).as_posix())
def test_relative_links_resolve(page):
    broken = []
    for target in LINK.findall(page.read_text(encoding="utf-8")):
        if re.match(r"^[a-z]+:", target) or target.startswith("#"):
            continue
        if not (page.parent / target.split("#")[0]).exists():
            broken.append(target)
    assert not broken, f"{page.name}: broken links {broken}"


# --- recipe pages ----------------------------------------------------------------------

SEED_RECIPES = sorted(project_registries().recipes.names())


def test_every_seed_recipe_has_a_page():
    pages = {p.stem for p in (DOCS / "recipes").glob("*.md")}
    assert pages == set(SEED_RECIPES)


def tables(text: str) -> list[list[list[str]]]:
    """Markdown tables as rows of cells (header first, the --- row dropped)."""
    out: list[list[list[str]]] = []
    current: list[list[str]] = []
    for line in [*text.splitlines(), ""]:
        if line.lstrip().startswith("|"):
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            if not all(set(c) <= set("-: ") for c in cells):
                current.append(cells)
        elif current:
            out.append(current)
            current = []
    return out


def stated_values(text: str) -> dict[str, str]:
    """``key.path -> value`` from the page's value tables: ``| key | value | source |`` with full
    paths, and ``| key | `stage` ... | source |`` whose keys are relative to each stage."""
    values: dict[str, str] = {}
    for table in tables(text):
        header, rows = table[0], table[1:]
        if header[0] != "key":
            continue
        columns = [None] if header[1] == "value" else [c.strip("`") for c in header[1:-1]]
        for row in rows:
            key = row[0].strip("`")
            for column, cell in zip(columns, row[1:-1]):
                if cell:
                    values[key if column is None else f"stages.{column}.{key}"] = cell.strip("`")
    return values


def pick(data: Any, path: str) -> Any:
    """Walk ``a.b.c`` through dicts and lists of named items."""
    for part in path.split("."):
        if isinstance(data, list):
            data = next(item for item in data if item.get("name") == part)
        else:
            data = data[part]
    return data


def set_leaves(node: Any, prefix: str = "") -> list[str]:
    """Key paths of every scalar or list a recipe file writes (lists of named items by name)."""
    if isinstance(node, dict):
        return [p for k, v in node.items() for p in set_leaves(v, f"{prefix}.{k}" if prefix else str(k))]
    if isinstance(node, list) and node and all(isinstance(i, dict) and "name" in i for i in node):
        return [p for item in node for p in set_leaves({k: v for k, v in item.items() if k != "name"},
                                                        f"{prefix}.{item['name']}")]
    return [prefix]


@pytest.mark.parametrize("name", SEED_RECIPES)
def test_recipe_page_states_every_value_of_the_recipe(name):
    entry = project_registries().recipes.get(name)
    stated = stated_values((DOCS / "recipes" / f"{name}.md").read_text(encoding="utf-8"))
    resolved = load_recipe(name, registries=project_registries()).to_dict()
    wrong = {key: (text, pick(resolved, key)) for key, text in stated.items()
             if yaml.safe_load(text) != pick(resolved, key)}
    assert not wrong, f"docs/recipes/{name}.md states (page, recipe): {wrong}"

    written = yaml.safe_load(entry.path.read_text(encoding="utf-8"))
    expected = [p for section in ("model", "tokenizer", "optimizer", "stages") if section in written  # extends: a part
                for p in set_leaves({section: written[section]})]
    missing = [p for p in expected if p not in stated]
    assert not missing, f"docs/recipes/{name}.md does not state {missing}"
