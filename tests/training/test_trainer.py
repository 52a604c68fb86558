"""Real training on CPU: stages follow the plan, checkpoints resume exactly, the export loads in stock transformers."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoModelForMaskedLM, AutoTokenizer, pipeline

from encoder_recipes.plan import build_plan
from encoder_recipes.training.metrics import read_metrics
from encoder_recipes.training.trainer import RunOptions, TrainingError, train
from encoder_recipes.validation import load_recipe


def run(recipe_path, registries, out, **options):
    resolved = load_recipe(str(recipe_path), registries=registries)
    return train(resolved, registries, RunOptions(output=out, progress=False, **options)), resolved


def weights(folder):
    return load_file(str(folder / "model.safetensors"))


def test_two_stage_run_follows_plan_and_exports(train_recipe, registries, tmp_path):
    final, resolved = run(train_recipe(), registries, tmp_path / "run")
    plan = build_plan(resolved.recipe, registries, vocab_size=512)
    steps = [m for m in read_metrics(tmp_path / "run") if "loss" in m and m.get("event") != "eval"]
    for record in steps:
        stage = plan.stage_at(record["step"] - 1)
        assert record["stage"] == stage.name
        assert record["seq_len"] == stage.lengths[0]
        assert record["mask_rate"] == pytest.approx(stage.mask_rate_start)
        assert record["global_rope_theta"] == stage.global_rope_theta
    assert {r["stage"] for r in steps} == {"short", "long"}
    assert steps[-1]["step"] == plan.total_steps
    # the stage's LR restarts: linear warmup over 3 steps, then decay
    short = {r["step"]: r["lr"] for r in steps if r["stage"] == "short"}
    assert short[2] == pytest.approx(3e-3 * 1 / 3)

    evals = [m for m in read_metrics(tmp_path / "run") if m.get("event") == "eval"]
    assert [e["step"] for e in evals] == [12, 18]  # at each stage end
    assert (tmp_path / "run" / "eval" / "step_00000012.json").exists()

    model = AutoModelForMaskedLM.from_pretrained(final)
    tokenizer = AutoTokenizer.from_pretrained(final)
    assert model.config.rope_parameters["full_attention"]["rope_theta"] == 80000
    answers = pipeline("fill-mask", model=model, tokenizer=tokenizer)("Return the [MASK] of the list.")
    assert len(answers) == 5 and all("sequence" in a for a in answers)
    card = (final / "README.md").read_text(encoding="utf-8")
    assert "tiny-en" in card and "| long |" in card and "transformers" in card


def test_validation_loss_falls(train_recipe, registries, tmp_path):
    run(train_recipe(steps1=30, steps2=2, checkpoint_every=100), registries, tmp_path / "run")
    from encoder_recipes.evaluation.mlm import MLMEvaluator  # noqa: F401  (registered as "mlm")

    evals = [m for m in read_metrics(tmp_path / "run") if m.get("event") == "eval"]
    # an untrained model scores about ln(vocab) = ln(512) ≈ 6.2; training must beat it clearly
    assert evals[0]["mlm/loss"] < 5.8, evals


def test_resume_gives_the_same_losses_and_weights(train_recipe, registries, tmp_path):
    recipe = train_recipe()
    full, _ = run(recipe, registries, tmp_path / "full")
    # stop inside stage 1 (after the step-8 checkpoint), then at the stage boundary, then finish
    run(recipe, registries, tmp_path / "parts", max_steps=10)
    run(recipe, registries, tmp_path / "parts", resume="auto", max_steps=12)
    parts, _ = run(recipe, registries, tmp_path / "parts", resume="auto")
    a, b = weights(full), weights(parts)
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=0, msg=key)
    losses = lambda d: [(m["step"], m["loss"]) for m in read_metrics(d) if "loss" in m and m.get("event") != "eval"]  # noqa: E731
    assert losses(tmp_path / "full") == losses(tmp_path / "parts")


def test_resume_with_a_changed_recipe_is_refused(train_recipe, registries, tmp_path):
    recipe = train_recipe()
    run(recipe, registries, tmp_path / "run", max_steps=5)
    changed = load_recipe(str(recipe), registries=registries, overrides=["stages.short.lr=1e-3"])
    with pytest.raises(TrainingError, match="allow-config-change"):
        train(changed, registries, RunOptions(output=tmp_path / "run", resume="auto", progress=False))
    train(changed, registries, RunOptions(output=tmp_path / "run", resume="auto", progress=False,
                                          allow_config_change=True, max_steps=6))


def test_unwritable_output_fails_before_training(train_recipe, registries, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(TrainingError, match="cannot write to the run directory"):
        run(train_recipe(), registries, blocker / "run")


def test_an_earlier_run_is_not_silently_replaced(train_recipe, registries, tmp_path):
    recipe = train_recipe(steps1=3, steps2=1)
    run(recipe, registries, tmp_path / "run")
    with pytest.raises(TrainingError, match="--resume auto to continue"):
        run(recipe, registries, tmp_path / "run")
    final, _ = run(recipe, registries, tmp_path / "run", overwrite=True)
    assert final.exists()
    steps = [m["step"] for m in read_metrics(tmp_path / "run") if m.get("event") is None]
    assert steps == sorted(set(steps))  # the old run's lines are gone, not doubled


@pytest.mark.parametrize("reset, expected_step", [(True, 2), (False, 6)])
def test_reset_optimizer_starts_the_stage_with_fresh_moments(train_recipe, registries, tmp_path, reset,
                                                              expected_step):
    from encoder_recipes.training import checkpoint as ckpt

    path = train_recipe(steps1=4, steps2=2, checkpoint_every=100)
    text = path.read_text(encoding="utf-8").replace("  - name: long\n", f"  - name: long\n    reset_optimizer: {str(reset).lower()}\n")
    path.write_text(text, encoding="utf-8")
    run(path, registries, tmp_path / "run")
    last = ckpt.latest_complete(tmp_path / "run" / "checkpoints")
    assert last is not None and last.state["step"] == 6
    _, optimizer_state, _ = ckpt.load_checkpoint(last)
    # AdamW counts steps per parameter from its first update: 2 after a reset at stage "long", else 4 + 2
    steps = {float(v["step"]) for v in optimizer_state["state"].values()}
    assert steps == {float(expected_step)}


def test_reset_optimizer_restarts_stable_adamws_step_count_too(train_recipe, registries, tmp_path):
    """optimi keeps its step count in the param groups, where clearing the optimizer's state would miss it."""
    from encoder_recipes.training import checkpoint as ckpt

    path = train_recipe(steps1=4, steps2=2, checkpoint_every=100)
    text = path.read_text(encoding="utf-8").replace("  - name: long\n", "  - name: long\n    reset_optimizer: true\n")
    path.write_text(text.replace("stages:\n", "optimizer: {name: stable_adamw}\nstages:\n", 1), encoding="utf-8")
    run(path, registries, tmp_path / "run")
    _, optimizer_state, _ = ckpt.load_checkpoint(ckpt.latest_complete(tmp_path / "run" / "checkpoints"))
    assert {int(g["step"]) for g in optimizer_state["param_groups"]} == {2}  # the 2 steps of stage "long"


