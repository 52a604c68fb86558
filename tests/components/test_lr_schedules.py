"""The built-in LR schedules, checked step by step against transformers' schedulers."""

from __future__ import annotations

import math

import pytest
import torch
from pydantic import ValidationError
from transformers import (
    get_cosine_schedule_with_warmup,
    get_linear_schedule_with_warmup,
    get_wsd_schedule,
)

from encoder_recipes.clock import Clock
from encoder_recipes.components.lr_schedules import Constant, DampedCosine, LinearWarmupDecay, WarmupStableDecay
from encoder_recipes.plugin_manager import new_plugin_manager
from encoder_recipes.plugins.builtin import plugin as builtin


def stage_clock(step: int, total: int) -> Clock:
    """A one-stage run: stage and run positions coincide."""
    return Clock(step=step, total_steps=total, stage="main", stage_index=0, stage_step=step,
                 stage_steps=total, stage_starts={"main": 0})


def hf_multipliers(make_scheduler, total: int) -> list[float]:
    """The LR multiplier transformers' scheduler gives at each of ``total`` steps (base LR 1)."""
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    sched = make_scheduler(opt)
    out = []
    for _ in range(total):
        out.append(sched.get_last_lr()[0])
        opt.step()
        sched.step()
    return out


def ours(schedule, total: int) -> list[float]:
    return [schedule.multiplier(stage_clock(t, total)) for t in range(total)]


def test_constant_is_one_everywhere():
    assert ours(Constant(), 7) == [1.0] * 7


@pytest.mark.parametrize("total,warmup", [(20, 5), (13, 0), (9, 9), (31, 4)])
def test_linear_warmup_decay_equals_transformers(total, warmup):
    expected = hf_multipliers(lambda o: get_linear_schedule_with_warmup(o, warmup, total), total)
    assert ours(LinearWarmupDecay(warmup_steps=warmup), total) == expected


def test_linear_decay_ends_at_final_ratio():
    sched = LinearWarmupDecay(warmup_steps=2, final_ratio=0.1)
    values = ours(sched, 12)
    assert values[:3] == [0.0, 0.5, 1.0]
    # Linear between peak (t=2) and final_ratio at the span's end (t=12).
    assert values[7] == pytest.approx(0.1 + 0.9 * (12 - 7) / 10)
    assert sched.multiplier(stage_clock(12, 12)) == pytest.approx(0.1)
    assert all(a >= b for a, b in zip(values[2:], values[3:]))


@pytest.mark.parametrize("shape", ["linear", "cosine", "1-sqrt"])
@pytest.mark.parametrize("total,warmup,fraction", [(40, 4, 0.25), (23, 0, 0.5), (30, 3, 1.0)])
def test_wsd_fraction_equals_transformers(shape, total, warmup, fraction):
    decay = round(fraction * total)
    if fraction == 1.0:
        decay = total - warmup  # the decay never starts before warmup ends
    expected = hf_multipliers(
        lambda o: get_wsd_schedule(o, num_warmup_steps=warmup, num_decay_steps=decay,
                                   num_stable_steps=total - warmup - decay, decay_type=shape, min_lr_ratio=0.0),
        total,
    )
    got = ours(WarmupStableDecay(warmup_steps=warmup, decay_fraction=fraction, decay_shape=shape), total)
    assert got == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize("shape", ["linear", "cosine", "1-sqrt"])
def test_wsd_final_ratio_without_warmup_equals_transformers(shape):
    total, decay = 30, 10
    expected = hf_multipliers(
        lambda o: get_wsd_schedule(o, num_warmup_steps=0, num_decay_steps=decay, num_stable_steps=total - decay,
                                   decay_type=shape, min_lr_ratio=0.2),
        total,
    )
    got = ours(WarmupStableDecay(decay_fraction=decay / total, decay_shape=shape, final_ratio=0.2), total)
    assert got == pytest.approx(expected, abs=1e-12)


def run_clock(step: int) -> Clock:
    """Three stages of 10, 20 and 10 steps."""
    starts = {"pre": 0, "ext": 10, "anneal": 30}
    stage = "pre" if step < 10 else "ext" if step < 30 else "anneal"
    return Clock(step=step, total_steps=40, stage=stage, stage_index=list(starts).index(stage),
                 stage_step=step - starts[stage], stage_steps={"pre": 10, "ext": 20, "anneal": 10}[stage],
                 stage_starts=starts)


def test_wsd_decays_from_the_named_stage_across_the_run():
    sched = WarmupStableDecay(warmup_steps=5, decay_start_stage="anneal", decay_shape="linear")
    values = [sched.multiplier(run_clock(t)) for t in range(40)]
    assert values[:5] == [0.0, 0.2, 0.4, 0.6, 0.8]
    assert values[5:31] == [1.0] * 26
    assert values[31] == pytest.approx(0.9)
    assert values[39] == pytest.approx(0.1)
    expected = hf_multipliers(
        lambda o: get_wsd_schedule(o, num_warmup_steps=5, num_decay_steps=10, num_stable_steps=25,
                                   decay_type="linear"),
        40,
    )
    assert values == pytest.approx(expected, abs=1e-12)


