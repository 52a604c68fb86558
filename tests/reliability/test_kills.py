"""SIGKILL a real run at many moments, resume with ``--resume auto``, and end where an uninterrupted run ends.

Each chain trains the kill recipe (12 + 6 steps, a checkpoint after every
step) in a fresh folder. Every life is ``encoder-recipes run --resume auto``
in a subprocess, SIGKILLed when its trigger fires:

* ``writing``: a ``.tmp-step_N`` folder has appeared (a checkpoint is being
  written) for the k-th checkpoint of this life, then a few milliseconds more,
  so the kill lands in the weights, the optimizer state, the JSON or the fsyncs;
* ``written``: the k-th new complete ``step_N`` folder has appeared (the kill
  lands between the rename and the pruning of old checkpoints, or early in the
  next step);
* ``exporting``: the ``final/`` export's temp folder has appeared;
* ``delay``: a random time after the process started, up to half an
  uninterrupted run (imports, tokenizer training, set-up, the data worker's
  start);
* ``running``: a random time after the life's first new checkpoint (training
  steps, checkpoint writes, evaluation).

Before each life the test computes the checkpoint ``--resume auto`` must
pick (the newest that verifies) and checks the life says it resumed from
exactly that one. After the last life the final weights must be bit-identical
to the uninterrupted reference run's, and the training losses in
``metrics.jsonl`` equal, step by step.

Killing the main process leaves its data worker behind (nothing tells it the
trainer died); this file counts those orphans and ends them, and
``test_sigkill_leaves_no_orphan_data_worker`` holds the fix to account.
"""

from __future__ import annotations

import json
import os
import random
import sys
import time
from pathlib import Path

import pytest

from .helpers import Life, checkpoint_names, listed_steps, newest_complete, result_of, temp_steps, weight_differences

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not sys.platform.startswith("linux"), reason="process groups via Linux /proc")]

#: the random delays are drawn from this seed; set ENCODER_RECIPES_KILL_SEED to try others
SEED = int(os.environ.get("ENCODER_RECIPES_KILL_SEED", "20261124"))
_rng = random.Random(SEED)

CHAINS: dict[str, list[tuple]] = {
    # (trigger, k-th checkpoint of the life, extra seconds before the kill)
    "mid-checkpoint": [("writing", 2, 0.0), ("writing", 3, 0.004), ("writing", 2, 0.015), ("writing", 3, 0.04),
                       ("writing", 2, 0.08), ("writing", 2, 0.002), ("exporting",)],
    "after-checkpoint": [("written", 1), ("written", 3), ("written", 2), ("written", 4), ("written", 1),
                         ("written", 3), ("written", 4)],
    # random times, as fractions of the uninterrupted run's time (so the chain suits fast and slow
    # machines alike): "delay" counts from the start (imports, tokenizer, set-up: no progress),
    # "running" from the life's first new checkpoint (training, checkpoint writes, evaluation)
    "random-delay": [("delay", round(_rng.uniform(0.05, 0.5), 3)) if i % 2 == 0
                     else ("running", round(_rng.uniform(0.0, 0.08), 3)) for i in range(10)],
}
TOTALS: dict[str, dict] = {}


def _kills_at_least(chain: str) -> int:
    """How many of a chain's kills must land.

    A random moment can fall after the run has finished (on a slow or loaded machine the last lives
    have little left to do): CI counted 5 of the 10, a quiet machine 9. The other triggers are events
    (a checkpoint folder appears), so all land, but one: a kill that lands a step late on a loaded
    machine leaves the chain's last trigger asking for a step the run no longer has.
    """
    return 5 if chain == "random-delay" else len(CHAINS[chain]) - 1


def _trigger(life: Life, run: Path, base: int, spec: tuple, run_seconds: float) -> bool:
    """Wait for the moment ``spec`` names; False when the process ended first."""
    kind = spec[0]
    if kind == "writing":
        target = base + spec[1]
        if not life.wait_until(lambda: any(s >= target for s in temp_steps(run))):
            return False
        time.sleep(spec[2])
        return True
    if kind == "written":
        target = base + spec[1]
        return life.wait_until(lambda: any(s >= target for s in listed_steps(run)))
    if kind == "exporting":
        return life.wait_until(lambda: run.is_dir() and any(n.startswith(".final.tmp-") for n in os.listdir(run)))
    if kind == "delay":
        life.wait_until(lambda: time.monotonic() - life.started >= spec[1] * run_seconds, poll=0.005)
        return life.proc.poll() is None
    if kind == "running":
        if not life.wait_until(lambda: any(s > base for s in listed_steps(run))):
            return False
        time.sleep(spec[1] * run_seconds)
        return life.proc.poll() is None
    raise ValueError(kind)


def _temp_folders(run: Path) -> set[tuple[str, int]]:
    """Each ``.tmp-step_N`` folder with its modification time (a new write changes it)."""
    root = run / "checkpoints"
    return {(f".tmp-step_{s:08d}", (root / f".tmp-step_{s:08d}").stat().st_mtime_ns) for s in temp_steps(run)}


