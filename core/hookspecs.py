"""The hook points of encoder-recipes: the only contract between the host and plugins.

Two shapes only:

* ``encoder_recipes_register_*`` hooks return a list of things (component
  classes, recipe files); the host flattens the lists into a typed registry
  and refuses a name claimed by two plugins.
* ``firstresult`` look-ups return a single answer for a question (the word
  segmenter for a language); the first plugin that answers non-None wins.

Hooks are always called with keyword arguments. An implementation may accept
fewer arguments than its spec, so a spec can grow without breaking plugins.
``docs/hooks.md`` is tested against this module: a hook added or changed here
without its documentation fails the test suite.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:  # imported for annotations only; plugins never need these at import time
    from pathlib import Path

    from encoder_recipes.components.base import Component
    from encoder_recipes.components.segmenters import WordSegmenter
    from encoder_recipes.data.samples import SampleCorpus

PROJECT = "encoder_recipes"

hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


# --- components: one register hook per kind ---------------------------------


@hookspec
def encoder_recipes_register_tokenizers() -> list[type[Component]]:
    """Register tokenizer components (build or load the recipe's tokenizer).

    Return contract: a list of :class:`~encoder_recipes.components.base.Component`
    subclasses with ``kind = "tokenizer"``; all plugins' lists are concatenated.
    A name registered twice is an error naming both plugins.
    """


@hookspec
def encoder_recipes_register_maskings() -> list[type[Component]]:
    """Register masking strategies (which tokens become MLM targets, and how).

    Return contract: a list of ``Component`` subclasses with ``kind = "masking"``;
    all plugins' lists are concatenated.
    """


@hookspec
def encoder_recipes_register_context_schedules() -> list[type[Component]]:
    """Register context-length schedules (a stage's sequence length at each step).

    Return contract: a list of ``Component`` subclasses with ``kind = "context"``;
    all plugins' lists are concatenated.
    """


@hookspec
def encoder_recipes_register_lr_schedules() -> list[type[Component]]:
    """Register learning-rate schedules (a pure function of the training clock).

    Return contract: a list of ``Component`` subclasses with ``kind = "lr_schedule"``;
    all plugins' lists are concatenated.
    """


@hookspec
def encoder_recipes_register_evaluators() -> list[type[Component]]:
    """Register evaluators (judge a masked-LM checkpoint).

    Return contract: a list of ``Component`` subclasses with ``kind = "evaluator"``;
    all plugins' lists are concatenated.
    """


@hookspec
def encoder_recipes_register_optimizers() -> list[type[Component]]:
    """Register optimizers (build the torch optimizer from the model and the first stage's peak LR).

    Return contract: a list of ``Component`` subclasses with ``kind = "optimizer"``;
    all plugins' lists are concatenated.
    """


@hookspec
def encoder_recipes_register_mixtures() -> list[type[Component]]:
    """Register data mixtures (each source's probability of supplying the next document, per step).

    Return contract: a list of ``Component`` subclasses with ``kind = "mixture"``;
    all plugins' lists are concatenated.
    """


# --- recipes ------------------------------------------------------------------


@hookspec
def encoder_recipes_register_recipes() -> list[Path]:
    """Register recipe files that ``list``, ``show`` and ``extends:`` can name.

    Return contract: a list of paths to recipe YAML files; the recipe's
    registered name is its ``metadata.name``. All plugins' lists are
    concatenated; a name registered twice is an error naming both plugins.
    """


@hookspec
def encoder_recipes_register_sample_corpora() -> list[SampleCorpus]:
    """Register offline sample corpora: which text to fetch and convert for a language.

    Return contract: a list of :class:`encoder_recipes.data.samples.SampleCorpus`
    (name, language, Debian LibreOffice help package, optional script check
    and extra documents). All plugins' lists are concatenated; a name
    registered twice is an error naming both plugins. ``encoder-recipes data
    samples`` fetches them, and ``--scale smoke`` trains a recipe on the
    corpus registered for its language.
    """


# --- look-ups -----------------------------------------------------------------


@hookspec(firstresult=True)
def encoder_recipes_word_segmenter(language: str, name: str | None) -> WordSegmenter | None:
    """Return the word segmenter for ``language``, used by whole-word masking.

    Return contract: stops at the first non-None result. Return None for a
    language this plugin does not segment, or for a ``name`` it does not know.

    :param language: an ISO 639-1 code such as ``"ja"`` or ``"zh"``.
    :param name: a particular segmenter the recipe asks for (e.g. ``"rjieba"``);
        None for the plugin's default.
    """


@hookspec
def encoder_recipes_fill_mask_probes(language: str) -> list[dict] | None:
    """Return fill-mask probe sentences for ``language``.

    Return contract: a list of ``{"text": str, "answers": [str, ...]}`` where
    ``text`` holds one ``{mask}`` placeholder; all plugins' lists are
    concatenated. Return None for a language this plugin has no probes for.

    :param language: an ISO 639-1 code.
    """
