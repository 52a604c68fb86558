"""A corpus of malformed recipes (``bad_recipes/``), each with the error it must produce (``expected.yaml``).

Every error names the file, the line and the field path, and ``encoder-recipes
run`` refuses the recipe with exit status 2 before it creates the run
directory: nothing starts training.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from encoder_recipes.cli import main
from encoder_recipes.recipe_files import RecipeError
from encoder_recipes.registry import default_registries
from encoder_recipes.validation import load_recipe

CORPUS = Path(__file__).parent / "bad_recipes"
EXPECTED: dict[str, dict] = yaml.safe_load((CORPUS / "expected.yaml").read_text(encoding="utf-8"))
RECIPES = sorted(p.name for p in CORPUS.glob("*.yaml") if p.name != "expected.yaml")


def _expectation(name: str) -> tuple[dict, str]:
    spec = EXPECTED[name]
    file = spec.get("file", name)
    return spec, file if file.startswith("<") else str(CORPUS / file)


def test_the_corpus_is_large_and_every_file_has_its_expected_error():
    assert len(RECIPES) >= 25
    assert set(RECIPES) == set(EXPECTED), set(RECIPES) ^ set(EXPECTED)


@pytest.mark.parametrize("name", RECIPES)
def test_bad_recipe_is_refused_naming_file_line_and_field(name):
    spec, file = _expectation(name)
    with pytest.raises(RecipeError) as info:
        load_recipe(str(CORPUS / name), overrides=spec.get("overrides", []), registries=default_registries())
    issues = info.value.issues
    found = [i for i in issues if spec["message"] in i.message]
    assert found, "\n".join(map(str, issues))
    issue = found[0]
    assert (issue.file, issue.line, issue.field) == (file, spec["line"], spec["field"]), str(issue)


@pytest.mark.parametrize("name", RECIPES)
def test_run_exits_2_before_creating_the_run_directory(name, tmp_path, capsys):
    spec, file = _expectation(name)
    out = tmp_path / "run"
    code = main(["run", str(CORPUS / name), "--output", str(out), "--device", "cpu", *spec.get("overrides", [])])
    err = capsys.readouterr().err
    assert code == 2, err
    where = file if spec["line"] is None else f"{file}:{spec['line']}:"
    assert any(line.startswith(where) and spec["message"] in line for line in err.splitlines()), err
    assert not out.exists()
