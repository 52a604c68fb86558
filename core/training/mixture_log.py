"""What ``metrics.jsonl`` says about the data mixture: the schedule and what was actually drawn.

Each metrics line of a run with more than one source gets

* ``mixture/p/<source>``: the probability the schedule gives the source at that step;
* the mixture's own numbers (``mixture/tau``, ``mixture/languages`` for ``temperature``);
* ``mixture/docs/<source>`` and ``mixture/tokens/<source>``: the source's share of the
  documents, and of their tokens, read for the batches since the previous line, and
  ``mixture/documents``: how many documents that is (to weigh lines when adding them up).

Documents are read in chunks ahead of packing, so one batch's reads are lumpy;
the shares over a log interval follow the probabilities within sampling noise
(a test checks it). A resumed run's first line counts from the resume.
"""

from __future__ import annotations

from typing import Any

from encoder_recipes.clock import Clock
from encoder_recipes.components.kinds import Mixture
from encoder_recipes.data.mixing import MixtureSchedule, describe_at


class MixtureLog:
    def __init__(self, mixture: Mixture, schedule: MixtureSchedule, sources: list[str]) -> None:
        self.mixture, self.schedule, self.sources = mixture, schedule, sorted(sources)
        self.enabled = len(self.sources) > 1  # one source: nothing to say
        self._docs = dict.fromkeys(self.sources, 0)
        self._tokens = dict.fromkeys(self.sources, 0)

    def add(self, read: dict[str, tuple[int, int]] | None) -> None:
        """Count a batch's reads (:attr:`~encoder_recipes.training.batches.Batch.sources`)."""
        for name, (docs, tokens) in (read or {}).items():
            self._docs[name] = self._docs.get(name, 0) + docs
            self._tokens[name] = self._tokens.get(name, 0) + tokens

    def line(self, clock: Clock) -> dict[str, Any]:
        """The mixture's metrics for the line at ``clock``; the counts start again after it."""
        if not self.enabled:
            return {}
        out: dict[str, Any] = describe_at(self.mixture, clock)
        probs = self.schedule.at(clock.step)
        out.update({f"mixture/p/{name}": probs.get(name, 0.0) for name in self.sources})
        out["mixture/documents"] = sum(self._docs.values())
        for key, counts in (("docs", self._docs), ("tokens", self._tokens)):
            total = sum(counts.values())
            out.update({f"mixture/{key}/{name}": (counts.get(name, 0) / total if total else 0.0)
                        for name in self.sources})
        self._docs = dict.fromkeys(self.sources, 0)
        self._tokens = dict.fromkeys(self.sources, 0)
        return out
