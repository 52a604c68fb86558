"""Hook implementations of the en language plugin.

An example of a plugin that brings a recipe and what it needs: the
ModernBERT-base recipe (``en-modernbert-base``), English words for
whole-word masking, and fill-mask probes. Its components (the
``stable_adamw`` optimizer, ``wsd`` with ``warmup_tokens``, a stage's
``batch_warmup``) are the engine's own, so it registers none. The English
sample corpus stays with the built-in plugin: every other sample corpus is
checked against it for untranslated paragraphs, so it must load without this one.
"""

from __future__ import annotations

from pathlib import Path

from encoder_recipes.components.segmenters import WhitespaceSegmenter, WordSegmenter
from encoder_recipes.hookspecs import hookimpl
from encoder_recipes.plugins.en.probes import probes_for
from encoder_recipes.recipes import recipe_path


@hookimpl
def encoder_recipes_register_recipes() -> list[Path]:
    """ModernBERT-base (arXiv 2412.13663): 1,024-token pretraining with batch warmup, extension to 8,192, decay."""
    return [recipe_path("en_modernbert_base.yaml")]


@hookimpl
def encoder_recipes_word_segmenter(language: str, name: str | None) -> WordSegmenter | None:
    """Whitespace words for "en", by default or as ``name="whitespace"``.

    None for another language or another segmenter name.
    """
    if language != "en" or name not in (None, WhitespaceSegmenter.name):
        return None
    return WhitespaceSegmenter()


@hookimpl
def encoder_recipes_fill_mask_probes(language: str) -> list[dict] | None:
    """Simple factual fill-mask probes for "en" (written for this project)."""
    return probes_for(language)
