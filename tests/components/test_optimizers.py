"""The built-in optimizers on tiny real ModernBERTs: norms and biases take no weight decay, in both
the LayerNorm model and the RMSNorm variant; and the recipe's ``optimizer:`` slot names them."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from encoder_recipes.modeling.build import build_model
from encoder_recipes.recipe_files import RecipeError
from encoder_recipes.schema import ModelConfig
from encoder_recipes.validation import load_recipe

VOCAB = 64
WEIGHT_DECAY = 0.1  # large, so one step shows it


def tiny(norm: str) -> nn.Module:
    """A 2-layer ModernBERT masked LM as the trainer builds it, with every bias it can have."""
    config = ModelConfig(hidden_size=32, intermediate_size=48, num_hidden_layers=2, num_attention_heads=2,
                         local_attention=4, max_position_embeddings=64, norm=norm,
                         norm_bias=norm == "layernorm", attention_bias=True, mlp_bias=True)
    return build_model(config, vocab_size=VOCAB, special_ids={"pad": 0, "cls": 1, "sep": 2}, seed=0)


def exempt_by_module(model: nn.Module) -> set[str]:
    """Names of the parameters that must not decay, found from the modules' types (not param_groups' rule)."""
    norm_types = (nn.LayerNorm, nn.RMSNorm)
    names = set()
    for module_name, module in model.named_modules():
        for local, _ in module.named_parameters(recurse=False):
            if isinstance(module, norm_types) or local == "bias":
                names.add(f"{module_name}.{local}")
    return names


# each: (name, params); optimi warns that 0.1 is high for fully decoupled decay, which is the point here
OPTIMIZERS = [
    ("adamw", {"weight_decay": WEIGHT_DECAY}),
    ("stable_adamw", {"weight_decay": WEIGHT_DECAY}),
    ("stable_adamw", {"weight_decay": WEIGHT_DECAY, "decouple_lr": True}),
]


@pytest.mark.filterwarnings("ignore:You are using weight_decay")
@pytest.mark.parametrize("norm", ["layernorm", "rmsnorm"])
@pytest.mark.parametrize(("name", "params"), OPTIMIZERS, ids=["adamw", "stable_adamw", "stable_adamw-decouple_lr"])
def test_norms_and_biases_are_not_decayed(registries, norm, name, params):
    model = tiny(norm)
    exempt = exempt_by_module(model)
    norm_weights = {n for n in exempt if n.endswith("norm.weight")}
    assert norm_weights and any(n.endswith(".bias") for n in exempt)  # the model has both
    assert ("model.embeddings.norm.bias" in exempt) == (norm == "layernorm")

    cls = registries.component("optimizer", name)
    optimizer = cls(**params).build(model, lr=0.5)
    assert isinstance(optimizer, torch.optim.Optimizer)
    by_id = {id(p): n for n, p in model.named_parameters()}
    decay_of = {by_id[id(p)]: group["weight_decay"] for group in optimizer.param_groups for p in group["params"]}
    assert decay_of.keys() == {n for n, _ in model.named_parameters()}, "every parameter, once"
    assert {n for n, wd in decay_of.items() if wd == 0.0} == exempt
    assert {wd for n, wd in decay_of.items() if n not in exempt} == {WEIGHT_DECAY}

    # with zero gradients the adaptive update is 0 and only the decay moves a weight
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    for p in model.parameters():
        p.grad = torch.zeros_like(p)
    optimizer.step()
    for n, p in model.named_parameters():
        if n in exempt:
            assert torch.equal(p.detach(), before[n]), f"{n} is a norm weight or bias and was decayed"
        elif before[n].abs().sum() > 0:
            assert not torch.equal(p.detach(), before[n]), f"{n} was not decayed"


def test_adamw_defaults_are_torchs(registries):
    cls = registries.component("optimizer", "adamw")
    params = cls.Params()
    assert (params.betas, params.eps, params.weight_decay) == ((0.9, 0.999), 1e-8, 0.01)
    optimizer = cls(params).build(tiny("layernorm"), lr=1e-3)
    assert type(optimizer) is torch.optim.AdamW
    assert optimizer.defaults["betas"] == (0.9, 0.999) and optimizer.defaults["eps"] == 1e-8
    assert not optimizer.defaults["fused"]  # fused only on CUDA


def test_stable_adamw_is_optimis_with_its_defaults(registries):
    from optimi import StableAdamW

    cls = registries.component("optimizer", "stable_adamw")
    params = cls.Params()
    assert (params.betas, params.eps, params.weight_decay, params.decouple_lr) == ((0.9, 0.99), 1e-6, 1e-2, False)
    optimizer = cls(betas=(0.9, 0.98), eps=1e-6, weight_decay=1e-5, decouple_lr=True).build(tiny("rmsnorm"), lr=8e-4)
    assert type(optimizer) is StableAdamW
    assert (optimizer.defaults["beta1"], optimizer.defaults["beta2"]) == (0.9, 0.98)
    # decouple_lr keeps the LR it was built with as max_lr: the decay is weight_decay × lr / max_lr
    assert optimizer.defaults["decouple_lr"] and optimizer.defaults["max_lr"] == 8e-4


RECIPE = """\
metadata: {{name: tiny-stable, language: en}}
model: {{hidden_size: 64, intermediate_size: 96, num_hidden_layers: 2, num_attention_heads: 2,
        max_position_embeddings: 256, local_attention: 32}}