def finnish_trapezoid_decay(step: int, *, origin: int, total: int, base_lr: float, min_lr: float) -> float:
    """The decay branch of the Finnish ModernBERTs' TrapezoidalLRSheduler, written out independently
    (rakseli/finnish-modernberts, src/training/sheduler.py lines 64-73): progress counted from
    ``origin`` (their ``num_constant_steps``), not from where the decay begins."""
    progress = (step - origin) / max(1, total - origin)
    return max(min_lr, min_lr + (base_lr - min_lr) * (1 - math.sqrt(progress)))


def test_wsd_decay_counted_from_an_earlier_stage_matches_the_finnish_scheduler():
    base_lr, min_lr = 3e-4, 1e-8
    sched = WarmupStableDecay(warmup_steps=5, decay_start_stage="anneal", decay_origin_stage="ext",
                              decay_shape="1-sqrt", final_ratio=min_lr / base_lr)
    values = [sched.multiplier(run_clock(t)) for t in range(40)]
    assert values[5:30] == [1.0] * 25  # the plateau is untouched: the decay still begins at "anneal"
    # At the decay's first step the curve is already 20 of 30 steps along: 1 - sqrt(2/3) of the peak.
    assert values[30] == pytest.approx(1e-8 / 3e-4 + (1 - 1e-8 / 3e-4) * (1 - math.sqrt(2 / 3)))
    reference = [finnish_trapezoid_decay(t, origin=10, total=40, base_lr=base_lr, min_lr=min_lr) / base_lr
                 for t in range(30, 40)]
    assert values[30:] == pytest.approx(reference, rel=1e-12)
    assert sched.multiplier(run_clock(39)) > min_lr / base_lr  # ends one step before the minimum


def test_wsd_decay_origin_defaults_to_the_decay_start():
    plain = WarmupStableDecay(decay_start_stage="anneal")
    same = WarmupStableDecay(decay_start_stage="anneal", decay_origin_stage="anneal")
    assert [plain.multiplier(run_clock(t)) for t in range(40)] == [same.multiplier(run_clock(t)) for t in range(40)]


def test_wsd_unknown_origin_stage_lists_the_stages():
    sched = WarmupStableDecay(decay_start_stage="anneal", decay_origin_stage="context")
    with pytest.raises(ValueError, match="decay_origin_stage 'context'.*pre, ext, anneal"):
        sched.multiplier(run_clock(35))


def test_wsd_unknown_stage_lists_the_stages():
    sched = WarmupStableDecay(decay_start_stage="cooldown")
    with pytest.raises(ValueError, match="cooldown.*pre, ext, anneal"):
        sched.multiplier(run_clock(3))


@pytest.mark.parametrize(
    "params",
    [
        {},  # neither decay start
        {"decay_start_stage": "anneal", "decay_fraction": 0.2},  # both
        {"decay_fraction": 0.0},
        {"decay_fraction": 1.5},
        {"decay_start_stage": "anneal", "scope": "stage"},
        {"decay_fraction": 0.2, "decay_origin_stage": "ext", "scope": "stage"},
        {"decay_fraction": 0.2, "decay_shape": "exp"},
        {"decay_fraction": 0.2, "warmup_steps": -1},
        {"decay_fraction": 0.2, "final_ratio": 1.5},
        {"decay_fraction": 0.2, "peak": 1.0},  # unknown key
    ],
)
def test_wsd_refuses_bad_params(params):
    with pytest.raises(ValidationError):
        WarmupStableDecay(**params)


@pytest.mark.parametrize("total,warmup", [(25, 5), (16, 0)])
def test_damped_cosine_without_damping_equals_transformers(total, warmup):
    expected = hf_multipliers(lambda o: get_cosine_schedule_with_warmup(o, warmup, total), total)
    assert ours(DampedCosine(warmup_steps=warmup, damping=0.0), total) == pytest.approx(expected, abs=1e-12)


def test_damped_cosine_follows_its_formula():
    sched = DampedCosine(warmup_steps=4, damping=2.0, final_ratio=0.1)
    total = 24
    for t in range(4, total):
        p = (t - 4) / 20
        expected = 0.1 + 0.9 * math.exp(-2.0 * p) * (1 + math.cos(math.pi * p)) / 2
        assert sched.multiplier(stage_clock(t, total)) == pytest.approx(expected, abs=1e-12)
    plain = DampedCosine(warmup_steps=4, damping=0.0, final_ratio=0.1)
    # Damping lowers the curve between the peak and the end.
    assert sched.multiplier(stage_clock(14, total)) < plain.multiplier(stage_clock(14, total))
    assert sched.multiplier(stage_clock(total, total)) == pytest.approx(0.1)


