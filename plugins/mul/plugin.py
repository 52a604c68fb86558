"""Hook implementations of the mul plugin: recipes that belong to no one language.

``mul`` is the ISO 639-2 code for "multiple languages". The plugin brings
mmBERT-base; the temperature mixture it trains with is a built-in component,
since any recipe with several sources may use it. The recipe files live in
``recipes/`` beside this file.
"""

from __future__ import annotations

from pathlib import Path

from encoder_recipes.hookspecs import hookimpl

RECIPES = Path(__file__).with_name("recipes")


@hookimpl
def encoder_recipes_register_recipes() -> list[Path]:
    """mmBERT-base: three phases of annealed language learning (τ 0.7 -> 0.5 -> 0.3, 60 -> 110 -> 1,833 languages)."""
    return [RECIPES / "mmbert_base.yaml"]
