"""Steps ↔ tokens over a run (RunTimeline) and the clock's answers in tokens, against a step-by-step count."""

from __future__ import annotations

import pytest

from encoder_recipes.batch_warmup import BatchWarmup, TokenTimeline
from encoder_recipes.clock import Clock
from encoder_recipes.timeline import RunTimeline

# three stages: a batch warmup 4 → 16 at length 32, a constant 8 × 128, a constant 8 × 64
STAGES = [(60, TokenTimeline(16, 32, BatchWarmup(start=4, end=16, tokens=6_000))),
          (10, TokenTimeline(8, 128)), (5, TokenTimeline(8, 64))]


def counted() -> list[tuple[int, int, int]]:
    """(batch, tokens before, stage tokens before) of every step, by adding up step by step."""
    out, run = [], 0
    for steps, timeline in STAGES:
        stage = 0
        for step in range(steps):
            batch = timeline.batch_at(step)
            out.append((batch, run, stage))
            run, stage = run + batch * timeline.seq_len, stage + batch * timeline.seq_len
    return out


def test_run_timeline_counts_like_a_step_by_step_sum():
    timeline = RunTimeline(STAGES)
    expected = counted()
    assert timeline.total_steps == len(expected) == 75
    got = [(timeline.batch_at(s), timeline.tokens_before(s), timeline.stage_tokens_before(s)) for s in range(75)]
    assert got == expected
    assert timeline.total_tokens == expected[-1][1] + 8 * 64
    assert [s.start for s in timeline.spans] == [0, 60, 70]
    # the batch ramps 4, 8, 12 and reaches 16 inside the first stage
    assert list(dict.fromkeys(b for b, _, _ in expected[:60])) == [4, 8, 12, 16]


def test_step_at_tokens_is_the_first_step_with_that_many_tokens_behind_it():
    timeline = RunTimeline(STAGES)
    before = [t for _, t, _ in counted()] + [timeline.total_tokens]
    for tokens in [0, 1, 127, 128, 129, 6_000, before[60] - 1, before[60], before[60] + 1, before[74] + 1]:
        assert timeline.step_at_tokens(tokens) == next(s for s, t in enumerate(before) if t >= tokens), tokens
    assert timeline.step_at_tokens(10**12) == 75  # past the end: the run's length
    assert timeline.stage_step_at_tokens(1, 3 * 8 * 128) == 3
    assert timeline.stage_step_at_tokens(1, 10**12) == 10


def clock(step: int, timeline: RunTimeline | None) -> Clock:
    index = 0 if step < 60 else 1 if step < 70 else 2
    start = (0, 60, 70)[index]
    return Clock(step, 75, f"s{index}", index, step - start, STAGES[index][0],
                 {"s0": 0, "s1": 60, "s2": 70}, timeline=timeline)


def test_clock_answers_in_tokens_within_its_scope():
    timeline = RunTimeline(STAGES)
    c = clock(63, timeline)
    assert c.tokens("run") == timeline.tokens_before(63)
    assert c.tokens("stage") == 3 * 8 * 128
    assert c.step_at_tokens("stage", 2 * 8 * 128) == 2
    assert c.step_at_tokens("run", timeline.tokens_before(63)) == 63


def test_a_clock_without_a_timeline_says_how_to_get_one():
    with pytest.raises(ValueError, match="Plan.clock"):
        clock(3, None).tokens("run")