def test_damped_cosine_with_cycles_restarts_lower_and_ends_in_the_valley():
    sched = DampedCosine(warmup_steps=0, damping=1.0, final_ratio=0.1, cycles=2)
    total = 30
    values = [sched.multiplier(stage_clock(t, total)) for t in range(total + 1)]
    for t, value in enumerate(values):
        p = t / total
        peak = 0.1 + 0.9 * math.exp(-p)
        expected = (peak + 0.1) / 2 + (peak - 0.1) / 2 * math.cos(math.pi * 3 * p)
        assert value == pytest.approx(expected, abs=1e-12)
    assert values[10] == pytest.approx(0.1)  # p = 1/3: the first valley
    assert values[20] == pytest.approx(0.1 + 0.9 * math.exp(-2 / 3))  # p = 2/3: a lower second peak
    assert values[30] == pytest.approx(0.1)  # ends in the valley
    one = DampedCosine(warmup_steps=0, damping=1.0, final_ratio=0.1)
    assert one.multiplier(stage_clock(10, total)) > values[10]  # one cycle: still decaying at p = 1/3


def test_stage_scope_restarts_each_stage():
    sched = LinearWarmupDecay(warmup_steps=2)
    assert sched.multiplier(run_clock(10)) == 0.0  # first step of stage "ext"
    assert sched.multiplier(run_clock(11)) == 0.5


@pytest.mark.parametrize(
    "cls,params",
    [
        (LinearWarmupDecay, {"warmup_steps": -3}),
        (LinearWarmupDecay, {"final_ratio": -0.1}),
        (DampedCosine, {"damping": -1.0}),
        (Constant, {"warmup_steps": 3}),
        (Constant, {"scope": "epoch"}),
    ],
)
def test_bad_params_are_refused(cls, params):
    with pytest.raises(ValidationError):
        cls(**params)


def test_schedules_are_registered_by_name():
    pm = new_plugin_manager()
    pm.register(builtin, name="builtin")
    classes = [c for group in pm.hook.encoder_recipes_register_lr_schedules() for c in group]
    assert {c.name: c for c in classes} == {
        "constant": Constant, "linear_warmup_decay": LinearWarmupDecay, "wsd": WarmupStableDecay,
        "damped_cosine": DampedCosine,
    }
    for cls in classes:
        assert cls.kind == "lr_schedule" and cls.summary()
        assert all(f.description for n, f in cls.Params.model_fields.items())


# --- warmup in tokens ------------------------------------------------------------------------


def token_clocks(total: int, batches: list[int], seq_len: int = 10) -> list[Clock]:
    """Clocks of a one-stage run whose batch at each step is ``batches[step]`` (a hand-made ramp)."""
    from encoder_recipes.batch_warmup import BatchWarmup, TokenTimeline
    from encoder_recipes.timeline import RunTimeline

    warmup = BatchWarmup(start=2, end=8, tokens=300)  # 2, 4, 6 then 8
    timeline = TokenTimeline(8, seq_len, warmup)
    assert [timeline.batch_at(s) for s in range(len(batches))] == batches
    run = RunTimeline([(total, timeline)])
    return [Clock(step=t, total_steps=total, stage="main", stage_index=0, stage_step=t, stage_steps=total,
                  stage_starts={"main": 0}, timeline=run) for t in range(total)]


def test_warmup_in_tokens_ramps_with_the_tokens_seen():
    clocks = token_clocks(30, [2] * 3 + [4] * 3 + [6] * 2 + [8] * 4)
    seen = [c.tokens("stage") for c in clocks]
    sched = LinearWarmupDecay(warmup_tokens=200, final_ratio=0.0)
    # the ramp is tokens seen / 200 while below 200: uneven per step as the batch grows
    for c, tokens in zip(clocks, seen):
        if tokens < 200:
            assert sched.multiplier(c) == pytest.approx(tokens / 200)
    end = next(t for t, tokens in enumerate(seen) if tokens >= 200)
    assert sched.warmup_end(clocks[0]) == end
    # then the decay, in steps, from the warmup's last step as with warmup_steps = end
    in_steps = LinearWarmupDecay(warmup_steps=end, final_ratio=0.0)
    assert [sched.multiplier(c) for c in clocks[end:]] == [in_steps.multiplier(c) for c in clocks[end:]]


def test_warmup_in_tokens_with_a_constant_batch_is_the_warmup_in_steps():
    from encoder_recipes.batch_warmup import TokenTimeline
    from encoder_recipes.timeline import RunTimeline

    run = RunTimeline([(40, TokenTimeline(4, 16))])  # 64 tokens a step
    clocks = [Clock(t, 40, "main", 0, t, 40, {"main": 0}, timeline=run) for t in range(40)]
    for tokens_cls, steps_cls in [(WarmupStableDecay(warmup_tokens=640, decay_fraction=0.3),
                                   WarmupStableDecay(warmup_steps=10, decay_fraction=0.3)),
                                  (DampedCosine(warmup_tokens=640), DampedCosine(warmup_steps=10)),
                                  (LinearWarmupDecay(warmup_tokens=640), LinearWarmupDecay(warmup_steps=10))]:
        assert [tokens_cls.multiplier(c) for c in clocks] == pytest.approx([steps_cls.multiplier(c) for c in clocks])


def test_warmup_steps_and_tokens_together_are_refused():
    with pytest.raises(ValidationError, match="not both"):
        LinearWarmupDecay(warmup_steps=3, warmup_tokens=1e6)