def test_document_isolation_reaches_the_model(train_recipe, registries, tmp_path):
    """With document_isolation on, packed documents stop attending to each other: the first loss changes."""
    first_losses = {}
    for isolate in (False, True):
        path = train_recipe(steps1=2, steps2=1, checkpoint_every=100)
        text = path.read_text(encoding="utf-8").replace(
            "    packing: naive\n", f"    packing: naive\n    document_isolation: {str(isolate).lower()}\n"
            f"    restart_positions: {str(isolate).lower()}\n")
        path.write_text(text, encoding="utf-8")
        run(path, registries, tmp_path / f"run-{isolate}")
        losses = [m["loss"] for m in read_metrics(tmp_path / f"run-{isolate}") if "loss" in m and m.get("event") != "eval"]
        assert all(torch.isfinite(torch.tensor(losses)))
        first_losses[isolate] = losses[0]
    assert first_losses[True] != pytest.approx(first_losses[False], abs=1e-6)


def test_batch_warmup_sets_each_steps_batch_and_resumes_exactly(train_recipe, registries, tmp_path):
    """Stage "short" (8 × 64) warms its batch up 2 → 8 over 1,500 tokens: 2, 2, 4, 4, 6, 6, then 8.
    A run stopped inside the ramp and resumed logs the same batches and losses, and ends with the same weights."""
    path = train_recipe(steps1=10, steps2=2, checkpoint_every=4)
    text = path.read_text(encoding="utf-8").replace(
        "    batch_size: 8\n", "    batch_size: 8\n    batch_warmup: {start: 2, tokens: 1500}\n")
    path.write_text(text.replace("log_every: 2", "log_every: 1"), encoding="utf-8")
    full, _ = run(path, registries, tmp_path / "full")
    run(path, registries, tmp_path / "parts", max_steps=5)  # the step-4 checkpoint is inside the ramp
    parts, _ = run(path, registries, tmp_path / "parts", resume="auto")

    def logged(folder):
        return [(m["step"], m["batch_size"], m["tokens_seen"], m["loss"]) for m in read_metrics(folder)
                if m.get("event") is None]

    assert [b for _, b, _, _ in logged(tmp_path / "full")] == [2, 2, 4, 4, 6, 6, 8, 8, 8, 8, 4, 4]
    assert logged(tmp_path / "full") == logged(tmp_path / "parts")
    a, b = weights(full), weights(parts)
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=0, msg=key)
