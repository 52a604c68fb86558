"""Driving real ``encoder-recipes run`` processes: start, wait for a moment on disk, kill, compare.

Each process runs in its own session, so the whole tree it starts (the data
worker too) shares one process group whose leftovers the tests can find and
end by that group's id.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors.torch import load_file

from encoder_recipes.training import checkpoint as ckpt
from encoder_recipes.training.metrics import read_metrics

#: the environment of every run: no progress bars, one thread (CPU results are then bit-identical)
ENV = {**os.environ, "TQDM_DISABLE": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
       "PYTHONUNBUFFERED": "1"}
RESUMED = re.compile(r"resumed from (\S+) at step (\d+)")


def run_command(recipe: Path, out: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "encoder_recipes", "run", str(recipe), "--output", str(out), "--device", "cpu",
            *extra]


class Life:
    """One ``encoder-recipes run`` process, its output in files (a full pipe would stall it)."""

    def __init__(self, recipe: Path, out: Path, logs: Path, name: str, *extra: str, env: dict | None = None) -> None:
        logs.mkdir(parents=True, exist_ok=True)
        self.out, self.stdout_path, self.stderr_path = out, logs / f"{name}.out", logs / f"{name}.err"
        with self.stdout_path.open("w") as stdout, self.stderr_path.open("w") as stderr:
            self.proc = subprocess.Popen(run_command(recipe, out, *extra), stdout=stdout, stderr=stderr,
                                         env=env or ENV, start_new_session=True)
        self.started = time.monotonic()

    @property
    def pid(self) -> int:
        return self.proc.pid

    def wait_until(self, ready: Callable[[], bool], timeout: float = 180.0, poll: float = 0.001) -> bool:
        """Poll ``ready`` until it holds (True) or the process ends or time runs out (False)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if ready():
                return True
            if self.proc.poll() is not None:
                return ready()
            time.sleep(poll)
        return False

    def kill(self, sig: int = signal.SIGKILL) -> bool:
        """Send ``sig`` to the main process only (as the OOM killer or ``kill -9 PID`` would); True if it was alive."""
        if self.proc.poll() is not None:
            return False
        os.kill(self.proc.pid, sig)
        return True

    def signal_group(self, sig: int) -> None:
        """Send ``sig`` to the whole process group, as a terminal's Ctrl-C or a batch scheduler does."""
        os.killpg(self.proc.pid, sig)

    def wait(self, timeout: float = 300.0) -> int:
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.end_group()
            self.proc.wait()
            raise

    def leftovers(self, grace: float = 0.0) -> list[int]:
        """Processes of this run's group still alive (after waiting up to ``grace`` seconds for them to go)."""
        deadline = time.monotonic() + grace
        while True:
            alive = group_members(self.proc.pid)
            if not alive or time.monotonic() >= deadline:
                return alive
            time.sleep(0.05)

    def end_group(self) -> None:
        """SIGKILL whatever is left of this run's process group (only processes this test started)."""
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass

    @property
    def stdout(self) -> str:
        return self.stdout_path.read_text(encoding="utf-8", errors="replace")

    @property
    def stderr(self) -> str:
        return self.stderr_path.read_text(encoding="utf-8", errors="replace")

    def resumed_from(self) -> tuple[Path, int] | None:
        match = RESUMED.search(self.stdout)
        return (Path(match[1]), int(match[2])) if match else None


def group_members(pgid: int) -> list[int]:
    """Live (not zombie) processes whose process group is ``pgid`` (Linux /proc)."""
    members = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        state, _ppid, pgrp = stat.rsplit(")", 1)[1].split()[:3]
        if int(pgrp) == pgid and state != "Z":
            members.append(int(entry))
    return members


# --- what a run left on disk ----------------------------------------------------------


def checkpoint_names(run: Path) -> list[str]:
    root = run / "checkpoints"
    return sorted(os.listdir(root)) if root.is_dir() else []


def temp_steps(run: Path) -> list[int]:
    """Steps whose checkpoint is being (or was being) written: ``.tmp-step_N`` folders."""
    return [int(name.rsplit("_", 1)[1]) for name in checkpoint_names(run) if name.startswith(".tmp-step_")]


def listed_steps(run: Path) -> list[int]:
    """Steps of the ``step_N`` folders (complete or not)."""
    return [c.step for c in ckpt.list_checkpoints(run / "checkpoints")]


def newest_complete(run: Path) -> tuple[ckpt.Checkpoint | None, list[str]]:
    """The checkpoint ``--resume auto`` must pick, and the warnings about the broken ones it skips."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ckpt.CheckpointWarning)
        found = ckpt.latest_complete(run / "checkpoints")
    return found, [str(w.message) for w in caught if issubclass(w.category, ckpt.CheckpointWarning)]


@dataclass
class RunResult:
    """What an (uninterrupted or resumed) run ended with."""

    path: Path
    weights: dict[str, torch.Tensor]
    losses: list[tuple[int, float]]  # (step, training loss) from metrics.jsonl
    evals: list[dict] = field(default_factory=list)
    seconds: float = 0.0  # wall time of the run, when one process made it


def result_of(run: Path) -> RunResult:
    records = read_metrics(run)
    return RunResult(run, load_file(str(run / "final" / "model.safetensors")),
                     [(r["step"], r["loss"]) for r in records if "loss" in r and r.get("event") is None],
                     [r for r in records if r.get("event") == "eval"])


def weight_differences(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> list[str]:
    """Names of tensors that are not bit-identical (an empty list: the same weights)."""
    if a.keys() != b.keys():
        return sorted(set(a) ^ set(b))
    return [name for name in a if not torch.equal(a[name], b[name])]
