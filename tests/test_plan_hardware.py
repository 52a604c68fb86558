"""``plan --gpus``: times against a hand computation, the MFU the papers' reported times imply, the data-rate check."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from encoder_recipes.cli import main
from encoder_recipes.data_rates import ON_THE_FLY, STORE_READ, STORE_READ_GROUPED
from encoder_recipes.hardware import GPUS, gpu, gpu_of_device
from encoder_recipes.plan import build_plan, stage_flops
from encoder_recipes.plan_hardware import hardware_plan, implied_mfu, mfu_per_stage
from encoder_recipes.schema import ModelConfig
from encoder_recipes.validation import load_recipe

REPO = Path(__file__).resolve().parents[1]

# ja-llmjp's model FLOPs per token, by hand (22 layers × 768, GeGLU 1152, vocabulary 99,574, 30% masked):
LAYER = 4 * 768 * 768 + 3 * 768 * 1152 + 2 * 768  # q, k, v, o + Wi (2 halves) and Wo + two norm weights
LAYERS = 22 * LAYER - 768 + 768  # layer 0 has no attention norm; the final norm
ATTENTION_1024 = 12 * 768 * (8 * 1024 + 14 * 128)  # 8 global layers see 1,024 tokens, 14 local ones 128
ATTENTION_8192 = 12 * 768 * (8 * 8192 + 14 * 128)
HEAD = 6 * 0.3 * (768 * 768 + 768 * 99574)  # dense + decoder on the masked 30% (sparse prediction)
PER_TOKEN_1024 = 6 * LAYERS + ATTENTION_1024 + HEAD
PER_TOKEN_8192 = 6 * LAYERS + ATTENTION_8192 + HEAD
H100 = 989.4e12  # 1,979 TFLOP/s with sparsity / 2


@pytest.fixture(scope="module")
def llmjp(registries):
    recipe = load_recipe("ja-llmjp", registries=registries).recipe
    return recipe, build_plan(recipe, registries)


@pytest.fixture(scope="module")
def registries():
    from encoder_recipes.registry import default_registries

    return default_registries()


def test_step_time_wall_time_and_gpu_hours_match_a_hand_computation(llmjp, registries):
    recipe, plan = llmjp
    stage1, stage2 = hardware_plan(recipe, plan, registries, gpus=16, gpu="h100", mfu=[0.4, 0.4])
    step1 = 3328 * 1024 * PER_TOKEN_1024 / (16 * H100 * 0.4)
    step2 = 384 * 8192 * PER_TOKEN_8192 / (16 * H100 * 0.4)
    assert stage1.step_s == pytest.approx(step1, rel=1e-9) and step1 == pytest.approx(0.4804, abs=1e-4)
    assert stage2.step_s == pytest.approx(step2, rel=1e-9)
    assert stage1.wall_s == pytest.approx(500_000 * step1, rel=1e-9)
    assert stage1.gpu_hours == pytest.approx(16 * 500_000 * step1 / 3600, rel=1e-9)
    assert stage1.tokens_per_s_per_gpu == pytest.approx(3328 * 1024 / 16 / step1, rel=1e-9)
    # from a store a rank reads its 208 rows a step; on the fly every rank makes all 3,328
    assert stage1.store_need == pytest.approx(208 * 1024 / step1, rel=1e-9)
    assert stage1.fly_need == pytest.approx(3328 * 1024 / step1, rel=1e-9)


def test_the_reported_days_give_the_implied_mfu(llmjp):
    recipe, plan = llmjp
    per_stage = mfu_per_stage(plan, gpus=16, gpu=gpu("h100"), days=[8, 3])
    assert per_stage[0] == pytest.approx(500_000 * 3328 * 1024 * PER_TOKEN_1024 / (16 * H100 * 8 * 86_400), rel=1e-9)
    assert per_stage[1] == pytest.approx(200_000 * 384 * 8192 * PER_TOKEN_8192 / (16 * H100 * 3 * 86_400), rel=1e-9)
    whole = mfu_per_stage(plan, gpus=16, gpu=gpu("h100"), days=[11])
    assert whole == [pytest.approx(plan.total_flops / (16 * H100 * 11 * 86_400))] * 2
    with pytest.raises(ValueError, match="one per stage"):
        mfu_per_stage(plan, gpus=16, gpu=gpu("h100"), days=[8, 2, 1])


def test_plan_prints_times_memory_both_ways_and_warns_when_data_bound(capsys):
    assert main(["plan", "ja-llmjp", "--gpus", "16", "--gpu", "h100", "--mfu", "0.4"]) == 0
    out = capsys.readouterr().out
    assert re.search(r"stage1\s+40\.0%\s+0\.48 s\s+2\.8 days\s+1,068", out), out
    assert "without activation checkpointing micro-batch 70" in out and "with it micro-batch" in out
    # every rank making the whole global batch on one core cannot feed 16 H100s
    assert "on the fly (the whole global batch) needs 7.09M/s" in out and "DATA-BOUND" in out
    assert main(["plan", "ja-llmjp", "--gpus", "16", "--days", "8,3"]) == 0
    out = capsys.readouterr().out
    assert re.search(r"stage1\s+13\.9%", out) and re.search(r"stage2\s+21\.8%", out), out
    # a store read 8 rows a call is held against the per-row figure, 16 rows a call against the 16-row one
    assert "(read none, mask groups of 1," in out
    assert main(["plan", "ja-llmjp", "--gpus", "16", "data.store=/stores/ja", "data.store_mask_group=16"]) == 0
    assert "1 core gives 675k/s (read none, mask groups of 16," in capsys.readouterr().out
    assert main(["plan", "ja-llmjp", "--days", "8,3"]) == 2  # needs --gpus
    assert "need --gpus" in capsys.readouterr().err


def test_every_measured_rate_is_the_figure_in_its_results_row():
    results = (REPO / "bench" / "RESULTS.md").read_text(encoding="utf-8")
    for rate in [*ON_THE_FLY.values(), *STORE_READ.values(), *STORE_READ_GROUPED.values()]:
        rows = [line for line in results.splitlines() if line.startswith(f"| {rate.what} |")]
        assert rows and f"{rate.tokens_per_s:,.0f}" in rows[0], (rate, rows)


def test_the_gpu_table_is_cited_and_finds_cards_by_device_name():
    assert {"h100", "h200", "a100"} <= set(GPUS)
    assert all(g.source.count("http") == 1 and g.bf16_dense_tflops > 0 for g in GPUS.values())
    assert gpu_of_device("NVIDIA H100 80GB HBM3").name == "h100"
    assert gpu_of_device("NVIDIA H100 PCIe").name == "h100-pcie"
    assert gpu_of_device("NVIDIA A100 80GB PCIe").name == "a100"
    assert gpu_of_device("NVIDIA A10").name == "a10"
    with pytest.raises(ValueError, match="h200"):
        gpu("tpu")


# --- the papers' reported times (docs/full-scale.md) -----------------------------------------------------


def reported_rows(registries) -> list[str]:
    """The table in docs/full-scale.md: each reported time and the MFU it implies under plan's FLOPs count."""
    recipe = load_recipe("ja-llmjp", registries=registries).recipe
    plan = build_plan(recipe, registries)
    h100 = gpu("h100")
    rows = []
    for stage, days in zip(plan.stages, (8, 3)):
        rows.append(("llm-jp-modernbert, " + stage.name, f"{stage.tokens / 1e12:.3f}T at {max(stage.lengths):,}",
                     16, f"{days} days", stage.flops, implied_mfu(stage.flops, gpus=16, gpu=h100,
                                                                   seconds=days * 86_400)))
    rows.append(("llm-jp-modernbert, both stages", f"{plan.total_tokens / 1e12:.3f}T", 16, "11 days",
                 plan.total_flops, implied_mfu(plan.total_flops, gpus=16, gpu=h100, seconds=11 * 86_400)))
    base = ModelConfig()  # the schema's defaults are ModernBERT-base's shape
    pre = stage_flops(base, 50368, 1.719e12, 1024, 0.3)
    rows.append(("ModernBERT-base, pretraining", "1.719T at 1,024", 8, "194 h", pre,
                 implied_mfu(pre, gpus=8, gpu=h100, seconds=194 * 3600)))
    every = pre + stage_flops(base, 50368, 0.3e12, 8192, 0.3)
    rows.append(("ModernBERT-base, if 194 h covered all three phases", "2.019T (+0.3T at 8,192)", 8, "194 h", every,
                 implied_mfu(every, gpus=8, gpu=h100, seconds=194 * 3600)))
    lines = ["| run | tokens | H100s | reported time | model FLOPs | implied MFU |",
             "| --- | --- | ---: | --- | ---: | ---: |"]
    lines += [f"| {a} | {b} | {c} | {d} | {e:.3g} | {f:.1%} |" for a, b, c, d, e, f in rows]
    return lines


def test_the_docs_table_of_reported_times_is_what_plan_computes(registries):
    table = "\n".join(reported_rows(registries))
    doc = (REPO / "docs" / "full-scale.md").read_text(encoding="utf-8")
    assert table in doc, "docs/full-scale.md is stale; the table should read:\n" + table
