"""A loss that becomes NaN or infinite: stop naming the step and the last good checkpoint, or skip with a bound.

The blow-up is real, not injected: a peak learning rate of 1e30 (an override
on the command line). The tiny recipe warms up over 3 steps from 0, so the
first step changes nothing, the second throws the weights to about 3e29,
and the next forward pass overflows.
"""

from __future__ import annotations

import math
import re

from encoder_recipes.cli import main
from encoder_recipes.training import checkpoint as ckpt
from encoder_recipes.training.metrics import read_metrics

from .helpers import weight_differences

BLOW_UP = ["stages.short.lr=1e30", "data_workers=0", "keep_checkpoints=20", "log_every=1"]
LOSS_BECAME = re.compile(r"loss became (nan|inf|-inf) at step (\d+) \(stage short\); last good checkpoint: (\S+)")


def _run(capsys, recipe, out, *overrides):
    code = main(["run", str(recipe), "--output", str(out), "--device", "cpu", *BLOW_UP, *overrides])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _losses(run):
    return {r["step"]: r["loss"] for r in read_metrics(run) if "loss" in r and r.get("event") is None}


def test_non_finite_loss_stops_naming_the_step_and_the_last_good_checkpoint(train_recipe, tmp_path, capsys):
    run = tmp_path / "run"
    code, _, err = _run(capsys, train_recipe(steps1=8, steps2=2, checkpoint_every=1), run)
    assert code == 1
    match = LOSS_BECAME.search(err)
    assert match and re.search(r"^error: loss became", err, re.M), err
    step, named = int(match[2]), match[3]
    losses = _losses(run)
    # every step before the named one had a finite loss, and nothing ran after it
    assert step >= 1 and sorted(losses) == list(range(1, step + 1))
    assert all(math.isfinite(v) for v in losses.values())
    newest = ckpt.latest_complete(run / "checkpoints")
    assert named == str(newest.path) and newest.step == step  # checkpoint_every 1: the step just before
    assert not (run / "checkpoints" / f"step_{step + 1:08d}").exists()
    assert not (run / "final").exists()


def test_skip_counts_skipped_batches_and_stops_after_max_nan_skips(train_recipe, tmp_path, capsys):
    run = tmp_path / "run"
    code, out, err = _run(capsys, train_recipe(steps1=8, steps2=2, checkpoint_every=1), run,
                          "on_nan=skip", "max_nan_skips=3")
    assert code == 1
    match = LOSS_BECAME.search(err)
    assert match and "(4 batches skipped)" in err, err
    last = int(match[2])
    skipped = re.findall(r"warning: loss became \S+ at step (\d+) .*; batch skipped \((\d+) so far\)", out)
    first = last - 3
    assert skipped == [(str(first + i), str(i + 1)) for i in range(3)], out
    # a skipped batch changes nothing: the weights after the skipped steps are those before them
    before = ckpt.load_checkpoint(ckpt.Checkpoint(run / "checkpoints" / f"step_{first:08d}", first))[0]
    after = ckpt.load_checkpoint(ckpt.Checkpoint(run / "checkpoints" / f"step_{last:08d}", last))[0]
    assert weight_differences(before, after) == []
    losses = _losses(run)
    assert all(math.isfinite(losses[s]) for s in range(1, first + 1))
    assert all(math.isnan(losses[s]) for s in range(first + 1, last + 1))


def test_skip_within_the_bound_runs_to_the_end(train_recipe, tmp_path, capsys):
    run = tmp_path / "run"
    code, out, _ = _run(capsys, train_recipe(steps1=6, steps2=2, checkpoint_every=4), run,
                        "on_nan=skip", "max_nan_skips=100", "evaluators=[]")
    assert code == 0 and (run / "final" / "model.safetensors").is_file()
    counts = [int(n) for n in re.findall(r"batch skipped \((\d+) so far\)", out)]
    losses = _losses(run)
    nan_steps = [s for s, v in losses.items() if math.isnan(v)]
    assert counts == list(range(1, len(nan_steps) + 1)) and nan_steps == list(range(nan_steps[0], 9))
