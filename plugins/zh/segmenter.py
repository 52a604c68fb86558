"""Chinese word segmentation with jieba, for whole-word masking.

Chinese has no spaces between words, so Hugging Face's gap-based word
grouping would make a whole sentence one "word"; jieba supplies the word
boundaries (the Chinese ModernBERT recipe masks whole words). jieba is
imported only when a segmenter is first used, so the ``zh`` plugin loads
without the ``zh`` extra installed.
"""

from __future__ import annotations

import logging
from functools import cache
from typing import Any

from encoder_recipes.components.segmenters import WordSegmenter

INSTALL_HINT = "pip install 'encoder-recipes[zh]'"


class JiebaSegmenter(WordSegmenter):
    """Words as jieba tokens (default mode, HMM for unknown words), whitespace dropped."""

    name = "jieba"

    def __init__(self) -> None:
        self._tokenizer: Any = None

    @property
    def tokenizer(self) -> Any:
        """A private ``jieba.Tokenizer`` (not jieba's global one), created on first use."""
        if self._tokenizer is None:
            try:
                import jieba
            except ImportError as exc:
                raise ImportError(
                    f"Chinese word segmentation needs jieba; install it with: {INSTALL_HINT}"
                ) from exc
            # jieba logs "Building prefix dict ..." at DEBUG/INFO on first use;
            # that is noise in a training log.
            jieba.setLogLevel(logging.WARNING)
            self._tokenizer = jieba.Tokenizer()
        return self._tokenizer

    def spans(self, text: str) -> list[tuple[int, int]]:
        # jieba.tokenize already gives character offsets; it also returns runs of
        # whitespace as "words", which are not words to mask.
        return [(start, end) for word, start, end in self.tokenizer.tokenize(text) if word.strip()]

    # jieba's tokenizer holds a lock and cannot be pickled; rebuild it lazily
    # in data-loader workers.
    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_tokenizer": None}


@cache
def jieba_segmenter() -> JiebaSegmenter:
    """The process-wide Chinese segmenter (the dictionary is loaded once)."""
    return JiebaSegmenter()
