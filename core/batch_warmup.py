"""Batch-size warmup in tokens, and the exact map between steps and tokens under it.

ModernBERT (arXiv 2412.13663; AnswerDotAI/ModernBERT, branch
``pretraining_documentation``, ``src/sequence_packer.py`` lines 20-61,
``BatchSizeWarmupScheduler``) and mmBERT grow the batch during the first
tokens of pretraining. The batch rises in equal increments of one
micro-batch per device, from ``start`` to ``end``; the batch used for a step
depends only on the tokens seen before it. Their rule: with sizes
``s_0 < s_1 < ... < s_{n-1}`` (each ``increment`` apart, ``s_n = end``), size
``s_k`` is used while the tokens seen are below

    ceil(warmup_tokens × (s_0 + ... + s_k) / (s_0 + ... + s_{n-1}))

so the tokens spent at each size are proportional to it, and every size
lasts about the same number of steps. From ``warmup_tokens`` on the batch is
``end``. :class:`BatchWarmup` computes the thresholds with their arithmetic
(in units of ``increment``, floats and all), so the two agree to the token.

Two simplifications, stated so they are not mistaken for the original:
their counter is per rank (``ceil(warmup_tokens / world_size)`` against each
rank's own tokens) and counts non-padding tokens only (``count_padding_tokens:
false`` in their YAMLs); here the count is global and is whatever the caller
counts (this project's plan counts padding, as the papers' step arithmetic
does; with best-fit packing the two differ by the packing's padding).

:class:`TokenTimeline` turns the rule into exact integer bookkeeping for a
stage of fixed sequence length: the batch of each step, the tokens seen
before it, and the first step at which a token count is reached. An LR
schedule given in tokens (ModernBERT's 3B-token warmup, composer evaluates it
on tokens seen) stays exact by evaluating it at ``tokens_before(step)``; a
stage given in tokens lasts ``step_at_tokens(tokens)`` steps, as composer's
``max_duration: ...tok`` stops at the first step whose tokens seen reach it.
"""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass, field

__all__ = ["BatchWarmup", "TokenTimeline"]


@dataclass(frozen=True)
class BatchWarmup:
    """The global batch (in sequences) as a function of the tokens seen.

    :param start: global batch at the first step (ModernBERT: one micro-batch
        per device, 96 × 8 GPUs = 768).
    :param end: the batch after warmup, the stage's ``batch_size``.
    :param tokens: warmup length in tokens (ModernBERT: 50B).
    :param increment: how much each rise adds; default ``start`` (one
        micro-batch per device, as in ModernBERT and mmBERT, whose
        ``batch_size_warmup_min_size`` equals the device micro-batch).
    """

    start: int
    end: int
    tokens: float
    increment: int | None = None
    _thresholds: tuple[int, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        step = self.step
        if self.start <= 0 or self.end < self.start:
            raise ValueError(f"batch warmup needs 0 < start <= end, got start {self.start}, end {self.end}")
        if step <= 0:
            raise ValueError(f"batch warmup increment must be > 0, got {step}")
        if self.start % step or self.end % step:
            raise ValueError(f"start {self.start} and end {self.end} must be multiples of the increment {step}")
        if self.tokens < 0 or not math.isfinite(self.tokens):
            raise ValueError(f"batch warmup tokens must be finite and >= 0, got {self.tokens}")
        # ModernBERT's arithmetic, in units of the increment: sizes min..max-1,
        # steps_per_unit = tokens / sum(sizes), threshold = ceil(steps_per_unit × cumsum).
        low, high = self.start // step, self.end // step
        units = range(low, high)
        per_unit = self.tokens / sum(units) if len(units) else 0.0
        thresholds, cumsum = [], 0
        for size in units:
            cumsum += size
            thresholds.append(math.ceil(per_unit * cumsum))
        object.__setattr__(self, "_thresholds", tuple(thresholds))

    @property
    def step(self) -> int:
        return self.start if self.increment is None else self.increment

    @property
    def sizes(self) -> tuple[int, ...]:
        """The batch sizes used during warmup, smallest first (``end`` comes after them)."""
        return tuple(range(self.start, self.end, self.step))

    @property
    def thresholds(self) -> tuple[int, ...]:
        """``thresholds[k]``: size ``sizes[k]`` is used while the tokens seen are below it."""
        return self._thresholds

    def batch_size(self, tokens_seen: float) -> int:
        """The global batch of a step that starts with ``tokens_seen`` tokens behind it."""
        if tokens_seen >= self.tokens:
            return self.end
        k = bisect.bisect_right(self._thresholds, tokens_seen)
        return self.sizes[k] if k < len(self._thresholds) else self.end


@dataclass(frozen=True)
class _Segment:
    first_step: int
    tokens_before: int  #: tokens seen before first_step
    batch: int


class TokenTimeline:
    """Steps ↔ tokens for a stage of fixed sequence length whose batch may warm up.

    :param batch_size: the stage's global batch (sequences) after warmup.
    :param seq_len: tokens per sequence, as counted (the plan counts padding).
    :param warmup: the batch warmup, or None for a constant batch. Its ``end``
        must equal ``batch_size``.
    """

    def __init__(self, batch_size: int, seq_len: int, warmup: BatchWarmup | None = None) -> None:
        if batch_size <= 0 or seq_len <= 0:
            raise ValueError(f"batch_size and seq_len must be > 0, got {batch_size}, {seq_len}")
        if warmup is not None and warmup.end != batch_size:
            raise ValueError(f"batch warmup ends at {warmup.end}, but the stage's batch_size is {batch_size}")
        self.batch_size, self.seq_len, self.warmup = batch_size, seq_len, warmup
        segments: list[_Segment] = []
        step, seen = 0, 0
        if warmup is not None:
            for size, threshold in zip(warmup.sizes, warmup.thresholds):
                if seen >= threshold:
                    continue  # a larger earlier step already went past this size
                per_step = size * seq_len
                n = -(-(threshold - seen) // per_step)  # steps at this size: until seen >= threshold
                segments.append(_Segment(step, seen, size))
                step, seen = step + n, seen + n * per_step
        segments.append(_Segment(step, seen, batch_size))
        self._segments = segments
        self._starts = [s.first_step for s in segments]
        self._tokens = [s.tokens_before for s in segments]

    @property
    def warmup_steps(self) -> int:
        """Steps before the batch reaches ``batch_size``."""
        return self._segments[-1].first_step

    def _segment_of_step(self, step: int) -> _Segment:
        if step < 0:
            raise ValueError(f"step must be >= 0, got {step}")
        return self._segments[bisect.bisect_right(self._starts, step) - 1]

    def batch_at(self, step: int) -> int:
        """The global batch of ``step`` (0-based)."""
        return self._segment_of_step(step).batch

    def tokens_before(self, step: int) -> int:
        """Tokens seen before ``step`` (so ``tokens_before(0) == 0``)."""
        seg = self._segment_of_step(step)
        return seg.tokens_before + (step - seg.first_step) * seg.batch * self.seq_len

    def step_at_tokens(self, tokens: float) -> int:
        """The first step with at least ``tokens`` seen before it: the steps a span of ``tokens`` takes."""
        # Tokens seen are whole numbers, so "at least 1.5e9" is "at least ceil(1.5e9)";
        # integers from here keep a 1.7e12-token stage exact to the step.
        wanted = math.ceil(tokens)
        if wanted <= 0:
            return 0
        seg = self._segments[bisect.bisect_left(self._tokens, wanted) - 1]
        per_step = seg.batch * self.seq_len
        return seg.first_step + -(-(wanted - seg.tokens_before) // per_step)
