"""Pytest fixtures for plugin authors, as pytest's ``pytester`` is for pytest plugins.

encoder-recipes registers this module with pytest (the ``pytest11`` entry
point), so any test suite run in an environment where encoder-recipes is
installed can use these fixtures without importing or configuring anything:

``encoder_recipes_registries``
    Fresh registries of every installed plugin, loaded through their entry
    points as ``encoder-recipes`` loads them (a new plugin manager per test).
    A plugin that failed to load is in ``.loaded.failures``.

``validate_recipe(ref, *, scale=None, overrides=())``
    Resolve and validate a recipe (a registered name or a path) against those
    registries and return the :class:`~encoder_recipes.validation.ResolvedRecipe`;
    an invalid recipe raises :class:`~encoder_recipes.recipe_files.RecipeError`
    listing every issue with its file, line and field.

``smoke_run(ref, *, max_steps=8, scale="smoke", overrides=(), device="cpu")``
    Train the recipe in-process at the smoke scale for ``max_steps`` steps
    (``None``: the whole smoke run) in a fresh folder under ``tmp_path`` and
    return that run folder. Metrics are logged every step; read them with
    :func:`read_metrics`. The test is skipped, saying why, when the data is not
    there: the offline sample corpus cannot be fetched, or a ``paths`` source
    matches no files.

:func:`recipe_value` walks a dotted path through a recipe, for tests that
check each cited value of a recipe (``stages.stage1.lr``).

Only this module's top level is imported when pytest starts; the engine is
imported inside the fixtures, so suites that never use them pay nothing.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from encoder_recipes.registry import Registries
    from encoder_recipes.validation import ResolvedRecipe


def recipe_value(obj: Any, path: str) -> Any:
    """Walk ``a.b.c`` through a recipe: models, component params, dicts, and lists of named items."""
    from encoder_recipes.schema import ComponentRef

    for part in path.split("."):
        if isinstance(obj, list):
            matches = [item for item in obj if getattr(item, "name", None) == part]
            assert matches, f"no item named {part!r} in {path}"
            obj = matches[0]
        elif isinstance(obj, dict):
            obj = obj[part]
        elif isinstance(obj, ComponentRef) and part in obj.params:
            obj = obj.params[part]
        else:
            obj = getattr(obj, part)
    return obj


def read_metrics(run_dir: Path | str) -> list[dict[str, Any]]:
    """The records of a run's ``metrics.jsonl`` (step lines, and ``event: eval`` lines)."""
    from encoder_recipes.training.metrics import read_metrics as read

    return read(Path(run_dir))


@pytest.fixture
def encoder_recipes_registries() -> Registries:
    """Fresh registries of the installed plugins (entry-point group ``encoder_recipes``)."""
    from encoder_recipes.plugin_manager import load_plugins
    from encoder_recipes.registry import build_registries

    return build_registries(load_plugins())


@pytest.fixture
def validate_recipe(encoder_recipes_registries: Registries) -> Callable[..., ResolvedRecipe]:
    """``validate_recipe(ref, *, scale=None, overrides=())`` -> the resolved recipe, or RecipeError."""
    from encoder_recipes.validation import load_recipe

    def validate(ref: str | Path, *, scale: str | None = None, overrides: Sequence[str] = ()) -> ResolvedRecipe:
        return load_recipe(str(ref), scale=scale, overrides=list(overrides), registries=encoder_recipes_registries)

    return validate


@pytest.fixture
def smoke_run(encoder_recipes_registries: Registries, tmp_path: Path) -> Callable[..., Path]:
    """``smoke_run(ref, *, max_steps=8, ...)`` -> the run folder of a short in-process training run."""
    from encoder_recipes.data.samples import SampleCorpusUnavailable
    from encoder_recipes.data.sources import DataSourceError, resolve_paths
    from encoder_recipes.training.run import ensure_sample_data
    from encoder_recipes.training.trainer import RunOptions, train
    from encoder_recipes.validation import load_recipe

    counter = itertools.count(1)

    def run(ref: str | Path, *, max_steps: int | None = 8, scale: str | None = "smoke",
            overrides: Sequence[str] = (), device: str = "cpu") -> Path:
        # log_every=1 so every step is in metrics.jsonl; it does not change what is trained.
        resolved = load_recipe(str(ref), scale=scale, overrides=["log_every=1", *overrides],
                               registries=encoder_recipes_registries)
        try:
            ensure_sample_data(resolved, encoder_recipes_registries)
        except SampleCorpusUnavailable as exc:
            pytest.skip(f"no offline sample corpus here: {exc}")
        for source in resolved.recipe.data.sources:
            if source.paths:
                try:
                    resolve_paths(source)
                except DataSourceError as exc:
                    pytest.skip(f"{exc}: point the recipe's data.sources at your files")
        output = tmp_path / f"smoke-run-{next(counter)}"
        train(resolved, encoder_recipes_registries,
              RunOptions(output=output, device=device, max_steps=max_steps, progress=False))
        return output

    return run


__all__ = ["encoder_recipes_registries", "read_metrics", "smoke_run", "validate_recipe"]
