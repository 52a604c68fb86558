"""Diff of resolved recipes: key paths, stages aligned by name, exit status like diff(1)."""

from __future__ import annotations

import json

from encoder_recipes.cli import main
from encoder_recipes.diff import diff_dicts


def test_equal_dicts_have_no_differences():
    assert diff_dicts({"a": 1, "b": [1, 2]}, {"a": 1, "b": [1, 2]}) == []


def test_named_lists_align_by_name():
    left = {"stages": [{"name": "s1", "lr": 1}, {"name": "s2", "lr": 2}]}
    right = {"stages": [{"name": "s2", "lr": 3}, {"name": "s1", "lr": 1}]}
    rows = diff_dicts(left, right)
    assert [(r.path, r.left, r.right) for r in rows] == [("stages.s2.lr", 2, 3)]


def test_named_lists_without_common_names_align_by_position():
    rows = diff_dicts({"stages": [{"name": "a", "lr": 1}]}, {"stages": [{"name": "b", "lr": 1}]})
    assert {r.path for r in rows} == {"stages[0].name"}


def test_missing_keys_show_on_one_side():
    rows = diff_dicts({"a": 1}, {"a": 1, "b": 2})
    assert [(r.path, r.right) for r in rows] == [("b", 2)]


def test_cli_diff_exit_status_and_formats(tmp_path, capsys, recipe_file):
    a = recipe_file(tmp_path / "a.yaml")
    b = recipe_file(tmp_path / "b.yaml", lr="2.0e-3")
    assert main(["diff", str(a), str(a)]) == 0
    assert "identical" in capsys.readouterr().out
    assert main(["diff", str(a), str(b), "--json"]) == 1
    rows = json.loads(capsys.readouterr().out)
    assert rows == [{"key": "stages.short.lr", "left": 0.001, "right": 0.002, "missing": None}]
    assert main(["diff", str(a), str(b), "--md"]) == 1
    assert "| `stages.short.lr` | 0.001 | 0.002 |" in capsys.readouterr().out
    assert main(["diff", str(a), str(b), "--all"]) == 1
    assert "optimizer.betas" in capsys.readouterr().out  # defaults are part of the resolved recipe
