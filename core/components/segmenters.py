"""Word segmenters: where the words are in a text, for whole-word masking.

Hugging Face's whole-word mode finds words from gaps between tokens, so an
unspaced Japanese or Chinese sentence becomes one "word". A language plugin
answers ``encoder_recipes_word_segmenter(language=...)`` with a real
segmenter (fugashi/MeCab for ja, jieba for zh).
"""

from __future__ import annotations

from abc import ABC, abstractmethod


class WordSegmenter(ABC):
    """Splits text into words, given as character spans."""

    name: str = ""

    @abstractmethod
    def spans(self, text: str) -> list[tuple[int, int]]:
        """Character ``(start, end)`` of every word, in order, non-overlapping."""

    def words(self, text: str) -> list[str]:
        return [text[a:b] for a, b in self.spans(text)]


class WhitespaceSegmenter(WordSegmenter):
    """Words are runs of non-space characters (spaced languages such as Finnish or English)."""

    name = "whitespace"

    def spans(self, text: str) -> list[tuple[int, int]]:
        import re

        return [m.span() for m in re.finditer(r"\S+", text)]
