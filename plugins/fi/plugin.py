"""Hook implementations of the fi language plugin.

Finnish is written with spaces between words, so whitespace runs are its
words; the fill-mask probes live beside this file.
"""

from __future__ import annotations

from pathlib import Path

from encoder_recipes.components.segmenters import WhitespaceSegmenter, WordSegmenter
from encoder_recipes.hookspecs import hookimpl
from encoder_recipes.plugins.fi.probes import probes_for
from encoder_recipes.plugins.fi import samples
from encoder_recipes.recipes import recipe_path


@hookimpl
def encoder_recipes_register_recipes() -> list[Path]:
    """The Finnish seed recipes: Finnish ModernBERT-large and -large-short (stable, six-step context extension, annealing)."""
    return [recipe_path("fi_modernbert.yaml"), recipe_path("fi_modernbert_large_short.yaml")]


@hookimpl
def encoder_recipes_word_segmenter(language: str, name: str | None) -> WordSegmenter | None:
    """Whitespace words for "fi", by default or as ``name="whitespace"`` (whole-word masking then groups
    the tokens of each word).

    None for another language or another segmenter name.
    """
    if language != "fi" or name not in (None, WhitespaceSegmenter.name):
        return None
    return WhitespaceSegmenter()


@hookimpl
def encoder_recipes_fill_mask_probes(language: str) -> list[dict] | None:
    """Simple factual fill-mask probes for "fi" (written for this project)."""
    return probes_for(language)


@hookimpl
def encoder_recipes_register_sample_corpora() -> list:
    """The 'fi' offline sample corpus (see ``samples.py`` beside this file)."""
    return [samples.CORPUS]
