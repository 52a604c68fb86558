"""Built-in data mixtures: ``weights`` (fixed shares) and ``temperature`` (p ∝ n^τ, on a schedule).

A recipe names a mixture at ``data.mixture`` (the whole run) or at a stage's
``mixture`` (that stage). A plain mapping of numbers there, such as
``{web: 1.0, books: 0.0}``, is short for ``{name: weights, weights: {...}}``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import lru_cache
from typing import TYPE_CHECKING, ClassVar, Literal

import numpy as np
from pydantic import Field, field_validator, model_validator

from encoder_recipes.clock import Clock
from encoder_recipes.components.base import Params, Problem
from encoder_recipes.components.kinds import Mixture
from encoder_recipes.data.temperature import temperature_probabilities

if TYPE_CHECKING:
    from encoder_recipes.schema import Recipe

__all__ = ["Weights", "Temperature"]


def _unknown_sources(names: Sequence[str], recipe: Recipe, where: tuple) -> list[Problem]:
    known = {s.name for s in recipe.data.sources}
    return [((*where, name), f"unknown data source {name!r}; sources: {', '.join(sorted(known))}")
            for name in names if name not in known]


class WeightsParams(Params):
    weights: dict[str, float] = Field(
        default_factory=dict, description="sampling weight per source name (only ratios count); empty: every "
        "source equally; a source left out of a non-empty mapping is not drawn")

    @field_validator("weights")
    @classmethod
    def _valid(cls, weights: dict[str, float]) -> dict[str, float]:
        if any(w < 0 or not np.isfinite(w) for w in weights.values()):
            raise ValueError(f"weights must be finite and >= 0, got {weights}")
        if weights and not any(weights.values()):
            raise ValueError("weights are all 0: no source would be drawn")
        return weights


class Weights(Mixture):
    """Fixed shares: each source in proportion to its weight, the same at every step."""

    name: ClassVar[str] = "weights"
    Params: ClassVar[type[Params]] = WeightsParams

    def probabilities(self, clock: Clock, *, sources: Sequence[str],
                      sizes: Mapping[str, float] | None) -> dict[str, float]:
        weights = self.params.weights
        raw = {name: (float(weights.get(name, 0.0)) if weights else 1.0) for name in sources}
        total = sum(raw.values())
        return {name: w / total for name, w in raw.items()}

    def fixed_weights(self) -> dict[str, float]:
        return dict(self.params.weights)

    def check(self, recipe: Recipe) -> list[Problem]:
        return _unknown_sources(list(self.params.weights), recipe, ("weights",))


class TemperatureParams(Params):
    tau: float = Field(1.0, ge=0, description="exponent τ of p ∝ n^τ: 1 samples by size, 0 uniformly")
    schedule: list[tuple[float, float]] | None = Field(
        None, description="piecewise-linear (progress, τ) points over the scope, progress in [0, 1] strictly "
        "increasing; flat outside the points; overrides tau when given")
    scope: Literal["stage", "run"] = Field("stage", description="progress of the schedule: over the stage or the run")
    languages: list[str] | int | None = Field(
        None, description="the sources drawn: their names; a number N: the N largest sources (or, with premixed, "
        "the number of languages mixed into it); None: every source")
    premixed: str | None = Field(
        None, description="a source that already holds this mixture, sampled by its authors: the stage reads it "
        "alone, and tau and languages record how it was made (a smoke scale mixes offline languages by them)")

    @field_validator("schedule")
    @classmethod
    def _valid_schedule(cls, points: list[tuple[float, float]] | None) -> list[tuple[float, float]] | None:
        if points is None:
            return None
        if not points:
            raise ValueError("schedule needs at least one (progress, tau) point; omit it for a constant tau")
        xs = [p for p, _ in points]
        if any(not 0.0 <= p <= 1.0 for p in xs) or any(a >= b for a, b in zip(xs, xs[1:])):
            raise ValueError(f"schedule progress points must be in [0, 1] and strictly increasing, got {xs}")
        if any(tau < 0 for _, tau in points):
            raise ValueError("schedule tau values must be >= 0")
        return points

    @model_validator(mode="after")
    def _languages(self) -> TemperatureParams:
        if isinstance(self.languages, int) and self.languages < 1:
            raise ValueError(f"languages as a count must be >= 1, got {self.languages}")
        if isinstance(self.languages, list) and not self.languages:
            raise ValueError("languages is an empty list: no source would be drawn")
        return self


class Temperature(Mixture):
    """Temperature-scaled size: p ∝ n^τ over a set of sources, τ and the set per stage or by schedule (XLM-R, mmBERT)."""

    name: ClassVar[str] = "temperature"
    Params: ClassVar[type[Params]] = TemperatureParams

    def tau(self, clock: Clock) -> float:
        schedule = self.params.schedule
        return float(self.params.tau) if schedule is None else clock.along(schedule, self.params.scope)

    def needs_sizes(self) -> bool:
        return self.params.premixed is None

    def chosen(self, sources: Sequence[str], sizes: Mapping[str, float]) -> list[str]:
        """The sources drawn from (before the premixed case)."""
        languages = self.params.languages
        if languages is None:
            return list(sources)
        if isinstance(languages, int):
            # the N largest; ties by name, so the set does not depend on the sources' order
            return sorted(sources, key=lambda name: (-sizes[name], name))[:languages]
        return list(languages)

    def probabilities(self, clock: Clock, *, sources: Sequence[str],
                      sizes: Mapping[str, float] | None) -> dict[str, float]:
        if self.params.premixed is not None:
            return {name: float(name == self.params.premixed) for name in sources}
        if sizes is None:
            raise ValueError("the temperature mixture needs the sources' sizes")
        return dict(_probabilities(tuple(sorted((name, float(sizes[name])) for name in sources)), self.tau(clock),
                                   tuple(sorted(self.chosen(sources, sizes)))))

    def describe(self, clock: Clock) -> dict[str, float]:
        languages = self.params.languages
        out = {"tau": self.tau(clock)}
        if languages is not None:
            out["languages"] = float(languages if isinstance(languages, int) else len(languages))
        return out

    def check(self, recipe: Recipe) -> list[Problem]:
        p = self.params
        names = {s.name for s in recipe.data.sources}
        known = f"sources: {', '.join(sorted(names))}"
        problems: list[Problem] = []
        if p.premixed is not None and p.premixed not in names:
            problems.append((("premixed",), f"unknown data source {p.premixed!r}; {known}"))
        if isinstance(p.languages, list):
            problems += [(("languages", i), f"unknown data source {name!r}; {known}")
                         for i, name in enumerate(p.languages) if name not in names]
        elif isinstance(p.languages, int) and p.premixed is None and p.languages > len(names):
            problems.append((("languages",), f"the {p.languages} largest sources: the recipe has only {len(names)}"))
        return problems


@lru_cache(maxsize=256)
def _probabilities(sizes: tuple[tuple[str, float], ...], tau: float, chosen: tuple[str, ...]) -> dict[str, float]:
    # cached: a stage asks once per step, and τ rarely changes between steps
    return temperature_probabilities(dict(sizes), tau, chosen)
