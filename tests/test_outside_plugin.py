"""An outside plugin that registers one component of every kind, written only against the public
base classes, installed as a distribution (``*.dist-info`` with ``entry_points.txt``) and loaded
through its entry point, trains a step with all of them.

This is the contract a plugin author relies on: if the engine calls a component with an argument
its base class does not declare, the plugin below fails here.
"""

from __future__ import annotations

import importlib.metadata as md
import inspect
import json
import sys
import textwrap
from pathlib import Path

import pytest

from encoder_recipes.components.kinds import KINDS, Evaluator, Masking, Mixture, Optimizer, Tokenizer
from encoder_recipes.plugin_manager import load_plugins
from encoder_recipes.registry import build_registries
from encoder_recipes.training import checkpoint as ckpt
from encoder_recipes.training.metrics import read_metrics
from encoder_recipes.training.trainer import RunOptions, train
from encoder_recipes.validation import load_recipe

PLUGIN = '''
"""Every kind of component, each subclassing only the public base class of its kind."""
from pathlib import Path

from pydantic import Field

from encoder_recipes.components.base import Params
from encoder_recipes.components.kinds import (ContextSchedule, Evaluator, LRSchedule, Masking, Mixture, Optimizer,
                                              Tokenizer)
from encoder_recipes.hookspecs import hookimpl

SPECIALS = ["[CLS]", "[SEP]", "[MASK]", "[PAD]", "[UNK]"]


class Characters(Tokenizer):
    """One token per character seen in training."""
    name = "characters"

    def build{tokenizer_build}:
        from tokenizers import Tokenizer as Tok, models, pre_tokenizers, processors
        from transformers import PreTrainedTokenizerFast

        chars = sorted({c for text in texts for c in text if not c.isspace()})
        vocab = {t: i for i, t in enumerate(SPECIALS + chars)}
        tok = Tok(models.WordLevel(vocab, unk_token="[UNK]"))
        tok.pre_tokenizer = pre_tokenizers.Split("", behavior="isolated")
        tok.post_processor = processors.TemplateProcessing(
            single="[CLS] $A [SEP]", special_tokens=[("[CLS]", 0), ("[SEP]", 1)])
        return PreTrainedTokenizerFast(tokenizer_object=tok, cls_token="[CLS]", sep_token="[SEP]",
                                       mask_token="[MASK]", pad_token="[PAD]", unk_token="[UNK]")


class EveryOther(Masking):
    """Masks every other maskable token, always with [MASK]."""
    name = "every_other"

    class Params(Params):
        offset: int = Field(0, ge=0, le=1)

    def rate(self, clock):
        return 0.5

    def mask{masking_mask}:
        import torch
        positions = torch.arange(input_ids.shape[-1]).expand_as(input_ids)
        chosen = (positions % 2 == self.params.offset) & ~special_tokens_mask
        if special_ids is not None:
            chosen &= ~torch.isin(input_ids, special_ids)
        labels = torch.where(chosen, input_ids, torch.full_like(input_ids, -100))
        return torch.where(chosen, torch.full_like(input_ids, mask_token_id), input_ids), labels


class Growing(ContextSchedule):
    """Half the length for the first half of the stage, then the whole length."""
    name = "growing"

    class Params(Params):
        seq_len: int = Field(gt=1)

    def seq_len(self, clock):
        return self.params.seq_len // 2 if clock.stage_step * 2 < clock.stage_steps else self.params.seq_len

    def lengths(self):
        return [self.params.seq_len // 2, self.params.seq_len]


class Halving(LRSchedule):
    """The learning rate halves at every step."""
    name = "halving"

    def multiplier(self, clock):
        t, _ = clock.position(self.params.scope)
        return 0.5 ** t


class Width(Evaluator):
    """Reports the model's width."""
    name = "width"

    def evaluate{evaluator_evaluate}:
        return {"hidden_size": model.config.hidden_size, "vocab": len(tokenizer)}


class Momentum(Optimizer):
    """SGD with momentum, decaying every parameter alike."""
    name = "momentum"

    class Params(Params):
        momentum: float = Field(0.9, ge=0, lt=1)

    def build{optimizer_build}:
        import torch
        return torch.optim.SGD(model.parameters(), lr=lr, momentum=self.params.momentum)


class Favourite(Mixture):
    """Every document from one source."""
    name = "favourite"

    class Params(Params):
        source: str

    def probabilities{mixture_probabilities}:
        return {name: float(name == self.params.source) for name in sources}

    def describe(self, clock):
        return {"favourite_step": clock.step}


@hookimpl
def encoder_recipes_register_tokenizers():
    return [Characters]

@hookimpl
def encoder_recipes_register_maskings():
    return [EveryOther]

@hookimpl
def encoder_recipes_register_context_schedules():
    return [Growing]

@hookimpl
def encoder_recipes_register_lr_schedules():
    return [Halving]

@hookimpl
def encoder_recipes_register_evaluators():
    return [Width]

@hookimpl
def encoder_recipes_register_optimizers():
    return [Momentum]

@hookimpl
def encoder_recipes_register_mixtures():
    return [Favourite]

@hookimpl
def encoder_recipes_register_recipes():
    return [Path(__file__).with_name("tplug_everykind.yaml")]
'''

