"""Torn and corrupted checkpoints, failed writes, a full disk, an unwritable run directory.

A kill in the middle of a checkpoint leaves a ``.tmp-step_N`` folder, which is
never a candidate. These tests make the other damage a crash, a full disk or
a bad copy can do to the *newest* ``step_N`` folder, and check that it is
reported by path with what is wrong and that the one before it is used.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import torch

from encoder_recipes.cli import main
from encoder_recipes.training import checkpoint as ckpt
from encoder_recipes.training.metrics import read_metrics
from encoder_recipes.training.trainer import RunOptions, TrainingError, train
from encoder_recipes.validation import load_recipe

from .conftest import TRAIN_RECIPE
from .helpers import Life, newest_complete, result_of, weight_differences


@pytest.fixture(scope="module")
def six_steps(tmp_path_factory, english_corpus) -> Path:
    """A run stopped after 6 steps with checkpoints at steps 2, 4 and 6 (trained once for the module)."""
    from encoder_recipes.registry import default_registries

    folder = tmp_path_factory.mktemp("six_steps")
    recipe = folder / "tiny.yaml"
    recipe.write_text(TRAIN_RECIPE.format(corpus=english_corpus, steps1=12, steps2=6, checkpoint_every=2))
    registries = default_registries()
    resolved = load_recipe(str(recipe), registries=registries, overrides=["keep_checkpoints=5"])
    train(resolved, registries, RunOptions(output=folder / "run", max_steps=6, progress=False))
    assert [c.step for c in ckpt.list_checkpoints(folder / "run" / "checkpoints")] == [2, 4, 6]
    return folder / "run"


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _flip_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF  # same size: only the checksum can tell
    path.write_bytes(bytes(data))


DAMAGE = {
    "truncated shard": (lambda c: _truncate(c / "dcp/__0_0.distcp"), "dcp/__0_0.distcp has"),
    "truncated DCP metadata": (lambda c: _truncate(c / "dcp/.metadata"), "dcp/.metadata has"),
    "flipped byte in a shard": (lambda c: _flip_byte(c / "dcp/__0_0.distcp"), "dcp/__0_0.distcp does not match"),
    "flipped byte in the DCP metadata": (lambda c: _flip_byte(c / "dcp/.metadata"), "dcp/.metadata does not match"),
    "shard missing": (lambda c: (c / "dcp/__0_0.distcp").unlink(), "dcp/__0_0.distcp is missing"),
    "flipped byte in state.json": (lambda c: _flip_byte(c / "state.json"), "state.json does not match"),
    "no manifest": (lambda c: (c / "MANIFEST.json").unlink(), "no manifest"),
    "torn manifest": (lambda c: _truncate(c / "MANIFEST.json"), "unreadable manifest"),
    "state.json missing": (lambda c: (c / "state.json").unlink(), "state.json is missing"),
    "empty folder": (lambda c: [shutil.rmtree(p) if p.is_dir() else p.unlink() for p in c.iterdir()], "no manifest"),
}


@pytest.mark.parametrize("damage", list(DAMAGE))
def test_damaged_newest_checkpoint_is_reported_by_path_and_the_previous_one_used(damage, six_steps, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(six_steps, run)
    newest = run / "checkpoints" / "step_00000006"
    harm, reason = DAMAGE[damage]
    harm(newest)
    found, warned = newest_complete(run)
    assert found.step == 4
    assert len(warned) == 1 and f"skipping checkpoint {newest}: " in warned[0] and reason in warned[0], warned
    # the explicit form refuses it outright, saying why
    with pytest.raises(ckpt.CheckpointError, match=rf"cannot resume from {newest}: .*{reason}"):
        ckpt.resolve_resume(run, str(newest))
    # a leftover temp folder of a later step, however complete it looks, is never a candidate
    shutil.copytree(run / "checkpoints" / "step_00000004", run / "checkpoints" / ".tmp-step_00000008")
    assert newest_complete(run)[0].step == 4


def test_every_checkpoint_broken_means_a_fresh_start(six_steps, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(six_steps, run)
    for folder in (run / "checkpoints").iterdir():
        (folder / "MANIFEST.json").unlink()
    found, warned = newest_complete(run)
    assert found is None and len(warned) == 3
    assert ckpt.resolve_resume(run, "auto") is None


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="process groups via Linux /proc")
def test_a_torn_newest_checkpoint_resumes_from_the_previous_to_the_same_weights(kill_recipe, reference_run, tmp_path):
    """End to end: the CLI reports the broken checkpoint by path, resumes from the one before, ends exactly."""
    run, logs = tmp_path / "run", tmp_path / "logs"
    first = Life(kill_recipe, run, logs, "first", "--max-steps", "6")
    assert first.wait() == 0, first.stderr[-3000:]
    newest = run / "checkpoints" / "step_00000006"
    _truncate(newest / "dcp" / "__0_0.distcp")
    second = Life(kill_recipe, run, logs, "second", "--resume", "auto")
    assert second.wait() == 0, second.stderr[-3000:]
    assert f"skipping checkpoint {newest}: dcp/__0_0.distcp has" in second.stderr
    assert second.resumed_from() == (run / "checkpoints" / "step_00000005", 5)
    result = result_of(run)
    assert weight_differences(result.weights, reference_run.weights) == []
    assert result.losses == reference_run.losses


# --- failed writes -----------------------------------------------------------------


def test_a_failed_write_leaves_nothing_behind_and_keeps_the_older_checkpoints(tmp_path):
    root = tmp_path / "checkpoints"
    weights = {"w": torch.arange(6, dtype=torch.float32)}
    ckpt.save_checkpoint(root, 1, model_state=weights, optimizer_state={"m": torch.ones(3)}, state={"step": 1}, keep=2)
    # an optimizer state that cannot be pickled fails after the weights were written
    with pytest.raises(TypeError, match="pickle"):  # not a disk problem: raised as it is, after cleaning up
        ckpt.save_checkpoint(root, 2, model_state=weights, optimizer_state={"bad": threading.Lock()},
                             state={"step": 2}, keep=2)
    assert sorted(os.listdir(root)) == ["step_00000001"]
    assert ckpt.latest_complete(root).step == 1
    # a checkpoint folder that cannot be created: an error naming the checkpoint, nothing half-made
    blocked = tmp_path / "blocked"
    blocked.write_text("a file where the checkpoints folder should be")
    with pytest.raises(ckpt.CheckpointError, match=r"cannot write checkpoint .*blocked/step_00000003: "):
        ckpt.save_checkpoint(blocked, 3, model_state=weights, optimizer_state={}, state={"step": 3}, keep=2)


@pytest.fixture
def tmpfs(tmp_path):
    """mount(tmpfs) at a folder, with options; skipped where the tests may not mount (not root, containers)."""
    mounted: list[Path] = []

    def mount(name: str, options: str) -> Path:
        folder = tmp_path / name
        folder.mkdir()
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(folder)], capture_output=True)
        if done.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
        mounted.append(folder)
        return folder

    yield mount
    for folder in mounted:
        subprocess.run(["umount", "-l", str(folder)], check=False)


def test_a_full_disk_fails_the_write_cleanly(tmpfs):
    root = tmpfs("small", "size=1m") / "checkpoints"
    ckpt.save_checkpoint(root, 1, model_state={"w": torch.zeros(1000)}, optimizer_state={}, state={"step": 1}, keep=2)
    too_big = {"w": torch.zeros(400_000)}  # 1.6 MB of weights
    # DCP streams every tensor through torch.save, whose message for a full disk is cryptic: the
    # free space the error adds says what happened
    with pytest.raises(ckpt.CheckpointError, match=r"step_00000002: .*(No space left on device|MB free on its disk).*"
                                                    r"the newest complete checkpoint is .*step_00000001"):
        ckpt.save_checkpoint(root, 2, model_state=too_big, optimizer_state={}, state={"step": 2}, keep=2)
    too_big_optimizer = {"exp_avg": torch.zeros(400_000)}  # torch.save's own message is cryptic: free space is added
    with pytest.raises(ckpt.CheckpointError, match=r"MB free on its disk"):
        ckpt.save_checkpoint(root, 2, model_state={"w": torch.zeros(10)}, optimizer_state=too_big_optimizer,
                             state={"step": 2}, keep=2)
    assert sorted(os.listdir(root)) == ["step_00000001"]
    assert ckpt.latest_complete(root).step == 1


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="process groups via Linux /proc")
def test_a_run_on_a_disk_that_fills_up_stops_and_resumes_exactly_once_there_is_room(
        tmpfs, kill_recipe, reference_run):
    disk = tmpfs("disk", "size=6m")  # the tokenizer and two checkpoints (~3 MB each) do not fit
    run = disk / "run"
    life = Life(kill_recipe, run, disk.parent / "logs", "full")
    assert life.wait() != 0
    assert f"cannot write checkpoint {run / 'checkpoints'}" in life.stderr
    assert "No space left on device" in life.stderr or "MB free on its disk" in life.stderr
    names = sorted(os.listdir(run / "checkpoints"))
    assert names and not [n for n in names if n.startswith(".tmp-")], names
    assert all(ckpt.verify(run / "checkpoints" / n) is None for n in names)
    subprocess.run(["mount", "-o", "remount,size=64m", str(disk)], check=True)
    resumed = Life(kill_recipe, run, disk.parent / "logs", "resumed", "--resume", "auto")
    assert resumed.wait() == 0, resumed.stderr[-3000:]
    assert resumed.resumed_from()[1] == int(names[-1].split("_")[1])
    result = result_of(run)
    assert weight_differences(result.weights, reference_run.weights) == []
    assert result.losses == reference_run.losses


# --- an unwritable run directory ------------------------------------------------------


def _read_only_dir(tmp_path: Path, tmpfs) -> Path:
    """A folder no one may write to, root included: a read-only mount, else chmod (which root ignores)."""
    try:
        return tmpfs("readonly", "ro,size=1m")
    except pytest.skip.Exception:
        folder = tmp_path / "readonly"
        folder.mkdir()
        folder.chmod(0o555)
        try:
            (folder / "probe").write_text("x")
        except OSError:
            return folder
        pytest.skip("running as root without mount: no folder here is read-only")


@pytest.mark.parametrize("how", ["a file in the way", "read-only folder", "under /proc"])
def test_unwritable_run_directory_is_refused_before_any_work(how, train_recipe, tmp_path, tmpfs, capsys):
    if how == "a file in the way":
        (tmp_path / "file").write_text("not a folder")
        out = tmp_path / "file" / "run"
    elif how == "read-only folder":
        out = _read_only_dir(tmp_path, tmpfs) / "run"
    else:
        out = Path("/proc/self/encoder-recipes-run")
    started = time.monotonic()
    code = main(["run", str(train_recipe()), "--output", str(out), "--device", "cpu"])
    err = capsys.readouterr().err
    assert code == 1
    assert f"error: cannot write to the run directory {out}: " in err, err
    assert time.monotonic() - started < 20  # refused at set-up: no tokenizer trained, no model built
    assert not out.exists()


# --- what a kill between two writes leaves (need trainer.py changes) ----------------------------


@pytest.mark.slow
def test_an_evaluation_lost_to_a_kill_is_run_on_resume(train_recipe, tmp_path):
    from encoder_recipes.registry import default_registries

    registries = default_registries()
    resolved = load_recipe(str(train_recipe(steps1=4, steps2=2, checkpoint_every=1)), registries=registries)
    run = tmp_path / "run"
    train(resolved, registries, RunOptions(output=run, max_steps=4, progress=False))
    # the state a kill right after the step-4 checkpoint leaves: no evaluation of stage "short" yet
    lines = (run / "metrics.jsonl").read_text().splitlines()
    (run / "metrics.jsonl").write_text("".join(line + "\n" for line in lines if '"event": "eval"' not in line))
    shutil.rmtree(run / "eval")
    train(resolved, registries, RunOptions(output=run, resume="auto", progress=False))
    assert [r["step"] for r in read_metrics(run) if r.get("event") == "eval"] == [4, 6]


def test_a_torn_last_metrics_line_does_not_stop_a_resume(train_recipe, tmp_path):
    from encoder_recipes.registry import default_registries

    registries = default_registries()
    resolved = load_recipe(str(train_recipe(steps1=4, steps2=1, checkpoint_every=1)), registries=registries,
                           overrides=["data_workers=0", "evaluators=[]", "log_every=1"])
    run = tmp_path / "run"
    train(resolved, registries, RunOptions(output=run, max_steps=2, progress=False))
    with (run / "metrics.jsonl").open("a") as log:
        log.write('{"step": 3, "stage": "sho')  # the disk filled up in the middle of the line
    train(resolved, registries, RunOptions(output=run, resume="auto", max_steps=3, progress=False))
    assert [r["step"] for r in read_metrics(run)] == [1, 2, 3]