tokenizer: {{name: bpe, vocab_size: 512}}
data: {{sources: [{{name: web, sample: en}}]}}
{optimizer}
stages:
  - {{name: only, context: {{name: fixed, seq_len: 128}}, steps: 100, batch_size: 8, lr: 1.0e-3,
     masking: {{name: mlm, rate: 0.3}}}}
scales:
  smoke: {{vocab_size: 512, model: {{hidden_size: 32, intermediate_size: 48, num_hidden_layers: 2,
                                     num_attention_heads: 2}}}}
"""


def write(tmp_path, optimizer: str):
    path = tmp_path / "recipe.yaml"
    path.write_text(RECIPE.format(optimizer=optimizer), encoding="utf-8")
    return path


def test_a_recipe_with_stable_adamw_validates_and_trains_two_steps_at_smoke_scale(tmp_path, smoke_run):
    path = write(tmp_path, "optimizer: {name: stable_adamw, betas: [0.9, 0.98], eps: 1.0e-6, weight_decay: 1.0e-5,\n"
                           "            decouple_lr: true, grad_clip: null}")
    run = smoke_run(path, max_steps=2)

    from encoder_recipes.training import checkpoint as ckpt
    from encoder_recipes.training.metrics import read_metrics

    steps = [r for r in read_metrics(run) if "loss" in r]
    assert [r["step"] for r in steps] == [1, 2] and all(r["loss"] > 0 for r in steps)
    (saved,) = ckpt.list_checkpoints(run / "checkpoints")
    _, optimizer_state, _ = ckpt.load_checkpoint(saved)
    groups = optimizer_state["param_groups"]
    assert [g["weight_decay"] for g in groups] == [1e-5, 0.0]
    assert all(g["decouple_lr"] and (g["beta1"], g["beta2"]) == (0.9, 0.98) for g in groups)  # optimi's keys
    resolved = yaml_of(run)
    assert resolved["optimizer"] == {"name": "stable_adamw", "grad_clip": None, "betas": [0.9, 0.98],
                                     "eps": 1e-6, "weight_decay": 1e-5, "decouple_lr": True}


def yaml_of(run):
    import yaml

    return yaml.safe_load((run / "resolved.yaml").read_text(encoding="utf-8"))


def test_an_optimizer_without_a_name_is_adamw_with_the_schemas_defaults(tmp_path, registries):
    recipe = load_recipe(str(write(tmp_path, "optimizer: {weight_decay: 1.0e-5}")), registries=registries).recipe
    assert (recipe.optimizer.name, recipe.optimizer.grad_clip) == ("adamw", 1.0)
    assert recipe.optimizer.params == {"betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 1e-5}
    omitted = load_recipe(str(write(tmp_path, "")), registries=registries).recipe
    assert omitted.optimizer.model_dump() == {"name": "adamw", "grad_clip": 1.0, "betas": (0.9, 0.999),
                                              "eps": 1e-8, "weight_decay": 0.01}


def test_an_unknown_optimizer_lists_the_known_ones(tmp_path, registries):
    path = write(tmp_path, "optimizer:\n  name: stable_adam\n  grad_clip: null")
    with pytest.raises(RecipeError) as caught:
        load_recipe(str(path), registries=registries)
    (issue,) = caught.value.issues
    assert (issue.line, issue.field) == (7, "optimizer.name")
    assert issue.message == ("unknown optimizer 'stable_adam' (did you mean 'stable_adamw'?); "
                             "known: adamw, stable_adamw")


def test_a_misspelt_optimizer_key_is_named_beside_the_keys_the_slot_takes(tmp_path, registries):
    path = write(tmp_path, "optimizer: {name: stable_adamw, grad_clipp: 1.0}")
    with pytest.raises(RecipeError) as caught:
        load_recipe(str(path), registries=registries)
    (issue,) = caught.value.issues
    assert issue.field == "optimizer.grad_clipp"
    assert "did you mean 'grad_clip'?" in issue.message
    assert "known: betas, decouple_lr, eps, grad_clip, weight_decay" in issue.message
