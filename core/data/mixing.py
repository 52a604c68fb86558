"""A stage's data mixture as the data pipeline sees it: a source probability per step.

The recipe names a mixture component per stage (or one for the run at
``data.mixture``); :func:`stage_mixture` builds it, :func:`source_sizes`
counts what it weighs by, and :class:`MixtureSchedule` holds its
probabilities for every step of the stage in runs of equal values, small and
picklable, so the data worker draws each document with the probabilities of
the step it is read for. Like every schedule it is a pure function of the
step, so a resumed run draws as an uninterrupted one would.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from encoder_recipes.clock import Clock
from encoder_recipes.components.kinds import Mixture
from encoder_recipes.data.sources import iter_documents
from encoder_recipes.schema import ComponentRef, Data, Recipe


def mixture_ref(recipe: Recipe, stage_index: int) -> ComponentRef:
    """The mixture a stage draws with: its own, else ``data.mixture``; weights become ``weights``."""
    own = recipe.stages[stage_index].mixture
    chosen = own if own else recipe.data.mixture  # an empty mapping of weights means "the run's"
    if isinstance(chosen, ComponentRef):
        return chosen
    return ComponentRef(name="weights", weights=dict(chosen))


def stage_mixture(resolved: Any, registries: Any, stage_index: int) -> Mixture:
    return resolved.component(registries, "mixture", mixture_ref(resolved.recipe, stage_index))


def source_sizes(data: Data, *, validation_fraction: float | None = None) -> dict[str, float]:
    """Each source's size: its ``size``, else its count of training documents (read once)."""
    fraction = data.validation_fraction if validation_fraction is None else validation_fraction
    return {source.name: float(source.size) if source.size is not None
            else float(sum(1 for _ in iter_documents(source, "train", validation_fraction=fraction)))
            for source in data.sources}


class MixtureSchedule:
    """Source probabilities by global step, stored as runs: ``starts[i]`` on, ``values[i]``.

    :param starts: first step of each run, strictly increasing.
    :param values: the probabilities of each run (every source named; they sum to 1).
    """

    def __init__(self, starts: Sequence[int], values: Sequence[Mapping[str, float]]) -> None:
        if not starts or len(starts) != len(values):
            raise ValueError("a mixture schedule needs one probability mapping per run, and at least one run")
        if any(b <= a for a, b in zip(starts, starts[1:])):
            raise ValueError(f"run starts must strictly increase, got {list(starts)}")
        for probs in values:
            total = sum(probs.values())
            if any(p < 0 for p in probs.values()) or abs(total - 1.0) > 1e-6:
                raise ValueError(f"mixture probabilities must be >= 0 and sum to 1, got {dict(probs)}")
        self.starts = list(starts)
        self.values = [dict(v) for v in values]

    @classmethod
    def constant(cls, probabilities: Mapping[str, float]) -> MixtureSchedule:
        return cls([0], [probabilities])

    @classmethod
    def build(cls, mixture: Mixture, clocks: Iterable[Clock], *, sources: Sequence[str],
              sizes: Mapping[str, float] | None) -> MixtureSchedule:
        """Ask ``mixture`` at each clock (a stage's steps, in order) and keep the runs."""
        starts: list[int] = []
        values: list[dict[str, float]] = []
        for clock in clocks:
            probs = mixture.probabilities(clock, sources=list(sources), sizes=sizes)
            missing = sorted(set(sources) - set(probs))
            if missing:
                raise ValueError(f"mixture {mixture.name!r} gave no probability for sources {missing}")
            if not values or probs != values[-1]:
                starts.append(clock.step)
                values.append(probs)
        if not starts:
            raise ValueError("a mixture schedule needs at least one step")
        starts[0] = 0  # the first run also covers any step before the ones asked for
        return cls(starts, values)

    def at(self, step: int) -> dict[str, float]:
        return self.values[max(0, bisect.bisect_right(self.starts, step) - 1)]


def describe_at(mixture: Mixture, clock: Clock) -> dict[str, float]:
    """The mixture's own numbers for a metrics line, keyed ``mixture/<key>``."""
    return {f"mixture/{key}": float(value) for key, value in mixture.describe(clock).items()}


def clocks_for(plan: Any, steps: Iterable[int]) -> Iterable[Clock]:
    clock: Callable[[int], Clock] = plan.clock
    return (clock(step) for step in steps)
