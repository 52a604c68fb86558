"""The training clock: where a global step falls in the run and in its stage.

Every schedule (LR, mask rate, context length) is a pure function of a
:class:`Clock`, and a clock is a pure function of the global step and the
plan (see :meth:`encoder_recipes.plan.Plan.clock`), so resuming at step N
recreates exactly the schedules an uninterrupted run had at step N. A clock
from the plan also answers in tokens (:meth:`Clock.tokens`,
:meth:`Clock.step_at_tokens`) through the plan's
:class:`~encoder_recipes.timeline.RunTimeline`, for schedules given in tokens.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from encoder_recipes.timeline import RunTimeline


@dataclass(frozen=True)
class Clock:
    step: int  #: global optimizer step, 0-based
    total_steps: int  #: steps in the whole run
    stage: str  #: name of the current stage
    stage_index: int
    stage_step: int  #: step within the stage, 0-based
    stage_steps: int  #: steps in the stage
    stage_starts: dict[str, int] = field(default_factory=dict)  #: global step at which each stage starts
    #: the run's steps ↔ tokens (the plan's); None on a clock made without a plan, which then
    #: cannot answer in tokens
    timeline: RunTimeline | None = field(default=None, compare=False, repr=False)

    def position(self, scope: str) -> tuple[int, int]:
        """``(step, total)`` within ``scope``: ``"stage"`` (restarts each stage) or ``"run"``."""
        if scope == "stage":
            return self.stage_step, self.stage_steps
        if scope == "run":
            return self.step, self.total_steps
        raise ValueError(f"unknown scope {scope!r}; known: stage, run")

    def progress(self, scope: str) -> float:
        """Fraction of ``scope`` done before this step, in [0, 1)."""
        step, total = self.position(scope)
        return step / total if total else 0.0

    def along(self, schedule, scope: str) -> float:
        """A piecewise-linear schedule of ``(progress, value)`` points at this step's progress over
        ``scope``; flat outside the points (a masking rate, a mixture's temperature)."""
        xs, ys = zip(*schedule)
        return float(np.interp(self.progress(scope), xs, ys))

    def tokens(self, scope: str) -> float:
        """Tokens seen before this step within ``scope`` (``"stage"`` or ``"run"``), padding included."""
        timeline = self._timeline()
        if scope == "stage":
            return timeline.stage_tokens_before(self.step)
        if scope == "run":
            return timeline.tokens_before(self.step)
        raise ValueError(f"unknown scope {scope!r}; known: stage, run")

    def step_at_tokens(self, scope: str, tokens: float) -> int:
        """The first step, counted within ``scope``, with at least ``tokens`` of that scope behind it."""
        timeline = self._timeline()
        if scope == "stage":
            return timeline.stage_step_at_tokens(self.stage_index, tokens)
        if scope == "run":
            return timeline.step_at_tokens(tokens)
        raise ValueError(f"unknown scope {scope!r}; known: stage, run")

    def _timeline(self) -> RunTimeline:
        if self.timeline is None:
            raise ValueError("this clock has no token timeline (make clocks with Plan.clock to count in tokens)")
        return self.timeline
