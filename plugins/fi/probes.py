"""Finnish fill-mask probes.

Written for this project, not taken from a seed: the Finnish ModernBERT
paper (seed 003) reports no fill-mask test. Each is a short, unambiguous
general-knowledge sentence whose answer is a single common word or number.
"""

from __future__ import annotations

import copy

FILL_MASK_PROBES: list[dict] = [
    {"text": "Suomen pääkaupunki on {mask}.", "answers": ["Helsinki"]},
    {"text": "Ruotsin pääkaupunki on {mask}.", "answers": ["Tukholma"]},
    {"text": "Vuodessa on {mask} kuukautta.", "answers": ["12", "kaksitoista"]},
    {"text": "Viikossa on {mask} päivää.", "answers": ["7", "seitsemän"]},
    {"text": "Suomi itsenäistyi vuonna {mask}.", "answers": ["1917"]},
    {"text": "Suomen kansalliseepos on nimeltään {mask}.", "answers": ["Kalevala"]},
]


def probes_for(language: str) -> list[dict] | None:
    """A fresh copy of the probes for ``language`` ("fi"), or None for any other language."""
    return copy.deepcopy(FILL_MASK_PROBES) if language == "fi" else None
