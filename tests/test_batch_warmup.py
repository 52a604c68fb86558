"""Batch-size warmup in tokens: ModernBERT's rule to the token, and exact steps ↔ tokens."""

from __future__ import annotations

import math

import pytest

from encoder_recipes.batch_warmup import BatchWarmup, TokenTimeline


class ModernBertBatchSizeWarmupScheduler:
    """ModernBERT's ``BatchSizeWarmupScheduler``, transcribed as the oracle (Apache-2.0,
    AnswerDotAI/ModernBERT branch pretraining_documentation, src/sequence_packer.py lines 20-61).
    Sizes are in micro-batches per device and tokens per rank; here world_size is 1."""

    def __init__(self, min_batch_size: int, max_batch_size: int, warmup_tokens: int):
        self.min_batch_size = min_batch_size
        self.max_batch_size = max_batch_size
        self.warmup_tokens = math.ceil(warmup_tokens / 1)
        total_batch_sizes = sum(range(self.min_batch_size, self.max_batch_size))
        steps_per_unit = self.warmup_tokens / total_batch_sizes
        self._step_thresholds, cumsum = [], 0
        for batch_size in range(self.min_batch_size, self.max_batch_size):
            cumsum += batch_size
            self._step_thresholds.append(math.ceil(steps_per_unit * cumsum))

    def __call__(self, current_step: int) -> int:
        if current_step >= self.warmup_tokens:
            return self.max_batch_size
        for i, threshold in enumerate(self._step_thresholds):
            if current_step < threshold:
                return self.min_batch_size + i
        return self.max_batch_size


# ModernBERT-base (modernbert-base-pretrain.yaml lines 77-78, 117, 123): micro-batch 96 per device,
# global 4608; 8 GPUs give 768 → 4608 in steps of 768 over 50B tokens.
MODERNBERT = BatchWarmup(start=768, end=4608, tokens=50e9)


def test_modernbert_sizes_and_thresholds():
    assert MODERNBERT.sizes == (768, 1536, 2304, 3072, 3840)
    oracle = ModernBertBatchSizeWarmupScheduler(1, 6, 50_000_000_000)
    assert MODERNBERT.thresholds == tuple(oracle._step_thresholds)
    # tokens at each size ∝ the size: 1, 2, 3, 4, 5 fifteenths of 50B (their float ceil included)
    assert MODERNBERT.thresholds[-1] == 50_000_000_000
    assert MODERNBERT.thresholds[0] == math.ceil(50e9 / 15)


@pytest.mark.parametrize(
    ("start", "end", "tokens", "increment", "units"),
    [
        (768, 4608, 50e9, None, (1, 6)),            # ModernBERT-base
        (384, 4608, 60e9, None, (1, 12)),           # mmBERT-base: 48 per device × 8, 60B (mmBERT-base.yaml 99-103)
        (96, 480, 1_000_003, 96, (1, 5)),
        (6, 30, 12_345, 3, (2, 10)),                # start two increments up
    ],
)
def test_batch_size_matches_modernbert_at_every_threshold(start, end, tokens, increment, units):
    warmup = BatchWarmup(start=start, end=end, tokens=tokens, increment=increment)
    oracle = ModernBertBatchSizeWarmupScheduler(units[0], units[1], int(tokens))
    unit = warmup.step
    probes = {0, int(tokens) - 1, int(tokens), int(tokens) + 1, 10 * int(tokens)}
    for t in oracle._step_thresholds:
        probes |= {t - 1, t, t + 1}
    for seen in sorted(p for p in probes if p >= 0):
        assert warmup.batch_size(seen) == oracle(seen) * unit, seen


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"start": 0, "end": 8, "tokens": 10}, "start"),
        ({"start": 16, "end": 8, "tokens": 10}, "start"),
        ({"start": 8, "end": 20, "tokens": 10}, "multiples"),
        ({"start": 8, "end": 16, "tokens": -1}, "tokens"),
        ({"start": 8, "end": 16, "tokens": 10, "increment": 0}, "increment"),
    ],
)
def test_bad_warmups_are_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        BatchWarmup(**kwargs)


def test_no_warmup_when_start_is_end_or_tokens_zero():
    assert BatchWarmup(start=64, end=64, tokens=1e9).batch_size(0) == 64
    assert BatchWarmup(start=8, end=64, tokens=0).batch_size(0) == 64


def simulate(warmup: BatchWarmup | None, batch: int, seq_len: int, steps: int) -> list[tuple[int, int]]:
    """Step by step, as the packer does: each step's batch from the tokens seen before it."""
    out, seen = [], 0
    for _ in range(steps):
        b = warmup.batch_size(seen) if warmup else batch
        out.append((b, seen))
        seen += b * seq_len
    return out


@pytest.mark.parametrize(
    "warmup",
    [
        BatchWarmup(start=4, end=16, tokens=10_000),
        BatchWarmup(start=4, end=16, tokens=10_000, increment=2),
        BatchWarmup(start=8, end=16, tokens=100),      # one step jumps past a threshold
        BatchWarmup(start=2, end=64, tokens=50_000),
        None,
    ],
)
def test_timeline_agrees_with_a_step_by_step_simulation(warmup):
    batch, seq_len = 16 if warmup is None or warmup.end == 16 else warmup.end, 32
    timeline = TokenTimeline(batch, seq_len, warmup)
    sim = simulate(warmup, batch, seq_len, 400)
    assert [(timeline.batch_at(s), timeline.tokens_before(s)) for s in range(400)] == sim
    # step_at_tokens inverts tokens_before: the first step with at least that many tokens behind it
    for tokens in {0, 1, 31, 32, 33, 5_000, 9_999, 10_000, 10_001, 77_777, sim[-1][1]}:
        expected = next(s for s, (_, seen) in enumerate(sim) if seen >= tokens)
        assert timeline.step_at_tokens(tokens) == expected, tokens


def test_timeline_refuses_a_warmup_that_ends_elsewhere():
    with pytest.raises(ValueError, match="batch_size"):
        TokenTimeline(32, 128, BatchWarmup(start=8, end=16, tokens=100))


def test_modernbert_pretraining_in_steps():
    """1.719T tokens at 1,024 with the 50B-token warmup (modernbert-base-pretrain.yaml lines 4, 78, 115, 117)."""
    timeline = TokenTimeline(4608, 1024, MODERNBERT)
    # five sizes of about equal step counts, ~(50e9/15) / (768 × 1024) = 4,238.6 each; a step that
    # crosses a threshold overshoots it, so the counts are 4,239 or 4,238
    sim = simulate(MODERNBERT, 4608, 1024, 21_200)
    assert [timeline.batch_at(s) for s in range(0, 21_200, 7)] == [b for b, _ in sim[::7]]
    assert [sum(1 for b, _ in sim if b == size) for size in MODERNBERT.sizes] == [4239, 4239, 4239, 4238, 4239]
    assert timeline.warmup_steps == 21_194
    steps = timeline.step_at_tokens(1.719e12)
    assert timeline.tokens_before(steps) >= 1.719e12 > timeline.tokens_before(steps - 1)
    assert steps == 374_901
    # versus 364,304 steps without warmup: the smaller batches take more steps for the same tokens
    assert TokenTimeline(4608, 1024).step_at_tokens(1.719e12) == math.ceil(1.719e12 / (4608 * 1024)) == 364_304
    # the 3B-token LR warmup ends inside the first size (768): 3e9 / 786,432 tokens per step
    assert timeline.step_at_tokens(3e9) == math.ceil(3e9 / (768 * 1024)) == 3815
