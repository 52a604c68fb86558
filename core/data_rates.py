"""What one core of the data path delivers, as ``bench`` measured it: the figures ``plan --gpus`` holds a run against.

Each figure is copied from one row of ``bench/RESULTS.md`` and names that row;
``tests/test_plan_hardware.py`` fails when the row no longer carries the
figure, so the two cannot drift apart. Re-measure with ``python -m bench
--only store,pipeline`` and update both.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Rate:
    tokens_per_s: float  # per core (one process, one thread)
    what: str  # the row's label in bench/RESULTS.md
    source: str  # the section of bench/RESULTS.md


_PIPELINE = "bench/RESULTS.md §2"
_STORE = "bench/RESULTS.md §7"

#: on-the-fly pipeline (read, tokenise, segment, pack, mask), by the whole-word segmenter (mecab is fugashi); ``None``: plain MLM
ON_THE_FLY: dict[str | None, Rate] = {
    "mecab": Rate(213_037, "ja, fugashi whole-word", _PIPELINE),
    "jieba": Rate(140_445, "zh, jieba whole-word", _PIPELINE),
    "rjieba": Rate(477_359, "zh, rjieba whole-word", _PIPELINE),
    # the only plain-MLM figure is Finnish (7.67 characters a token); it is the tokenizer's rate, so a
    # language with fewer characters a token makes more tokens a second at the same character rate
    None: Rate(805_862, "fi, plain MLM", _PIPELINE),
}

#: reading a prepared store: materialise rows, pack, whole-word mask per row (mask groups of 1), pad; by packing
STORE_READ: dict[str, Rate] = {
    "none": Rate(160_421, "read none, mask groups of 1", _STORE),
    "naive": Rate(1_292_384, "read naive, mask groups of 1", _STORE),
    "best_fit": Rate(1_422_757, "read best_fit, mask groups of 1", _STORE),
}


#: the same with ``data.store_mask_group: 16`` (16 rows masked by one call)
STORE_READ_GROUPED: dict[str, Rate] = {
    "none": Rate(675_069, "read none, mask groups of 16", _STORE),
    "naive": Rate(2_853_218, "read naive, mask groups of 16", _STORE),
    "best_fit": Rate(4_897_576, "read best_fit, mask groups of 16", _STORE),
}


def store_read(packing: str, mask_group: int) -> Rate:
    """The measured reading rate for a packing; groups of 16 rows or more get the 16-row figure, others the 1-row one."""
    return (STORE_READ_GROUPED if mask_group >= 16 else STORE_READ)[packing]


def on_the_fly(segmenter: str | None) -> Rate:
    """The measured on-the-fly rate for a stage masking with ``segmenter`` (``None``: plain MLM)."""
    return ON_THE_FLY.get(segmenter, ON_THE_FLY[None])
