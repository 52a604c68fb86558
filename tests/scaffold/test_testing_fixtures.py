"""The fixtures encoder-recipes gives plugin authors (``encoder_recipes.testing``).

They reach this suite the way they reach an outside plugin's: through the
``pytest11`` entry point, not a conftest. ``pytester`` runs a separate test
file to show that, and that ``smoke_run`` skips (not fails) without data.
"""

from __future__ import annotations

import inspect
import json
import math
import textwrap
from pathlib import Path

import pytest

from encoder_recipes.recipe_files import RecipeError
from encoder_recipes.registry import default_registries
from encoder_recipes.testing import read_metrics

pytest_plugins = ["pytester"]

RECIPE = """\
metadata: {{name: fixture-tiny, language: en, description: a tiny recipe for the fixture tests}}
model: {{hidden_size: 64, intermediate_size: 96, num_hidden_layers: 2, num_attention_heads: 2,
        max_position_embeddings: 1024}}
tokenizer: {{name: bpe, vocab_size: 8192}}
data:
  sources:
    - {{name: docs, paths: ["{corpus}"]}}
stages:
  - name: only
    context: {{name: fixed, seq_len: 512}}
    steps: 1000
    batch_size: 64
    lr: 1.0e-3
    masking: {{name: mlm, rate: 0.3}}
    packing: naive
scales:
  smoke:
    sample_data: false      # no fetched corpus needed: the docstrings below
    vocab_size: 512
    batch_size: 4
    model: {{hidden_size: 32, intermediate_size: 48, num_hidden_layers: 2, num_attention_heads: 2}}
"""


@pytest.fixture
def tiny_recipe(tmp_path) -> Path:
    """A recipe whose smoke scale trains on docstrings of this package's modules (no download)."""
    import encoder_recipes.schema
    import encoder_recipes.validation

    texts = [inspect.getdoc(obj) for module in (encoder_recipes.schema, encoder_recipes.validation)
             for _, obj in inspect.getmembers(module) if inspect.getdoc(obj)]
    corpus = tmp_path / "docs.txt"
    corpus.write_text("\n".join(" ".join(t.split()) for t in texts) * 5, encoding="utf-8")
    path = tmp_path / "tiny.yaml"
    path.write_text(RECIPE.format(corpus=corpus), encoding="utf-8")
    return path


def test_registries_are_fresh_and_hold_the_installed_plugins(encoder_recipes_registries):
    assert encoder_recipes_registries is not default_registries()
    assert {"builtin", "ja", "fi", "zh"} <= set(encoder_recipes_registries.loaded.plugins)
    assert "fi-modernbert" in encoder_recipes_registries.recipes
    assert "mlm" in encoder_recipes_registries.components["masking"]


def test_validate_recipe_resolves_names_paths_scales_and_overrides(validate_recipe, tiny_recipe):
    assert validate_recipe("fi-modernbert").recipe.metadata.language == "fi"
    resolved = validate_recipe(tiny_recipe, scale="smoke", overrides=["seed=7"])
    assert (resolved.scale, resolved.recipe.seed, resolved.recipe.model.hidden_size) == ("smoke", 7, 32)
    assert resolved.recipe.stages[0].context.params["seq_len"] == 64  # 512 / 8, the smoke rule's divisor


def test_validate_recipe_reports_the_location(validate_recipe, tiny_recipe):
    tiny_recipe.write_text(tiny_recipe.read_text(encoding="utf-8").replace("lr: 1.0e-3", "lr: -1"), encoding="utf-8")
    with pytest.raises(RecipeError) as info:
        validate_recipe(tiny_recipe)
    line = next(i for i, text in enumerate(RECIPE.splitlines(), 1) if text.strip().startswith("lr:"))
    assert [(i.line, i.field) for i in info.value.issues] == [(line, "stages[0].lr")]


def test_smoke_run_trains_and_logs_every_step(smoke_run, tiny_recipe):
    run_dir = smoke_run(tiny_recipe, max_steps=3)
    steps = [m for m in read_metrics(run_dir) if "loss" in m and m.get("event") != "eval"]
    assert [m["step"] for m in steps] == [1, 2, 3]
    assert all(math.isfinite(m["loss"]) and m["seq_len"] == 64 for m in steps)
    assert (run_dir / "resolved.yaml").is_file()
    assert smoke_run(tiny_recipe, max_steps=1) != run_dir  # each call gets its own folder


def test_fixtures_come_from_the_entry_point_and_smoke_run_skips_without_data(pytester, tiny_recipe):
    missing = tiny_recipe.read_text(encoding="utf-8").replace(str(tiny_recipe.parent / "docs.txt"), "/nowhere/*.txt")
    (pytester.path / "missing.yaml").write_text(missing, encoding="utf-8")
    pytester.makepyfile(test_author=textwrap.dedent(f"""
        def test_validates(validate_recipe):
            assert validate_recipe({json.dumps(str(tiny_recipe))}).recipe.metadata.name == "fixture-tiny"

        def test_no_data(smoke_run):
            smoke_run("missing.yaml", max_steps=1)
    """))
    result = pytester.runpytest_subprocess("-rs")  # a fresh process: only entry points bring the fixtures
    result.assert_outcomes(passed=1, skipped=1)
    result.stdout.fnmatch_lines(["*matches no files: point the recipe's data.sources at your files*"])
