"""Hook implementations of the ja language plugin.

Only hooks live here; the segmenter (fugashi/MeCab) and the fill-mask probes
live beside this file.
"""

from __future__ import annotations

from pathlib import Path

from encoder_recipes.components.segmenters import WordSegmenter
from encoder_recipes.hookspecs import hookimpl
from encoder_recipes.plugins.ja.probes import probes_for
from encoder_recipes.plugins.ja.segmenter import MeCabSegmenter, mecab_segmenter
from encoder_recipes.plugins.ja import samples
from encoder_recipes.recipes import recipe_path


@hookimpl
def encoder_recipes_register_recipes() -> list[Path]:
    """The two Japanese seed recipes: llm-jp-modernbert and ModernBERT-Ja-130M."""
    return [recipe_path("ja_llmjp.yaml"), recipe_path("ja_modernbert_ja.yaml")]


@hookimpl
def encoder_recipes_word_segmenter(language: str, name: str | None) -> WordSegmenter | None:
    """MeCab (fugashi, UniDic-lite) words for "ja", by default or as ``name="mecab"``; fugashi is imported on first use.

    None for another language or another segmenter name.
    """
    return mecab_segmenter() if language == "ja" and name in (None, MeCabSegmenter.name) else None


@hookimpl
def encoder_recipes_fill_mask_probes(language: str) -> list[dict] | None:
    """The six fill-mask probes of the llm-jp-modernbert paper (Table 3) for "ja"."""
    return probes_for(language)


@hookimpl
def encoder_recipes_register_sample_corpora() -> list:
    """The 'ja' offline sample corpus (see ``samples.py`` beside this file)."""
    return [samples.CORPUS]
