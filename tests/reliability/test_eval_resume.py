"""A resume after a failed or killed evaluation does not crash again at the same point.

Before an evaluation starts the trainer writes ``eval/step_N.attempt``; on
resume an evaluation that raised is skipped with a warning, one that was
started once and never finished (a kill) is run again, and one started twice
without finishing is skipped. The failing evaluator is a real outside plugin
loaded through an entry point.
"""

from __future__ import annotations

import json

import pytest

from encoder_recipes.training.metrics import read_metrics
from encoder_recipes.training.trainer import RunOptions, train
from encoder_recipes.validation import load_recipe

BOOM = """
import os
from typing import ClassVar

from encoder_recipes.components.kinds import Evaluator
from encoder_recipes.hookspecs import hookimpl


class Boom(Evaluator):
    name: ClassVar[str] = "boom"

    def evaluate(self, *, model, tokenizer, context):
        if os.path.exists(os.environ["TPLUG_BOOM_FLAG"]):
            raise RuntimeError("the evaluator exploded")
        return {"ok": 1.0}


@hookimpl
def encoder_recipes_register_evaluators():
    return [Boom]
"""


def events(run):
    return [(r["event"], r["step"]) for r in read_metrics(run) if r.get("event", "").startswith("eval")]


def test_an_evaluation_that_raised_is_skipped_on_resume(train_recipe, write_plugin, registries_with, tmp_path,
                                                        monkeypatch, capsys):
    registries = registries_with(write_plugin("tplug_boom", BOOM))
    flag = tmp_path / "explode"
    flag.touch()
    monkeypatch.setenv("TPLUG_BOOM_FLAG", str(flag))
    path = train_recipe(steps1=2, steps2=1, checkpoint_every=1)
    path.write_text(path.read_text().replace("  - {name: mlm, num_sequences: 16, seq_len: 64, mask_rate: 0.3}",
                                             "  - {name: boom}"))
    resolved = load_recipe(str(path), registries=registries, overrides=["data_workers=0"])
    run = tmp_path / "run"
    with pytest.raises(RuntimeError, match="exploded"):
        train(resolved, registries, RunOptions(output=run, progress=False))
    attempt = json.loads((run / "eval" / "step_00000002.attempt").read_text())
    assert attempt["starts"] == 1 and "exploded" in attempt["error"]

    flag.unlink()  # fixed, but the failed evaluation is not retried: the resume must not crash-loop
    train(resolved, registries, RunOptions(output=run, resume="auto", progress=False))
    assert "evaluation after step 2 skipped: it failed before (RuntimeError: the evaluator exploded)" in capsys.readouterr().out
    assert events(run) == [("eval_skipped", 2), ("eval", 3)]
    # the failed one's record stays (a later resume skips it too); the one that finished removed its own
    assert [p.name for p in (run / "eval").glob("*.attempt")] == ["step_00000002.attempt"]


@pytest.mark.parametrize("starts, expected", [(1, "eval"), (2, "eval_skipped")])
def test_an_evaluation_killed_once_is_retried_and_twice_is_skipped(starts, expected, train_recipe, registries, tmp_path):
    resolved = load_recipe(str(train_recipe(steps1=2, steps2=1, checkpoint_every=1)), registries=registries,
                           overrides=["data_workers=0"])
    run = tmp_path / "run"
    train(resolved, registries, RunOptions(output=run, max_steps=2, progress=False))
    # what kills inside the step-2 evaluation leave: the checkpoint, a started attempt, no result
    lines = (run / "metrics.jsonl").read_text().splitlines()
    (run / "metrics.jsonl").write_text("".join(line + "\n" for line in lines if '"event": "eval"' not in line))
    (run / "eval" / "step_00000002.json").unlink()
    (run / "eval" / "step_00000002.attempt").write_text(json.dumps({"starts": starts}))
    train(resolved, registries, RunOptions(output=run, resume="auto", progress=False))
    assert events(run) == [(expected, 2), ("eval", 3)]
