"""Built-in context schedules: a stage's sequence length at each step of the stage.

A schedule is a pure function of the clock's position in its stage, so a
resumed run picks up the length an uninterrupted run had at that step.
"""

from __future__ import annotations

import bisect
from typing import Any, ClassVar

from pydantic import Field, field_validator, model_validator

from encoder_recipes.clock import Clock
from encoder_recipes.components.base import Params, Scaling
from encoder_recipes.components.kinds import ContextSchedule

__all__ = ["Fixed", "Stepwise"]


class Fixed(ContextSchedule):
    """One sequence length for the whole stage."""

    name: ClassVar[str] = "fixed"

    class Params(Params):
        seq_len: int = Field(gt=0, description="sequence length in tokens, [CLS] and [SEP] included")

    def seq_len(self, clock: Clock) -> int:
        return self.params.seq_len

    def lengths(self) -> list[int]:
        return [self.params.seq_len]

    def scaled(self, scaling: Scaling) -> dict[str, Any]:
        return {**super().scaled(scaling), "seq_len": scaling.length(self.params.seq_len)}


class Stepwise(ContextSchedule):
    """Multi-step context extension within a stage: the length grows in steps.

    Length ``k`` covers the ``k``-th equal share of the stage unless
    ``boundaries`` gives the stage-progress fractions at which each next length
    begins (the Finnish recipe extends in six steps up to 16K this way).
    """

    name: ClassVar[str] = "stepwise"

    class Params(Params):
        lengths: list[int] = Field(min_length=1, description="sequence lengths in the order they are used")
        boundaries: list[float] | None = Field(
            None,
            description="stage-progress fractions in (0, 1), strictly increasing, where each next length "
            "begins (len(lengths) - 1 of them); None: equal shares",
        )

        @field_validator("lengths")
        @classmethod
        def _positive(cls, lengths: list[int]) -> list[int]:
            bad = [n for n in lengths if n <= 0]
            if bad:
                raise ValueError(f"every length must be > 0, got {bad}")
            return lengths

        @model_validator(mode="after")
        def _boundaries_fit(self) -> Stepwise.Params:
            b = self.boundaries
            if b is None:
                return self
            if len(b) != len(self.lengths) - 1:
                raise ValueError(
                    f"boundaries needs len(lengths) - 1 = {len(self.lengths) - 1} values, got {len(b)}"
                )
            if any(not 0.0 < x < 1.0 for x in b):
                raise ValueError(f"boundaries must lie strictly between 0 and 1, got {b}")
            if any(x >= y for x, y in zip(b, b[1:])):
                raise ValueError(f"boundaries must be strictly increasing, got {b}")
            return self

    def step_index(self, clock: Clock) -> int:
        """Which of ``lengths`` is in use at this step."""
        n = len(self.params.lengths)
        step, total = clock.stage_step, clock.stage_steps
        if total <= 0:
            return 0
        if self.params.boundaries is None:
            # Integer arithmetic: share k starts exactly at step ceil(k * total / n).
            return min(n - 1, step * n // total)
        return bisect.bisect_right(self.params.boundaries, step / total)

    def seq_len(self, clock: Clock) -> int:
        return self.params.lengths[self.step_index(clock)]

    def lengths(self) -> list[int]:
        return list(self.params.lengths)

    def scaled(self, scaling: Scaling) -> dict[str, Any]:
        return {**super().scaled(scaling), "lengths": [scaling.length(n) for n in self.params.lengths]}
