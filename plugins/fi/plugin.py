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
    """The Finnish seed recipe: Finnish ModernBERT (stable, six-step context extension, annealing)."""
    return [recipe_path("fi_modernbert.yaml")]


@hookimpl
def encoder_recipes_word_segmenter(language: str) -> WordSegmenter | None:
    """Whitespace words for "fi" (whole-word masking then groups the tokens of each word)."""
    return WhitespaceSegmenter() if language == "fi" else None


@hookimpl
def encoder_recipes_fill_mask_probes(language: str) -> list[dict] | None:
    """Simple factual fill-mask probes for "fi" (written for this project)."""
    return probes_for(language)


@hookimpl
def encoder_recipes_register_sample_corpora() -> list:
    """The 'fi' offline sample corpus (see ``samples.py`` beside this file)."""
    return [samples.CORPUS]
