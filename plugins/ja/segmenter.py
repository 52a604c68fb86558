"""Japanese word segmentation with MeCab (through fugashi) and the UniDic-lite dictionary.

Whole-word masking needs real word boundaries: Japanese is written without
spaces, so Hugging Face's gap-based word grouping would treat a whole
sentence as one "word". fugashi is imported only when a segmenter is first
used, so the ``ja`` plugin (its recipes and probes) loads without the ``ja``
extra installed.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from encoder_recipes.components.segmenters import WordSegmenter

INSTALL_HINT = "pip install 'encoder-recipes[ja]'"


class MeCabSegmenter(WordSegmenter):
    """Words as MeCab (UniDic-lite) morphemes, given as character spans of the input."""

    name = "mecab"

    def __init__(self) -> None:
        self._tagger: Any = None

    @property
    def tagger(self) -> Any:
        """The fugashi tagger, created on first use (loading the dictionary takes a moment)."""
        if self._tagger is None:
            try:
                import fugashi
                import unidic_lite  # noqa: F401  (fugashi finds it on its own; imported to fail early and clearly)
            except ImportError as exc:
                raise ImportError(
                    f"Japanese word segmentation needs fugashi and unidic-lite ({exc.name} is missing); "
                    f"install them with: {INSTALL_HINT}"
                ) from exc
            self._tagger = fugashi.Tagger()
        return self._tagger

    def spans(self, text: str) -> list[tuple[int, int]]:
        spans: list[tuple[int, int]] = []
        pos = 0
        for word in self.tagger(text):
            surface = word.surface
            # MeCab returns some whitespace (e.g. the full-width space U+3000) as
            # a morpheme of its own; whitespace is not a word to mask.
            if not surface.strip():
                continue
            # MeCab drops the whitespace between morphemes (fugashi reports it as
            # ``white_space``); searching forward from the last end keeps the spans
            # exact whatever was skipped.
            start = text.find(surface, pos)
            if start < 0:  # never seen in practice; skip rather than emit a wrong span
                continue
            end = start + len(surface)
            spans.append((start, end))
            pos = end
        return spans

    # A MeCab tagger cannot be pickled; data loaders that fork or spawn workers
    # pickle the segmenter, so the tagger is rebuilt lazily on the other side.
    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_tagger": None}


@cache
def mecab_segmenter() -> MeCabSegmenter:
    """The process-wide Japanese segmenter (one tagger, one dictionary load)."""
    return MeCabSegmenter()
