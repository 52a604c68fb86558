"""The command line, in process: list, show, validate, plan, plugins, components, cp, schema."""

from __future__ import annotations

import json

import pytest
import yaml

from encoder_recipes.cli import main


def run(capsys, *argv):
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_list_shows_every_seed_recipe(capsys):
    code, out, _ = run(capsys, "list", "--json")
    rows = {r["name"]: r for r in json.loads(out)}
    assert code == 0
    assert rows["ja-llmjp"]["plugin"] == "ja" and rows["ja-llmjp"]["final_context"] == 8192
    assert rows["fi-modernbert"]["final_context"] == 16384 and rows["fi-modernbert"]["stages"] == 3
    assert rows["zh-modernbert-wwm"]["language"] == "zh"
    code, out, _ = run(capsys, "list", "--language", "ja")
    assert "ja-modernbert-ja" in out and "fi-modernbert" not in out
    code, out, _ = run(capsys, "list", "--plugin", "zh", "--json")
    assert [r["name"] for r in json.loads(out)] == ["zh-modernbert-wwm"]


def test_show_prints_resolved_recipe_with_defaults(capsys):
    code, out, _ = run(capsys, "show", "ja-llmjp")
    data = yaml.safe_load(out)
    assert code == 0
    assert data["stages"][0]["steps"] == 500000
    assert data["precision"] == "auto"  # a schema default the file does not write
    code, out, _ = run(capsys, "show", "ja-llmjp", "--format", "json", "--scale", "smoke", "seed=5")
    data = json.loads(out)
    assert data["seed"] == 5 and data["data"]["sources"][0]["sample"] == "ja"
    assert data["stages"][1]["context"]["seq_len"] == 1024


def test_plan_matches_the_paper(capsys):
    code, out, _ = run(capsys, "plan", "ja-llmjp", "--json")
    plan = json.loads(out)
    assert [s["steps"] for s in plan["stages"]] == [500000, 200000]
    assert plan["stages"][0]["tokens"] == 500000 * 3328 * 1024
    assert plan["params"]["total"] == pytest.approx(187e6, rel=0.01)
    code, out, _ = run(capsys, "plan", "ja-llmjp")
    assert "1.7T" in out and "629B" in out


def test_validate_reports_all_files(tmp_path, capsys, recipe_file):
    good = recipe_file(tmp_path / "good.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text(good.read_text().replace("batch_size: 8", "batch_size: -8"))
    code, out, err = run(capsys, "validate", str(good), str(bad))
    assert code == 2  # the status of every invalid recipe (cli.py's docstring)
    assert f"{good}: ok" in out
    assert f"{bad}:13:5: stages[0].batch_size: Input should be greater than 0" in err
    assert run(capsys, "validate", str(good))[0] == 0


def test_recipe_errors_exit_2_with_located_message(tmp_path, capsys):
    code, _, err = run(capsys, "show", "ja-llmjpp")
    assert code == 2 and "did you mean 'ja-llmjp'" in err


def test_plugins_and_components(capsys):
    code, out, _ = run(capsys, "plugins", "--json")
    data = json.loads(out)
    names = {p["name"]: p for p in data["plugins"]}
    assert names["ja"]["contributes"]["recipe"] == ["ja-llmjp", "ja-modernbert-ja"]
    assert "encoder_recipes_word_segmenter" in names["zh"]["hooks"]
    assert names["builtin"]["distribution"] == "encoder-recipes"
    code, out, _ = run(capsys, "components", "masking", "--json")
    data = json.loads(out)
    assert data["masking"]["whole_word"]["params"]["properties"]["rate"]["default"] == 0.3
    assert run(capsys, "components", "nope")[0] == 2


def test_cp_copies_a_registered_recipe(tmp_path, capsys):
    assert run(capsys, "cp", "zh-modernbert-wwm", str(tmp_path))[0] == 0
    copied = tmp_path / "zh_modernbert_wwm.yaml"
    assert copied.exists()
    assert run(capsys, "cp", "zh-modernbert-wwm", str(tmp_path))[0] == 1  # no silent overwrite
    assert run(capsys, "validate", str(copied))[0] == 0


def test_schema_includes_component_params(capsys):
    code, out, _ = run(capsys, "schema")
    schema = json.loads(out)
    assert "stages" in schema["properties"]
    assert "warmup_steps" in schema["x-components"]["lr_schedule"]["wsd"]["params"]["properties"]