def _phase(run: Path, before: set[int], temp_before: set[tuple[str, int]]) -> str:
    """Where a kill landed, judged from what it left on disk (a stale temp folder of an earlier life aside)."""
    if _temp_folders(run) - temp_before:
        return "checkpoint write"
    if run.is_dir() and any(n.startswith(".final.tmp-") for n in os.listdir(run)):
        return "export"
    if not set(listed_steps(run)) - before:
        return "start-up or first step"
    return "training"


def _check_resumed_from(life: Life, expected, wrote_new: bool, where: str) -> None:
    """The life resumed from the checkpoint --resume auto had to pick (when it got that far)."""
    said = life.resumed_from()
    if expected is None:
        assert said is None, f"{where}: resumed from {said} though no checkpoint was complete"
    elif said is not None or wrote_new:
        assert said == (expected.path, expected.step), f"{where}: resumed from {said}, expected {expected.path}"


@pytest.mark.parametrize("chain", list(CHAINS))
def test_killed_runs_resume_to_the_same_weights_and_losses(chain, kill_recipe, reference_run, tmp_path):
    run, logs = tmp_path / "run", tmp_path / "logs"
    stats = {"kills": 0, "orphans": 0, "broken_seen": 0, "resumes_checked": 0, "lives": 0, "landed": {}}
    started = time.monotonic()
    schedule = list(CHAINS[chain]) + [None]  # None: the last life runs to the end
    for i, spec in enumerate(schedule):
        expected, broken = newest_complete(run)
        stats["broken_seen"] += len(broken)
        before, temp_before = set(listed_steps(run)), _temp_folders(run)
        life = Life(kill_recipe, run, logs, f"{i:02d}", "--resume", "auto")
        stats["lives"] += 1
        where = f"{chain} life {i} ({spec})"
        try:
            if spec is not None and _trigger(life, run, expected.step if expected else 0, spec, reference_run.seconds) and life.kill():
                life.wait(timeout=60)
                stats["kills"] += 1
                phase = _phase(run, before, temp_before)
                stats["landed"][phase] = stats["landed"].get(phase, 0) + 1
                orphans = life.leftovers(grace=1.0)
                stats["orphans"] += len(orphans)
            else:
                code = life.wait(timeout=600)
                assert code == 0, f"{where}: exit {code}\n{life.stderr[-3000:]}"
        finally:
            life.end_group()
        wrote_new = bool(set(listed_steps(run)) - before)
        _check_resumed_from(life, expected, wrote_new, where)
        stats["resumes_checked"] += life.resumed_from() is not None
        for message in broken:  # a checkpoint the test saw as broken is reported by path to the user too
            path = message.split("skipping checkpoint ", 1)[1].split(":", 1)[0]
            if life.resumed_from() is not None:
                assert f"skipping checkpoint {path}" in life.stderr, f"{where}: {path} not reported"
        if spec is None:
            break

    assert (run / "final" / "model.safetensors").is_file(), checkpoint_names(run)
    result = result_of(run)
    assert weight_differences(result.weights, reference_run.weights) == [], f"{chain}: final weights differ"
    assert result.losses == reference_run.losses, f"{chain}: training losses differ"
    stats["eval_records_missing"] = len(reference_run.evals) - len(result.evals)
    stats["seconds"] = round(time.monotonic() - started, 1)
    stats["reference_seconds"] = round(reference_run.seconds, 1)
    TOTALS[chain] = stats
    print(f"\n{chain}: {json.dumps(stats)}")
    assert stats["kills"] >= _kills_at_least(chain), stats  # the chain really was killed, again and again


def test_kill_totals_are_reported():
    """Runs after the chains: the sum the README quotes (every event-triggered kill plus the random floor, all survived)."""
    if len(TOTALS) < len(CHAINS):
        pytest.skip("the kill chains did not all run in this session")
    kills = sum(s["kills"] for s in TOTALS.values())
    landed: dict[str, int] = {}
    for stats in TOTALS.values():
        for phase, n in stats["landed"].items():
            landed[phase] = landed.get(phase, 0) + n
    print(f"\nkills survived: {kills}; landed in: {json.dumps(landed)}; details: {json.dumps(TOTALS)}")
    assert kills >= sum(_kills_at_least(chain) for chain in CHAINS)


def test_sigkill_leaves_no_orphan_data_worker(kill_recipe, tmp_path):
    run = tmp_path / "run"
    life = Life(kill_recipe, run, tmp_path / "logs", "orphan")
    try:
        assert life.wait_until(lambda: any(s >= 2 for s in listed_steps(run))), life.stderr[-2000:]
        assert life.kill()
        life.wait(timeout=60)
        left = life.leftovers(grace=10.0)
    finally:
        life.end_group()
    assert left == [], f"processes of the killed run still alive after 10 s: {left}"
