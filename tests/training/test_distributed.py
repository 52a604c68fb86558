"""Two processes under torchrun (gloo on CPU) train exactly like one with the same global batch."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file

from encoder_recipes.training.metrics import read_metrics


@pytest.mark.slow
def test_two_gloo_processes_match_one(train_recipe, launch, tmp_path):
    recipe = train_recipe(steps1=6, steps2=4, checkpoint_every=100)
    launch(recipe, tmp_path / "one", 1)
    launch(recipe, tmp_path / "two", 2)
    one, two = load_file(str(tmp_path / "one/final/model.safetensors")), load_file(str(tmp_path / "two/final/model.safetensors"))
    for key in one:
        # gradients are averaged in a different order, so allow float rounding, nothing more
        torch.testing.assert_close(one[key], two[key], rtol=1e-4, atol=1e-5, msg=key)
    loss = lambda d: [m["loss"] for m in read_metrics(d) if "loss" in m and m.get("event") != "eval"]  # noqa: E731
    assert loss(tmp_path / "one") == pytest.approx(loss(tmp_path / "two"), rel=1e-4)
