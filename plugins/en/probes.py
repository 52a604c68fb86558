"""English fill-mask probes.

Written for this project, not taken from a source: the ModernBERT paper
(arXiv 2412.13663) reports no fill-mask test. Each is a short, unambiguous
general-knowledge sentence whose answer is a single common word or number,
like the Finnish and Chinese plugins' probes.
"""

from __future__ import annotations

import copy

FILL_MASK_PROBES: list[dict] = [
    {"text": "The capital of France is {mask}.", "answers": ["Paris"]},
    {"text": "There are {mask} days in a week.", "answers": ["7", "seven"]},
    {"text": "A year has {mask} months.", "answers": ["12", "twelve"]},
    {"text": "Water freezes at {mask} degrees Celsius.", "answers": ["0", "zero"]},
    {"text": "The largest ocean on Earth is the {mask} Ocean.", "answers": ["Pacific"]},
    {"text": "The sun rises in the {mask}.", "answers": ["east"]},
]


def probes_for(language: str) -> list[dict] | None:
    """A fresh copy of the probes for ``language`` ("en"), or None for any other language."""
    return copy.deepcopy(FILL_MASK_PROBES) if language == "en" else None