RECIPE = """\
metadata: {{name: every-kind, language: xx, description: every component from an outside plugin}}
model: {{hidden_size: 32, intermediate_size: 48, num_hidden_layers: 2, num_attention_heads: 2,
        max_position_embeddings: 64, local_attention: 16}}
tokenizer: {{name: characters}}
data: {{sources: [{{name: text, paths: ["{corpus}"]}}, {{name: other, paths: ["{other}"]}}], validation_fraction: 0.1}}
evaluators: [{{name: width}}]
optimizer: {{name: momentum, momentum: 0.5, grad_clip: null}}
stages:
  - name: only
    context: {{name: growing, seq_len: 32}}
    steps: 2
    batch_size: 4
    lr: 1.0e-3
    lr_schedule: {{name: halving}}
    masking: {{name: every_other, offset: 1}}
    mixture: {{name: favourite, source: text}}
scales: {{smoke: {{sample_data: false}}}}  # no plugin registers a sample corpus for "xx": keep the recipe's own text
"""


def _plugin_source() -> str:
    """The plugin, its methods declared exactly as the base classes declare them.

    An author copies the signature from the base class; if the engine passes
    an argument the base class does not declare, this plugin breaks.
    """
    source = textwrap.dedent(PLUGIN)
    for base, method in ((Tokenizer, "build"), (Masking, "mask"), (Evaluator, "evaluate"), (Optimizer, "build"),
                         (Mixture, "probabilities")):
        signature = str(inspect.signature(getattr(base, method)))
        source = source.replace(f"{{{base.kind}_{method}}}", signature)
    return source


@pytest.fixture
def installed(tmp_path, monkeypatch):
    """The plugin installed as distribution ``tplug-everykind`` in a site folder on ``sys.path``."""
    site = tmp_path / "site"
    site.mkdir()
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n".join(f"line {i} of a small corpus with some words in it" for i in range(200)),
                      encoding="utf-8")
    (site / "tplug_everykind.py").write_text(_plugin_source(), encoding="utf-8")
    other = tmp_path / "other.txt"
    other.write_text("\n".join(f"OTHER {i} NEVER DRAWN" for i in range(50)), encoding="utf-8")
    (site / "tplug_everykind.yaml").write_text(RECIPE.format(corpus=corpus, other=other), encoding="utf-8")
    info = site / "tplug_everykind-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: tplug-everykind\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[encoder_recipes]\neverykind = tplug_everykind\n")
    monkeypatch.syspath_prepend(str(site))
    yield site
    sys.modules.pop("tplug_everykind", None)


def test_the_plugin_is_found_through_its_entry_point(installed):
    (ep,) = [ep for ep in md.entry_points(group="encoder_recipes") if ep.name == "everykind"]
    registries = build_registries(load_plugins(strict=True))
    assert registries.loaded.plugins["everykind"].distribution == "tplug-everykind"
    contributed = registries.contributions("everykind")
    assert set(contributed) == {*KINDS, "recipe"}, "the plugin should register one component of every kind"


def test_an_outside_component_of_every_kind_trains_a_step(installed, tmp_path):
    registries = build_registries(load_plugins(strict=True))
    resolved = load_recipe("every-kind", registries=registries, overrides=["log_every=1"])
    out = tmp_path / "run"
    train(resolved, registries, RunOptions(output=out, device="cpu", progress=False))

    steps = [r for r in read_metrics(out) if "loss" in r]
    assert [r["step"] for r in steps] == [1, 2]
    assert [r["lr"] for r in steps] == [1.0e-3, 0.5e-3]  # halving
    assert [r["seq_len"] for r in steps] == [16, 32]  # growing
    assert [r["mask_rate"] for r in steps] == [0.5, 0.5]  # every_other
    assert [r["mixture/favourite_step"] for r in steps] == [0, 1]  # favourite: its own numbers, by step
    assert all(r["mixture/p/text"] == 1.0 and r["mixture/p/other"] == 0.0 for r in steps)
    assert steps[0]["mixture/docs/text"] == 1.0 and all(r["mixture/docs/other"] == 0.0 for r in steps)
    assert all(r["loss"] > 0 for r in steps)
    (evaluation,) = [r for r in read_metrics(out) if r.get("event") == "eval"]
    assert evaluation["width/hidden_size"] == 32
    vocab = json.loads((out / "final" / "tokenizer.json").read_text(encoding="utf-8"))["model"]["vocab"]
    assert "[MASK]" in vocab and "w" in vocab  # the characters tokenizer built the run's tokenizer
    (saved,) = ckpt.list_checkpoints(out / "checkpoints")
    _, optimizer_state, _ = ckpt.load_checkpoint(saved)
    assert [g["momentum"] for g in optimizer_state["param_groups"]] == [0.5]  # the momentum optimizer stepped


def test_at_smoke_scale_an_outside_component_answers_for_itself(installed):
    """The base classes' defaults keep a plugin's components as they are; the engine reads none of their params."""
    registries = build_registries(load_plugins(strict=True))
    recipe = load_recipe("every-kind", scale="smoke", registries=registries).recipe
    assert recipe.tokenizer.name == "characters"  # not swapped for a bpe because it has no vocab_size
    stage = recipe.stages[0]
    assert (stage.context.name, stage.context.params) == ("growing", {"seq_len": 32})
    assert (stage.masking.name, stage.masking.params) == ("every_other", {"offset": 1})
    assert (stage.mixture.name, stage.mixture.params) == ("favourite", {"source": "text"})
