"""Temperature-scaled sampling over languages (or any data sources), on a schedule.

A source of size ``n`` is drawn with probability ``p ∝ n^τ`` among the
sources of the current language set; sources outside the set are not drawn.
``τ = 1`` samples in proportion to size, ``τ → 0`` uniformly; lowering τ
moves weight from high- to low-resource languages. This is the "inverse
temperature" of XLM-R and mmBERT (arXiv 2509.06888, whose three phases use
τ = 0.7, 0.5, 0.3 over 60, 110 and 1,833 languages).

The schedule is a list of phases, each from a global step on; the
probabilities are a pure function of the step. :class:`TemperatureSampler`
draws one source name per document from a seeded generator, one uniform
number per draw whatever the phase, so a sampler restored from
:meth:`~TemperatureSampler.state_dict` continues with exactly the draws an
uninterrupted one would make.
"""

from __future__ import annotations

import bisect
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

__all__ = ["temperature_probabilities", "TemperaturePhase", "TemperatureSchedule", "TemperatureSampler"]


def temperature_probabilities(
    sizes: Mapping[str, float], tau: float, languages: Collection[str] | None = None
) -> dict[str, float]:
    """``p ∝ n^τ`` over ``languages`` (None: every source), 0 for every other source.

    :param sizes: size of each source (tokens, say); only ratios matter.
    :param tau: the exponent, ``>= 0``.
    :param languages: the sources that may be drawn.
    """
    if tau < 0 or not np.isfinite(tau):
        raise ValueError(f"temperature tau must be finite and >= 0, got {tau}")
    chosen = set(sizes) if languages is None else set(languages)
    unknown = sorted(chosen - set(sizes))
    if unknown:
        raise ValueError(f"languages {unknown} have no size; sources are {sorted(sizes)}")
    if not chosen:
        raise ValueError("the language set is empty")
    bad = {name: sizes[name] for name in chosen if not (sizes[name] > 0 and np.isfinite(sizes[name]))}
    if bad:
        raise ValueError(f"sizes must be finite and > 0 for every language drawn, got {bad}")
    # Work in log space: n^τ overflows for n ~ 1e12 only at large τ, but the
    # ratio is all that matters, so subtract the largest log first.
    names = sorted(chosen)
    logs = np.array([tau * np.log(float(sizes[name])) for name in names])
    weights = np.exp(logs - logs.max())
    probs = weights / weights.sum()
    out = {name: 0.0 for name in sizes}
    out.update({name: float(p) for name, p in zip(names, probs)})
    return out


@dataclass(frozen=True)
class TemperaturePhase:
    """From global step ``start`` on, draw with exponent ``tau`` among ``languages`` (None: all)."""

    start: int
    tau: float
    languages: tuple[str, ...] | None = None


class TemperatureSchedule:
    """Phases of (τ, language set), each from a global step on; the first starts at step 0.

    :param sizes: size of every source that any phase may draw.
    :param phases: in order of ``start``; starts strictly increase.
    """

    def __init__(self, sizes: Mapping[str, float], phases: Sequence[TemperaturePhase]) -> None:
        if not phases:
            raise ValueError("a temperature schedule needs at least one phase")
        starts = [p.start for p in phases]
        if starts[0] != 0:
            raise ValueError(f"the first phase must start at step 0, got {starts[0]}")
        if any(b <= a for a, b in zip(starts, starts[1:])):
            raise ValueError(f"phase starts must strictly increase, got {starts}")
        self.sizes = dict(sizes)
        self.phases = tuple(phases)
        self._starts = starts
        # Sorted names: the draws do not depend on the order the mapping was built in.
        self.names = sorted(self.sizes)
        # Every phase is checked (and its probabilities computed) up front, so a
        # bad phase fails at construction, not thousands of steps into a run.
        self._probs = [temperature_probabilities(self.sizes, p.tau, p.languages) for p in self.phases]

    def phase_index(self, step: int) -> int:
        if step < 0:
            raise ValueError(f"step must be >= 0, got {step}")
        return bisect.bisect_right(self._starts, step) - 1

    def phase_at(self, step: int) -> TemperaturePhase:
        return self.phases[self.phase_index(step)]

    def probabilities(self, step: int) -> dict[str, float]:
        """Each source's probability at ``step``."""
        return dict(self._probs[self.phase_index(step)])


class TemperatureSampler:
    """Draws a source name per document, following a :class:`TemperatureSchedule`.

    Each draw takes one uniform number from a seeded numpy generator and
    inverts the cumulative distribution of the sorted names at that step, so
    the stream of uniforms does not depend on the phase, and the generator's
    state plus the counts is the whole position.
    """

    def __init__(self, schedule: TemperatureSchedule, seed: int) -> None:
        self.schedule = schedule
        self.seed = seed
        self.names = schedule.names
        self._rng = np.random.default_rng(seed)
        self.drawn: dict[str, int] = {name: 0 for name in self.names}  #: documents drawn per source
        self._cdfs: dict[int, tuple[np.ndarray, int]] = {}

    def _cdf(self, phase: int) -> tuple[np.ndarray, int]:
        if phase not in self._cdfs:
            probs = self.schedule._probs[phase]
            p = np.array([probs[name] for name in self.names])
            # The last source with p > 0 catches a uniform above a cumsum that
            # rounds to just under 1; a source with p == 0 is never chosen.
            self._cdfs[phase] = (np.cumsum(p), int(np.flatnonzero(p)[-1]))
        return self._cdfs[phase]

    def draw(self, step: int) -> str:
        """The source of the next document, for a batch built at global step ``step``."""
        cdf, last = self._cdf(self.schedule.phase_index(step))
        index = min(int(np.searchsorted(cdf, self._rng.random(), side="right")), last)
        name = self.names[index]
        self.drawn[name] += 1
        return name

    def shares(self) -> dict[str, float]:
        """Each source's share of the documents drawn so far (0 before the first draw)."""
        total = sum(self.drawn.values())
        return {name: (count / total if total else 0.0) for name, count in self.drawn.items()}

    def state_dict(self) -> dict:
        """The generator state and the counts (plain data)."""
        return {"seed": self.seed, "rng": self._rng.bit_generator.state, "drawn": dict(self.drawn)}

    def load_state_dict(self, state: dict) -> None:
        """Continue from :meth:`state_dict`: the next draw is the one the saved sampler would make."""
        unknown = sorted(set(state["drawn"]) - set(self.names))
        if unknown:
            raise ValueError(f"sampler state counts sources {unknown} this schedule does not have")
        self.seed = int(state["seed"])
        self._rng.bit_generator.state = state["rng"]
        self.drawn = {name: int(state["drawn"].get(name, 0)) for name in self.names}
