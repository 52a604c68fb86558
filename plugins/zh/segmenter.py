"""Chinese word segmentation for whole-word masking: jieba, or rjieba (jieba in Rust).

Chinese has no spaces between words, so Hugging Face's gap-based word
grouping would make a whole sentence one "word"; jieba supplies the word
boundaries (the Chinese ModernBERT recipe masks whole words). Both libraries
are imported only when a segmenter is first used, so the ``zh`` plugin loads
without the ``zh`` extra installed.

Two segmenters, one dictionary and algorithm (jieba's prefix-dictionary DAG
with an HMM for unknown words):

* ``jieba`` (the default) — the reference Python implementation. Its DAG
  search runs in Python and dominates a whole-word data pipeline.
* ``rjieba`` — a binding of jieba-rs, several times faster
  (``bench/RESULTS.md`` has this machine's figures). It gives the same words
  on Chinese text; it differs only on runs of Latin letters and digits joined
  by ``.``, ``_`` or ``-`` (``com.sun.star``, ``UTF-8``, ``serial_number``),
  which it keeps as one word where jieba splits them at the punctuation
  (``tests/plugins/test_rjieba.py`` measures the agreement on the sample
  corpus). A recipe asks for it by name:
  ``masking: {name: whole_word, segmenter: rjieba}``.
"""

from __future__ import annotations

import importlib.util
import logging
from collections.abc import Callable
from functools import cache
from typing import Any

from encoder_recipes.components.segmenters import WordSegmenter

INSTALL_HINT = "pip install 'encoder-recipes[zh]'"

__all__ = ["JiebaSegmenter", "RjiebaSegmenter", "jieba_segmenter", "rjieba_segmenter", "segmenter_named"]


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


class RjiebaSegmenter(WordSegmenter):
    """Words as rjieba (jieba-rs) tokens: jieba's default mode with HMM, in Rust; whitespace dropped."""

    name = "rjieba"

    def __init__(self) -> None:
        self._jieba: Any = None

    @property
    def jieba(self) -> Any:
        """A private ``rjieba.Jieba`` with jieba's default dictionary, created on first use."""
        if self._jieba is None:
            try:
                import rjieba
            except ImportError as exc:
                raise ImportError(
                    f"the rjieba word segmenter needs the rjieba package; install it with: {INSTALL_HINT}"
                ) from exc
            self._jieba = rjieba.Jieba()
        return self._jieba

    def spans(self, text: str) -> list[tuple[int, int]]:
        # Offsets are in characters (code points), as Python slices them; like
        # jieba, whitespace comes back as "words" of its own and is dropped.
        return [(start, end) for word, start, end in self.jieba.tokenize(text) if word.strip()]

    # The Rust object cannot be pickled; the data worker rebuilds it on first use.
    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_jieba": None}


@cache
def jieba_segmenter() -> JiebaSegmenter:
    """The process-wide jieba segmenter (the dictionary is loaded once)."""
    return JiebaSegmenter()


@cache
def rjieba_segmenter() -> RjiebaSegmenter:
    """The process-wide rjieba segmenter (the dictionary is loaded once)."""
    return RjiebaSegmenter()


def rjieba_installed() -> bool:
    """Whether the rjieba package can be imported (found without importing it)."""
    return importlib.util.find_spec("rjieba") is not None


#: The segmenters by name; the first is the default.
_FACTORIES: dict[str, Callable[[], WordSegmenter]] = {"jieba": jieba_segmenter, "rjieba": rjieba_segmenter}


def segmenter_named(name: str | None) -> WordSegmenter | None:
    """The Chinese segmenter called ``name`` (None: jieba, the default).

    None for a name this plugin does not know, and for ``rjieba`` when the
    package is not installed: recipe validation then reports that no plugin
    provides the segmenter, before any work starts. (A missing jieba, the
    default, is reported with the install command on first use instead.)
    """
    key = name or "jieba"
    factory = _FACTORIES.get(key)
    if factory is None or (key == "rjieba" and not rjieba_installed()):
        return None
    return factory()
