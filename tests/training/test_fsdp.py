"""FSDP2 under torchrun (gloo on CPU): the same training as DDP, and checkpoints that move between process counts.

Three runs, made once for the module: DDP and FSDP on two processes to the
end, and the FSDP run's directory as it stood at step 3, copied and resumed
by one process (as a run moved to a machine with another GPU count).
"""

from __future__ import annotations

import shutil

import pytest
import torch
from safetensors.torch import load_file

from encoder_recipes.training import checkpoint as ckpt
from encoder_recipes.training.metrics import read_metrics

from .conftest import TRAIN_RECIPE

pytestmark = pytest.mark.slow

FSDP = "distributed.strategy=fsdp"
STOP = 3  # inside the first stage (4 steps), so the resumed run also crosses into the second


@pytest.fixture(scope="module")
def runs(tmp_path_factory, english_corpus, launch):
    folder = tmp_path_factory.mktemp("fsdp")
    recipe = folder / "tiny.yaml"
    recipe.write_text(TRAIN_RECIPE.format(corpus=english_corpus, steps1=4, steps2=2, checkpoint_every=STOP),
                      encoding="utf-8")
    launch(recipe, folder / "ddp", 2, overrides=("keep_checkpoints=5",))
    # activation checkpointing too: it recomputes the same layers, so it must not move a number
    same = (FSDP, "activation_checkpointing=true", "keep_checkpoints=5")
    launch(recipe, folder / "fsdp", 2, overrides=same)
    moved = folder / "moved"
    shutil.copytree(folder / "fsdp", moved, ignore=shutil.ignore_patterns("final", "eval", "report", "tensorboard"))
    for later in ckpt.list_checkpoints(moved / "checkpoints"):
        if later.step > STOP:
            shutil.rmtree(later.path)
    launch(recipe, moved, None, "--resume", "auto", overrides=same)
    return folder


def losses(run) -> dict[int, float]:
    """Training loss by logged step (log_every 2, and the last step of each stage)."""
    return {m["step"]: m["loss"] for m in read_metrics(run) if "loss" in m and m.get("event") != "eval"}


def evaluations(run) -> list[float]:
    return [m["mlm/loss"] for m in read_metrics(run) if m.get("event") == "eval"]


def assert_same_weights(a, b) -> None:
    one, two = load_file(str(a / "final/model.safetensors")), load_file(str(b / "final/model.safetensors"))
    assert one.keys() == two.keys()
    for key in one:
        # gradients are reduced in another order (all-reduce against reduce-scatter): float rounding, nothing more
        torch.testing.assert_close(one[key], two[key], rtol=1e-4, atol=1e-5, msg=key)


def test_fsdp_trains_as_ddp_does(runs):
    assert list(losses(runs / "fsdp")) == [2, 4, 6]
    assert losses(runs / "fsdp") == pytest.approx(losses(runs / "ddp"), rel=1e-4)
    assert_same_weights(runs / "ddp", runs / "fsdp")
    # the evaluators ran on a whole copy of the sharded model, and saw what DDP's model saw
    assert evaluations(runs / "fsdp") == pytest.approx(evaluations(runs / "ddp"), rel=1e-4)
    assert len(evaluations(runs / "fsdp")) == 2
    # their step-3 checkpoints hold the same weights and AdamW moments, whichever layout wrote them
    ddp, fsdp = (ckpt.load_checkpoint(ckpt.Checkpoint(runs / run / "checkpoints" / f"step_{STOP:08d}", STOP))
                 for run in ("ddp", "fsdp"))
    assert ddp[0].keys() == fsdp[0].keys() and ddp[1]["state"].keys() == fsdp[1]["state"].keys()
    for key in ddp[0]:
        torch.testing.assert_close(ddp[0][key], fsdp[0][key], rtol=1e-4, atol=1e-5, msg=key)
    for key, moments in ddp[1]["state"].items():
        for name in ("exp_avg", "exp_avg_sq", "step"):
            torch.testing.assert_close(moments[name], fsdp[1]["state"][key][name], rtol=1e-4, atol=1e-6,
                                       msg=f"{key} {name}")


def test_the_fsdp_export_is_a_stock_transformers_model(runs):
    from transformers import AutoModelForMaskedLM, pipeline

    final = runs / "fsdp" / "final"
    model = AutoModelForMaskedLM.from_pretrained(final)
    assert type(model).__name__ == "ModernBertForMaskedLM"
    assert model.decoder.weight.data_ptr() == model.model.embeddings.tok_embeddings.weight.data_ptr()  # still tied
    fill = pipeline("fill-mask", model=str(final), tokenizer=str(final), device="cpu")
    assert len(fill(f"Return the {fill.tokenizer.mask_token} of the file.")) == 5


def test_a_checkpoint_saved_by_two_processes_resumes_on_one(runs):
    saved = runs / "fsdp" / "checkpoints" / f"step_{STOP:08d}"
    # one shard file per writing process, and the manifest covers them
    assert sorted(p.name for p in (saved / "dcp").glob("*.distcp")) == ["__0_0.distcp", "__1_0.distcp"]
    assert ckpt.verify(saved) is None
    # the resumed run on one process continues as the uninterrupted two-process run did
    moved, uninterrupted = losses(runs / "moved"), losses(runs / "fsdp")
    assert list(moved) == [2, 4, 6]  # 2 from the two processes' log, 4 and 6 from the resumed run
    assert {s: moved[s] for s in (4, 6)} == pytest.approx({s: uninterrupted[s] for s in (4, 6)}, rel=1e-4)
    assert_same_weights(runs / "fsdp", runs / "moved")
    assert evaluations(runs / "moved") == pytest.approx(evaluations(runs / "fsdp"), rel=1e-4)
    # and its own checkpoints were written by one process
    final_step = ckpt.latest_complete(runs / "moved" / "checkpoints")
    assert final_step.step == 6 and [p.name for p in (final_step.path / "dcp").glob("*.distcp")] == ["__0_0.distcp"]
