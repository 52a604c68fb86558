"""Built-in learning-rate schedules: the multiplier on a stage's peak LR at each step.

Every schedule is a pure function of the :class:`~encoder_recipes.clock.Clock`,
so a resumed run recomputes exactly the multiplier an uninterrupted run had.
``scope`` picks the span a curve covers: ``stage`` restarts at every stage,
``run`` draws one curve over all stages (the step is then the global step).

Step convention (the one transformers' ``get_*_schedule`` functions use, and
the tests compare against them): over a span of ``T`` steps the multiplier at
step ``t`` (0-based) ramps ``t / warmup_steps`` during warmup, and the decay
reaches ``final_ratio`` at ``t = T``, one step after the last step trained.

A warmup may be given in tokens instead (``warmup_tokens``, as ModernBERT's
composer schedules count): the multiplier then ramps ``tokens seen /
warmup_tokens``, the tokens seen before the step within the scope, which a
batch warmup makes grow unevenly per step; the warmup ends at the first step
with ``warmup_tokens`` behind it (:meth:`Clock.step_at_tokens`). What follows
the warmup is measured in steps.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from pydantic import Field, model_validator

from encoder_recipes.clock import Clock
from encoder_recipes.components.base import Problem, Scaling
from encoder_recipes.components.kinds import LRSchedule, ScheduledParams

if TYPE_CHECKING:
    from encoder_recipes.schema import Recipe

__all__ = ["Constant", "LinearWarmupDecay", "WarmupStableDecay", "DampedCosine"]


class WarmupParams(ScheduledParams):
    """Params shared by every schedule with a linear warmup."""

    warmup_steps: int = Field(0, ge=0, description="steps of linear warmup from 0 to the peak LR")
    warmup_tokens: float | None = Field(
        None, gt=0, description="the warmup in tokens instead (padding included): the multiplier is tokens seen / "
        "warmup_tokens until they are reached, exact under a batch warmup; give it or warmup_steps, not both",
    )

    @model_validator(mode="after")
    def _one_warmup(self) -> WarmupParams:
        if self.warmup_tokens is not None and self.warmup_steps:
            raise ValueError("give warmup_steps or warmup_tokens, not both")
        return self


class _WarmupSchedule(LRSchedule):
    """A schedule whose params start with :class:`WarmupParams`: the warmup shrinks with its span."""

    def scaled(self, scaling: Scaling) -> dict[str, Any]:
        p = self.params
        warmup = scaling.warmup_steps or scaling.steps
        out = {**super().scaled(scaling), "warmup_steps": warmup(p.warmup_steps, p.scope)}
        if p.warmup_tokens is not None:
            out["warmup_tokens"] = (scaling.warmup_tokens or scaling.tokens)(p.warmup_tokens, p.scope)
        return out

    def warmup_end(self, clock: Clock) -> int:
        """The first step after the warmup, counted within the scope."""
        p = self.params
        return p.warmup_steps if p.warmup_tokens is None else clock.step_at_tokens(p.scope, p.warmup_tokens)

    def ramp(self, clock: Clock) -> float | None:
        """The warmup multiplier at this step, or None once warmup is over."""
        p = self.params
        if p.warmup_tokens is None:
            return _warmup(clock.position(p.scope)[0], p.warmup_steps)
        seen = clock.tokens(p.scope)
        return seen / p.warmup_tokens if seen < p.warmup_tokens else None


def _warmup(t: int, warmup_steps: int) -> float | None:
    """The warmup multiplier at step ``t``, or None once warmup is over."""
    if t < warmup_steps:
        return float(t) / float(max(1, warmup_steps))
    return None


class Constant(LRSchedule):
    """Constant learning rate: the multiplier is always 1."""

    name: ClassVar[str] = "constant"

    class Params(ScheduledParams):
        pass

    def multiplier(self, clock: Clock) -> float:
        return 1.0


class LinearWarmupDecay(_WarmupSchedule):
    """Linear warmup to the peak, then linear decay to final_ratio × peak at the end of the span.

    With ``final_ratio = 0`` this is transformers' ``get_linear_schedule_with_warmup``.
    """

    name: ClassVar[str] = "linear_warmup_decay"

    class Params(WarmupParams):
        final_ratio: float = Field(0.0, ge=0, le=1, description="multiplier reached at the end of the span")

    def multiplier(self, clock: Clock) -> float:
        t, total = clock.position(self.params.scope)
        final = self.params.final_ratio
        ramp = self.ramp(clock)
        if ramp is not None:
            return ramp
        w = self.warmup_end(clock)
        # Same arithmetic as transformers, so final_ratio 0 matches it bit for bit.
        left = max(0.0, float(total - t) / float(max(1, total - w)))
        return final + (1.0 - final) * left


DecayShape = Literal["1-sqrt", "linear", "cosine"]


def _decay(shape: str, progress: float) -> float:
    """From 1 at progress 0 to 0 at progress 1 (transformers' WSD formulas)."""
    if shape == "linear":
        return 1.0 - progress
    if shape == "cosine":
        return 0.5 * (1.0 + math.cos(math.pi * progress))
    if shape == "1-sqrt":
        return 1.0 - math.sqrt(progress)
    raise ValueError(f"unknown decay shape {shape!r}; known: 1-sqrt, linear, cosine")


class WarmupStableDecay(_WarmupSchedule):
    """Warmup–stable–decay (trapezoid): warm up, hold the peak, decay at the end.

    The decay starts either at the first step of the stage named
    ``decay_start_stage`` (scope ``run`` only: the schedule spans stages) or
    ``decay_fraction`` of the span before its end; exactly one is given. It
    reaches ``final_ratio`` at the end of the span. Warmup is linear from 0
    (transformers' ``get_wsd_schedule`` warms up from ``min_lr_ratio``; the two
    agree when ``final_ratio`` is 0).

    ``decay_origin_stage`` (scope ``run``) measures the decay's progress from
    the start of an earlier stage instead of from the decay's own start, so
    the decay opens part-way down its curve. The Finnish ModernBERTs' released
    scheduler does this: its 1-sqrt decay counts progress from the start of the
    context extension (85% of the run) but only begins at the annealing (97%),
    so the LR opens at ``1 - sqrt(0.8)`` ≈ 0.106 of the peak
    (rakseli/finnish-modernberts, src/training/sheduler.py lines 64-73).
    """

    name: ClassVar[str] = "wsd"

    class Params(WarmupParams):
        scope: Literal["stage", "run"] = Field(
            "run", description="stage: restart at every stage; run: one curve over all stages"
        )
        decay_start_stage: str | None = Field(
            None, description="the decay begins at the start of this stage (scope: run)"
        )
        decay_fraction: float | None = Field(
            None, gt=0, le=1, description="the decay covers this last fraction of the span"
        )
        decay_origin_stage: str | None = Field(
            None,
            description="the decay's progress is counted from the start of this stage, not from the decay's "
            "start (scope: run; None: from the decay's start)",
        )
        decay_shape: DecayShape = Field("1-sqrt", description="shape of the decay: 1-sqrt, linear or cosine")
        final_ratio: float = Field(0.0, ge=0, le=1, description="multiplier reached at the end of the span")

        @model_validator(mode="after")
        def _one_decay_start(self) -> WarmupStableDecay.Params:
            if (self.decay_start_stage is None) == (self.decay_fraction is None):
                raise ValueError("wsd needs exactly one of decay_start_stage or decay_fraction")
            if self.decay_start_stage is not None and self.scope != "run":
                raise ValueError("decay_start_stage names a stage of the run, so it needs scope: run")
            if self.decay_origin_stage is not None and self.scope != "run":
                raise ValueError("decay_origin_stage names a stage of the run, so it needs scope: run")
            return self

    def check(self, recipe: Recipe) -> list[Problem]:
        stages = [stage.name for stage in recipe.stages]
        problems: list[Problem] = []
        for key in ("decay_start_stage", "decay_origin_stage"):
            wanted = getattr(self.params, key)
            if wanted is not None and wanted not in stages:
                problems.append(((key,), f"no stage named {wanted!r}; stages: {', '.join(stages)}"))
        return problems

    @staticmethod
    def _stage_start(clock: Clock, stage: str, key: str) -> int:
        if stage not in clock.stage_starts:
            known = ", ".join(clock.stage_starts) or "none"
            raise ValueError(f"wsd {key} {stage!r} is not a stage of this run; stages: {known}")
        return clock.stage_starts[stage]

    def decay_start(self, clock: Clock) -> int:
        """The step (in the schedule's scope) at which the decay begins."""
        _, total = clock.position(self.params.scope)
        if self.params.decay_start_stage is not None:
            return self._stage_start(clock, self.params.decay_start_stage, "decay_start_stage")
        # round(): a fraction of a whole number of steps; never before warmup ends.
        decay_steps = round(self.params.decay_fraction * total)
        return max(self.warmup_end(clock), total - decay_steps)

    def multiplier(self, clock: Clock) -> float:
        t, total = clock.position(self.params.scope)
        ramp = self.ramp(clock)
        if ramp is not None:
            return ramp
        start = self.decay_start(clock)
        if t < start:
            return 1.0
        final = self.params.final_ratio
        if t >= total:
            return final
        origin = start
        if self.params.decay_origin_stage is not None:
            origin = min(start, self._stage_start(clock, self.params.decay_origin_stage, "decay_origin_stage"))
        progress = float(t - origin) / float(max(1, total - origin))
        return max(0.0, _decay(self.params.decay_shape, progress) * (1.0 - final) + final)


class DampedCosine(_WarmupSchedule):
    """Linear warmup, then a cosine of ``cycles`` cycles whose peaks are damped exponentially.

    After warmup, with ``p`` the post-warmup progress in [0, 1] and ``N`` = ``cycles``::

        peak(p) = final_ratio + (1 - final_ratio) · exp(-damping · p),  valley = final_ratio
        m(p)    = (peak(p) + valley) / 2 + (peak(p) - valley) / 2 · cos(π (2N - 1) p)

    This is the outline secondary accounts give of the Chinese ModernBERT's
    schedule (arXiv 2510.12285): the cosine ``cos(π(2N-1)p)`` runs ``N`` cycles
    and ends in a valley, between a peak and a valley curve. Their exact peak
    and valley curves are not in the text we have, so exponentially damped
    peaks over a fixed valley at ``final_ratio`` are our reading. With
    ``cycles = 1`` and ``damping = 0`` it is transformers'
    ``get_cosine_schedule_with_warmup``; larger damping drops the LR sooner
    while still ending at ``final_ratio``; ``cycles > 1`` restarts the LR
    ``N - 1`` times, each restart lower than the last.
    """

    name: ClassVar[str] = "damped_cosine"

    class Params(WarmupParams):
        final_ratio: float = Field(0.0, ge=0, le=1, description="multiplier reached at the end of the span")
        damping: float = Field(1.0, ge=0, description="exponential damping rate of the cosine's amplitude")
        cycles: int = Field(1, ge=1, description="cosine cycles N after warmup: cos(π(2N-1)p); 1: one monotone decay")

    def multiplier(self, clock: Clock) -> float:
        t, total = clock.position(self.params.scope)
        final = self.params.final_ratio
        ramp = self.ramp(clock)
        if ramp is not None:
            return ramp
        w = self.warmup_end(clock)
        progress = min(1.0, float(t - w) / float(max(1, total - w)))
        phase = math.pi * (2 * self.params.cycles - 1) * progress
        factor = 0.5 * (1.0 + math.cos(phase)) * math.exp(-self.params.damping * progress)
        return max(0.0, factor * (1.0 - final) + final)
