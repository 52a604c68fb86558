"""The built-in context schedules: fixed and stepwise context extension."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from encoder_recipes.clock import Clock
from encoder_recipes.components.context import Fixed, Stepwise
from encoder_recipes.plugin_manager import new_plugin_manager
from encoder_recipes.plugins.builtin import plugin as builtin


def clock(stage_step: int, stage_steps: int) -> Clock:
    return Clock(step=100 + stage_step, total_steps=100 + stage_steps, stage="ext", stage_index=1,
                 stage_step=stage_step, stage_steps=stage_steps, stage_starts={"pre": 0, "ext": 100})


def test_fixed():
    sched = Fixed(seq_len=1024)
    assert {sched.seq_len(clock(s, 50)) for s in range(50)} == {1024}
    assert sched.lengths() == [1024]


def test_stepwise_equal_shares():
    lengths = [1024, 2048, 4096, 8192, 12288, 16384]  # six steps up to 16K, as in the Finnish recipe
    sched = Stepwise(lengths=lengths)
    got = [sched.seq_len(clock(s, 60)) for s in range(60)]
    assert got == [n for n in lengths for _ in range(10)]
    assert max(sched.lengths()) == 16384


def test_stepwise_uneven_stage_covers_every_length_in_order():
    sched = Stepwise(lengths=[128, 256, 512])
    got = [sched.seq_len(clock(s, 10)) for s in range(10)]
    # Shares of 10/3 steps: boundaries at steps ceil(10/3)=4 and ceil(20/3)=7.
    assert got == [128] * 4 + [256] * 3 + [512] * 3


def test_stepwise_boundaries():
    sched = Stepwise(lengths=[512, 1024, 2048], boundaries=[0.5, 0.9])
    got = [sched.seq_len(clock(s, 20)) for s in range(20)]
    assert got == [512] * 10 + [1024] * 8 + [2048] * 2


@pytest.mark.parametrize(
    "params",
    [
        {"lengths": []},
        {"lengths": [128, 0]},
        {"lengths": [128, 256], "boundaries": [0.5, 0.7]},  # one too many
        {"lengths": [128, 256, 512], "boundaries": [0.6, 0.4]},  # not increasing
        {"lengths": [128, 256], "boundaries": [1.0]},  # outside (0, 1)
        {"lengths": [128, 256], "boundaries": [0.0]},
        {"lengths": [128], "steps": 3},  # unknown key
    ],
)
def test_stepwise_refuses_bad_params(params):
    with pytest.raises(ValidationError):
        Stepwise(**params)


@pytest.mark.parametrize("seq_len", [0, -8])
def test_fixed_refuses_non_positive(seq_len):
    with pytest.raises(ValidationError):
        Fixed(seq_len=seq_len)


def test_context_schedules_are_registered_by_name():
    pm = new_plugin_manager()
    pm.register(builtin, name="builtin")
    classes = [c for group in pm.hook.encoder_recipes_register_context_schedules() for c in group]
    assert {c.name: c for c in classes} == {"fixed": Fixed, "stepwise": Stepwise}
    assert all(c.kind == "context" and c.summary() for c in classes)
