"""Hook implementations of the zh language plugin.

Only hooks live here; the segmenters (jieba, rjieba) and the fill-mask probes
live beside this file.
"""

from __future__ import annotations

from pathlib import Path

from encoder_recipes.components.segmenters import WordSegmenter
from encoder_recipes.hookspecs import hookimpl
from encoder_recipes.plugins.zh.probes import probes_for
from encoder_recipes.plugins.zh.segmenter import segmenter_named
from encoder_recipes.plugins.zh import samples
from encoder_recipes.recipes import recipe_path


@hookimpl
def encoder_recipes_register_recipes() -> list[Path]:
    """The Chinese seed recipe: Chinese ModernBERT with whole-word masking."""
    return [recipe_path("zh_modernbert_wwm.yaml")]


@hookimpl
def encoder_recipes_word_segmenter(language: str, name: str | None) -> WordSegmenter | None:
    """Chinese words for "zh": jieba by default, ``name="rjieba"`` for the Rust port.

    None for another language, an unknown name, or rjieba when it is not
    installed. The libraries are imported on first use.
    """
    return segmenter_named(name) if language == "zh" else None


@hookimpl
def encoder_recipes_fill_mask_probes(language: str) -> list[dict] | None:
    """Simple factual fill-mask probes for "zh" (written for this project)."""
    return probes_for(language)


@hookimpl
def encoder_recipes_register_sample_corpora() -> list:
    """The 'zh' offline sample corpus (see ``samples.py`` beside this file)."""
    return [samples.CORPUS]
