"""Two processes under torchrun (gloo on CPU) train exactly like one with the same global batch."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

import pytest
import torch
from safetensors.torch import load_file

from encoder_recipes.training.metrics import read_metrics


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch(recipe, out, nproc: int) -> None:
    cmd = [sys.executable, "-m", "torch.distributed.run", f"--nproc-per-node={nproc}", "--nnodes=1",
           f"--master-port={free_port()}", "-m", "encoder_recipes", "run", str(recipe), "--output", str(out),
           "--device", "cpu"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TQDM_DISABLE": "1"}
    result = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]


@pytest.mark.slow
def test_two_gloo_processes_match_one(train_recipe, tmp_path):
    recipe = train_recipe(steps1=6, steps2=4, checkpoint_every=100)
    launch(recipe, tmp_path / "one", 1)
    launch(recipe, tmp_path / "two", 2)
    one, two = load_file(str(tmp_path / "one/final/model.safetensors")), load_file(str(tmp_path / "two/final/model.safetensors"))
    for key in one:
        # gradients are averaged in a different order, so allow float rounding, nothing more
        torch.testing.assert_close(one[key], two[key], rtol=1e-4, atol=1e-5, msg=key)
    loss = lambda d: [m["loss"] for m in read_metrics(d) if "loss" in m and m.get("event") != "eval"]  # noqa: E731
    assert loss(tmp_path / "one") == pytest.approx(loss(tmp_path / "two"), rel=1e-4)
