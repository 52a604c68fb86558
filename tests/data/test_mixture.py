"""The weighted mixture: seeded draws, epochs, and an exact resume."""

from __future__ import annotations

import json
from collections import Counter
from itertools import islice

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from encoder_recipes.data.mixture import MixtureStream
from encoder_recipes.data.sources import DocumentStream
from encoder_recipes.schema import DataSource


@pytest.fixture
def sources(tmp_path):
    """Four small sources of different kinds; ``tiny`` runs out (and restarts) within a test."""
    (tmp_path / "ja.txt").write_text("".join(f"ja {i}\n" for i in range(40)), encoding="utf-8")
    (tmp_path / "tiny.txt").write_text("tiny 0\n\ntiny 1\ntiny 2\n", encoding="utf-8")
    (tmp_path / "fi.jsonl").write_text("".join(json.dumps({"text": f"fi {i}"}) + "\n" for i in range(30)), encoding="utf-8")
    pq.write_table(pa.table({"text": [f"zh {i}" for i in range(35)]}), tmp_path / "zh.parquet", row_group_size=8)
    hf = tmp_path / "hf"
    hf.mkdir()
    (hf / "data.jsonl").write_text("".join(json.dumps({"text": f"hf {i}"}) + "\n" for i in range(25)), encoding="utf-8")
    return {
        "ja": DataSource(name="ja", paths=[str(tmp_path / "ja.txt")]),
        "tiny": DataSource(name="tiny", paths=[str(tmp_path / "tiny.txt")]),
        "fi": DataSource(name="fi", paths=[str(tmp_path / "fi.jsonl")]),
        "zh": DataSource(name="zh", paths=[str(tmp_path / "zh.parquet")]),
        "hf": DataSource(name="hf", dataset=str(hf), streaming=True),
    }


def _mixture(sources, weights=None, seed=0, names=None):
    names = names or list(sources)
    streams = {name: DocumentStream(sources[name]) for name in names}
    return MixtureStream(streams, weights if weights is not None else {}, seed)


def test_same_seed_same_draws_other_seed_other_draws(sources):
    weights = {"ja": 2, "fi": 1, "zh": 1}
    names = ["ja", "fi", "zh"]
    first = list(islice(_mixture(sources, weights, seed=7, names=names), 200))
    again = list(islice(_mixture(sources, weights, seed=7, names=list(reversed(names))), 200))
    other = list(islice(_mixture(sources, weights, seed=8, names=names), 200))
    assert first == again  # the dict order of the streams does not matter
    assert [n for n, _ in first] != [n for n, _ in other]
    # Each source's documents come in its own order.
    assert [t for n, t in first if n == "fi"][:5] == [f"fi {i}" for i in range(5)]


def test_weights_set_the_shares_and_zero_is_never_drawn(sources):
    mixture = _mixture(sources, {"ja": 3, "fi": 1, "zh": 0}, seed=1, names=["ja", "fi", "zh"])
    counts = Counter(name for name, _ in islice(mixture, 4000))
    assert counts["zh"] == 0
    assert 0.72 < counts["ja"] / 4000 < 0.78
    assert mixture.drawn == {"ja": counts["ja"], "fi": counts["fi"], "zh": 0}
    equal = Counter(name for name, _ in islice(_mixture(sources, {}, seed=1, names=["ja", "fi"]), 4000))
    assert 0.46 < equal["ja"] / 4000 < 0.54


def test_an_exhausted_source_restarts_and_counts_epochs(sources):
    mixture = _mixture(sources, {"tiny": 1}, seed=0, names=["tiny", "ja"])
    texts = [text for _, text in islice(mixture, 10)]
    assert texts == ["tiny 0", "tiny 1", "tiny 2"] * 3 + ["tiny 0"]
    assert mixture.epochs == {"tiny": 3, "ja": 0}


def test_resume_yields_exactly_the_same_next_documents(sources):
    weights = {"ja": 1, "tiny": 1, "fi": 2, "zh": 1, "hf": 1}
    mixture = _mixture(sources, weights, seed=3)
    iterator = iter(mixture)
    list(islice(iterator, 50))
    state = json.loads(json.dumps(mixture.state_dict()))  # survives a JSON checkpoint
    expected = list(islice(iterator, 50))
    assert state["epochs"]["tiny"] >= 1  # the window crosses a restart
    assert {name for name, _ in expected} == set(weights)

    fresh = _mixture(sources, weights, seed=999)  # the saved generator state wins over the seed
    fresh.load_state_dict(state)
    assert list(islice(fresh, 50)) == expected
    assert fresh.epochs == mixture.epochs and fresh.drawn == mixture.drawn


def test_bad_mixtures_are_refused(sources, tmp_path):
    with pytest.raises(ValueError, match="unknown sources"):
        _mixture(sources, {"xx": 1}, names=["ja"])
    with pytest.raises(ValueError, match="not all 0"):
        _mixture(sources, {"ja": 0}, names=["ja"])
    (tmp_path / "blank.txt").write_text("\n  \n", encoding="utf-8")
    empty = MixtureStream({"blank": DocumentStream(DataSource(name="blank", paths=[str(tmp_path / "blank.txt")]))}, {}, 0)
    with pytest.raises(ValueError, match="'blank' has no documents"):
        next(iter(empty))
