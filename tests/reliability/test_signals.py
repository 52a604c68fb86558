"""SIGTERM and one Ctrl-C: a checkpoint at the next step boundary, exit 130 with how to resume, and an exact resume.

The run is a real ``encoder-recipes run`` subprocess of the kill recipe; the
signal is sent once training is under way (two checkpoints exist). The
resumed run must end bit-identical to the uninterrupted reference run.

A signal sent to the process alone is what ``kill PID``, Kubernetes and
``docker stop`` do. A terminal's Ctrl-C and batch schedulers (Slurm's
``scancel``, systemd) signal the whole process group, the data worker too;
those two cases are the ``group`` tests.
"""

from __future__ import annotations

import re
import signal
import sys

import pytest

from encoder_recipes.training import checkpoint as ckpt

from .helpers import Life, listed_steps, newest_complete, result_of, weight_differences

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not sys.platform.startswith("linux"), reason="process groups via Linux /proc")]

STOPPED = re.compile(r"stopped: checkpoint written at step (\d+); resume with: "
                     r"encoder-recipes run (\S+) --output (\S+) --resume auto")


def _stop_and_resume(kill_recipe, reference_run, tmp_path, sig: int, whole_group: bool) -> None:
    run, logs = tmp_path / "run", tmp_path / "logs"
    life = Life(kill_recipe, run, logs, "signalled")
    try:
        assert life.wait_until(lambda: any(s >= 2 for s in listed_steps(run))), life.stderr[-3000:]
        seen = max(listed_steps(run))
        life.signal_group(sig) if whole_group else life.kill(sig)
        code = life.wait(timeout=60)
        left = life.leftovers(grace=5.0)
    finally:
        life.end_group()
    name = signal.Signals(sig).name
    assert code == 130, f"{name}: exit {code}\n{life.stderr[-3000:]}"
    assert f"{name}: stopping after this step with a checkpoint" in life.stdout
    match = STOPPED.search(life.stderr)
    assert match, life.stderr[-2000:]
    step = int(match[1])
    assert (match[2], match[3]) == (str(kill_recipe), str(run))
    # the checkpoint is the step the run stopped after, complete, and the one --resume auto picks
    assert step >= seen
    assert ckpt.verify(run / "checkpoints" / f"step_{step:08d}") is None
    assert newest_complete(run)[0].step == step
    assert "Traceback" not in life.stderr, life.stderr[-3000:]
    assert left == [], f"processes left behind by a clean stop: {left}"

    resumed = Life(kill_recipe, run, logs, "resumed", "--resume", "auto")
    try:
        code = resumed.wait(timeout=600)
    finally:
        resumed.end_group()
    assert code == 0, resumed.stderr[-3000:]
    assert resumed.resumed_from() == (run / "checkpoints" / f"step_{step:08d}", step)
    result = result_of(run)
    assert weight_differences(result.weights, reference_run.weights) == []
    assert result.losses == reference_run.losses


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_signal_to_the_trainer_checkpoints_exits_130_and_resumes_exactly(sig, kill_recipe, reference_run, tmp_path):
    _stop_and_resume(kill_recipe, reference_run, tmp_path, sig, whole_group=False)


def test_sigterm_to_the_process_group_checkpoints_and_resumes(kill_recipe, reference_run, tmp_path):
    _stop_and_resume(kill_recipe, reference_run, tmp_path, signal.SIGTERM, whole_group=True)


def test_ctrl_c_in_a_terminal_checkpoints_and_resumes(kill_recipe, reference_run, tmp_path):
    _stop_and_resume(kill_recipe, reference_run, tmp_path, signal.SIGINT, whole_group=True)
