"""Steps ↔ tokens over a whole run: each stage's :class:`~encoder_recipes.batch_warmup.TokenTimeline`, end to end.

The plan builds one :class:`RunTimeline`; every :class:`~encoder_recipes.clock.Clock`
it hands out carries it, so a schedule can ask how many tokens were seen
before its step (in its stage or in the run) and at which step a token count
is reached. Everything here is a pure function of the step, so a resumed run
sees the batch sizes and token counts an uninterrupted one saw.

Tokens are counted as the plan counts them: batch × sequence length per step,
padding included; a context schedule with several lengths is counted at its
mean length.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass

from encoder_recipes.batch_warmup import TokenTimeline

__all__ = ["RunTimeline", "StageSpan"]


@dataclass(frozen=True)
class StageSpan:
    start: int  #: global step of the stage's first step
    steps: int  #: steps in the stage
    tokens_before: float  #: tokens seen in the run before the stage
    timeline: TokenTimeline  #: the stage's own steps ↔ tokens

    @property
    def tokens(self) -> float:
        """Tokens the stage trains on (its last step included)."""
        return self.timeline.tokens_before(self.steps)


class RunTimeline:
    """The stages' timelines in order; global steps and run-wide token counts."""

    def __init__(self, stages: list[tuple[int, TokenTimeline]]) -> None:
        """:param stages: ``(steps, timeline)`` of each stage, in run order."""
        spans, start, seen = [], 0, 0
        for steps, timeline in stages:
            span = StageSpan(start, steps, seen, timeline)
            spans.append(span)
            start, seen = start + steps, seen + span.tokens
        self.spans: list[StageSpan] = spans
        self.total_steps, self.total_tokens = start, seen
        self._starts = [s.start for s in spans]

    def stage_index(self, step: int) -> int:
        """The stage of global ``step`` (a step past the end belongs to the last stage)."""
        return max(0, bisect.bisect_right(self._starts, step) - 1)

    def batch_at(self, step: int) -> int:
        """The global batch of global ``step``."""
        span = self.spans[self.stage_index(step)]
        return span.timeline.batch_at(step - span.start)

    def stage_tokens_before(self, step: int) -> float:
        """Tokens seen in the stage of ``step`` before it."""
        span = self.spans[self.stage_index(step)]
        return span.timeline.tokens_before(min(step, span.start + span.steps) - span.start)

    def tokens_before(self, step: int) -> float:
        """Tokens seen in the run before global ``step``."""
        return self.spans[self.stage_index(step)].tokens_before + self.stage_tokens_before(step)

    def stage_step_at_tokens(self, index: int, tokens: float) -> int:
        """The first step of stage ``index`` (counted from its start) with at least ``tokens`` of the
        stage behind it; the stage's length when the stage never gets there."""
        span = self.spans[index]
        return min(span.steps, span.timeline.step_at_tokens(tokens))

    def step_at_tokens(self, tokens: float) -> int:
        """The first global step with at least ``tokens`` seen before it in the run; the run's
        length when the run never gets there."""
        for index, span in enumerate(self.spans):
            if tokens <= span.tokens_before + span.tokens:
                return span.start + self.stage_step_at_tokens(index, tokens - span.tokens_before)
        return self.total_steps
