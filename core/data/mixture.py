"""A weighted mixture of document streams, resumable to the exact next document."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from encoder_recipes.data.mixing import MixtureSchedule
from encoder_recipes.data.sources import DocumentStream


class MixtureStream:
    """Draws each next document's source by weight, with a seeded numpy ``Generator``.

    Iterating yields ``(source_name, text)`` without end: a source that runs
    out starts over (its epoch count goes up by one; see :attr:`epochs`). The
    training loop decides when to stop.

    :param streams: the sources' document streams, by source name.
    :param weights: sampling weight per source name; only the ratios matter.
        Empty: every source equally (the recipe schema's meaning of an empty
        ``mixture``). A source left out of a non-empty mapping is not drawn.
        Or a :class:`~encoder_recipes.data.mixing.MixtureSchedule`: the
        probabilities change with the step given to :meth:`set_step`.
    :param seed: seed of the draws.

    :meth:`state_dict` holds the generator's state, every stream's position
    and the epochs, so a new mixture over new streams of the same sources,
    given that state, yields exactly the documents the old one would have.
    """

    def __init__(self, streams: dict[str, DocumentStream], weights: dict[str, float] | MixtureSchedule,
                 seed: int) -> None:
        if not streams:
            raise ValueError("a mixture needs at least one stream")
        # Sorted names: the draws do not depend on the order the dict was built in.
        self.names = sorted(streams)
        self.schedule = weights if isinstance(weights, MixtureSchedule) else None
        self.probabilities = self._normalised(weights.at(0) if self.schedule is not None else weights)
        self.streams = streams
        self.seed = seed
        self._rng = np.random.default_rng(seed)
        self.epochs: dict[str, int] = {name: 0 for name in self.names}  #: completed passes per source
        self.drawn: dict[str, int] = {name: 0 for name in self.names}  #: documents yielded per source
        self._iterators: dict[str, Iterator[str]] = {}

    def _normalised(self, weights: dict[str, float]) -> np.ndarray:
        unknown = sorted(set(weights) - set(self.names))
        if unknown:
            raise ValueError(f"mixture weights name unknown sources {unknown}; sources are {self.names}")
        raw = np.array([1.0 if not weights else float(weights.get(name, 0.0)) for name in self.names])
        if (raw < 0).any() or not np.isfinite(raw).all() or raw.sum() <= 0:
            raise ValueError(f"mixture weights must be finite, >= 0 and not all 0; got {dict(zip(self.names, raw))}")
        return raw / raw.sum()

    def set_step(self, step: int) -> None:
        """Draw the next documents with the schedule's probabilities at ``step`` (fixed weights: no change)."""
        if self.schedule is not None:
            self.probabilities = self._normalised(self.schedule.at(step))

    def __iter__(self) -> Iterator[tuple[str, str]]:
        while True:
            name = self.names[int(self._rng.choice(len(self.names), p=self.probabilities))]
            text = self._next(name)
            self.drawn[name] += 1
            yield name, text

    def _next(self, name: str) -> str:
        stream = self.streams[name]
        iterator = self._iterators.get(name)
        if iterator is None:
            iterator = self._iterators[name] = iter(stream)
        try:
            return next(iterator)
        except StopIteration:
            pass
        # Exhausted: start the source over.
        stream.reset()
        self.epochs[name] += 1
        iterator = self._iterators[name] = iter(stream)
        try:
            return next(iterator)
        except StopIteration:
            raise ValueError(f"data source {name!r} has no documents (split {stream.split!r})") from None

    def state_dict(self) -> dict:
        """The generator state, each stream's position, epochs and counts (plain data)."""
        return {
            "seed": self.seed,
            "rng": self._rng.bit_generator.state,
            "epochs": dict(self.epochs),
            "drawn": dict(self.drawn),
            "streams": {name: self.streams[name].state_dict() for name in self.names},
        }

    def start_at(self, positions: dict[str, dict]) -> None:
        """Start each source at a position from :func:`stream_positions` (a new stage, same documents)."""
        for name in self.names:
            if name in positions:
                self.streams[name].load_state_dict(positions[name])
        self._iterators = {}

    def load_state_dict(self, state: dict) -> None:
        """Continue from :meth:`state_dict`; the next draw is the one the saved mixture would make."""
        missing = sorted(set(self.names) - set(state["streams"]))
        if missing:
            raise ValueError(f"mixture state has no position for sources {missing}")
        self._rng.bit_generator.state = state["rng"]
        self.epochs = {name: int(state["epochs"].get(name, 0)) for name in self.names}
        self.drawn = {name: int(state.get("drawn", {}).get(name, 0)) for name in self.names}
        for name in self.names:
            self.streams[name].load_state_dict(state["streams"][name])
        self._iterators = {}  # new iterators start from the restored positions


def stream_positions(state: dict) -> dict[str, dict]:
    """Each source's position in a mixture's :meth:`~MixtureStream.state_dict`.

    The next stage draws with its own weights and seed, from where the
    previous stage left each source: this is all that carries over.
    """
    return {name: dict(position) for name, position in state["streams"].items()}
