"""Weight-decay groups by parameter role, on real ModernBERTs, and StableAdamW (torch-optimi) stepping with them."""

from __future__ import annotations

import pytest
import torch
from optimi import StableAdamW
from torch import nn
from transformers import ModernBertConfig, ModernBertForMaskedLM

from encoder_recipes.components.param_groups import is_norm_module, split_decay, weight_decay_groups
from encoder_recipes.modeling.build import build_model
from encoder_recipes.schema import ModelConfig

VOCAB = 64


def tiny_modernbert(**overrides) -> ModernBertForMaskedLM:
    config = dict(vocab_size=VOCAB, hidden_size=32, intermediate_size=48, num_hidden_layers=3,
                  num_attention_heads=2, local_attention=4, global_attn_every_n_layers=2,
                  max_position_embeddings=64, pad_token_id=0, bos_token_id=1, eos_token_id=2,
                  cls_token_id=1, sep_token_id=2)
    torch.manual_seed(0)
    return ModernBertForMaskedLM(ModernBertConfig(**{**config, **overrides}))


def modernbert_rule(model: nn.Module) -> tuple[list[str], list[str]]:
    """ModernBERT's own rule (main.py param_groups_weight_decay, from timm): 1-D or '.bias' is exempt."""
    decayed, exempt = [], []
    for name, p in model.named_parameters():
        (exempt if p.ndim <= 1 or name.endswith(".bias") else decayed).append(name)
    return decayed, exempt


@pytest.mark.parametrize("biases", [False, True])
def test_modernbert_groups_match_modernberts_rule(biases):
    model = tiny_modernbert(norm_bias=biases, attention_bias=biases, mlp_bias=biases)
    decayed, exempt = split_decay(model)
    assert (decayed, exempt) == modernbert_rule(model)
    # the norms ModernBERT names without "LayerNorm" or "layer_norm" are all exempt
    for name in ("model.embeddings.norm.weight", "model.layers.1.attn_norm.weight",
                 "model.layers.0.mlp_norm.weight", "model.final_norm.weight", "head.norm.weight", "decoder.bias"):
        assert name in exempt
    assert "model.embeddings.tok_embeddings.weight" in decayed  # tied with the decoder, placed once
    assert "decoder.weight" not in decayed + exempt
    assert any(n.endswith("Wqkv.bias") for n in exempt) == biases


def test_rmsnorm_variant_norms_are_exempt():
    model = build_model(ModelConfig(hidden_size=32, intermediate_size=48, num_hidden_layers=2,
                                    num_attention_heads=2, local_attention=4, max_position_embeddings=64,
                                    norm="rmsnorm"),
                        vocab_size=VOCAB, special_ids={"pad": 0, "cls": 1, "sep": 2}, seed=0)
    norms = {f"{m}.weight" for m, mod in model.named_modules() if isinstance(mod, nn.RMSNorm)}
    assert norms
    decayed, exempt = split_decay(model)
    assert norms <= set(exempt)
    assert not norms & set(decayed)


class OwnRMSNorm(nn.Module):
    """A norm a model defines itself, as transformers' LlamaRMSNorm does (not a torch norm subclass)."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(width))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.weight * x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-6)


class Gate(nn.Module):
    """A learned 1-D scale that is neither a norm nor a bias: decayed, though a shape rule would exempt it."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.ones(width))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.scale * x


def test_roles_not_names_or_shapes():
    model = nn.Sequential()
    model.add_module("proj", nn.Linear(4, 4))
    model.add_module("odd_name", OwnRMSNorm(4))  # neither "norm" nor "LayerNorm" in its name
    model.add_module("gate", Gate(4))
    model.add_module("frozen", nn.Linear(4, 4, bias=False))
    model.frozen.weight.requires_grad_(False)
    decayed, exempt = split_decay(model)
    assert decayed == ["proj.weight", "gate.scale"]
    assert exempt == ["proj.bias", "odd_name.weight"]
    assert is_norm_module(OwnRMSNorm(2)) and is_norm_module(nn.BatchNorm1d(2)) and not is_norm_module(Gate(2))


def test_groups_hold_the_parameters_in_a_stable_order():
    model = tiny_modernbert()
    groups = weight_decay_groups(model, 1e-5)
    assert [g["weight_decay"] for g in groups] == [1e-5, 0.0]
    by_id = {id(p): n for n, p in model.named_parameters()}
    assert ([by_id[id(p)] for p in groups[0]["params"]], [by_id[id(p)] for p in groups[1]["params"]]) == split_decay(model)
    assert sum(len(g["params"]) for g in groups) == len(list(model.parameters()))


# a large decay so one step shows it; optimi warns that 0.1 is high for fully decoupled decay
@pytest.mark.filterwarnings("ignore:You are using weight_decay")
def test_stable_adamw_decays_only_the_decayed_group():
    """With zero gradients StableAdamW's update is 0, so only the decoupled decay moves a weight:
    by the factor 1 - (lr / max_lr) * weight_decay (torch-optimi, decouple_lr=True, as ModernBERT's
    decoupled_stableadamw)."""
    model = tiny_modernbert(norm_bias=True)
    wd = 0.1
    opt = StableAdamW(weight_decay_groups(model, wd), lr=8e-4, betas=(0.9, 0.98), eps=1e-6, decouple_lr=True)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    for p in model.parameters():
        p.grad = torch.zeros_like(p)
    opt.step()
    decayed, exempt = split_decay(model)
    params = dict(model.named_parameters())
    for n in decayed:
        torch.testing.assert_close(params[n].detach(), before[n] * (1 - wd), msg=n)
    for n in exempt:
        torch.testing.assert_close(params[n].detach(), before[n], rtol=0, atol=0, msg=n)


def test_stable_adamw_trains_a_tiny_modernbert_on_cpu():
    model = tiny_modernbert()
    opt = StableAdamW(weight_decay_groups(model, 1e-5), lr=3e-3, betas=(0.9, 0.98), eps=1e-6, decouple_lr=True)
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(3, VOCAB, (4, 16), generator=g)
    labels = ids.clone()
    inputs = ids.clone()
    inputs[:, ::3] = 4  # a fixed "mask" id at every third position
    labels[:, 1::3] = -100
    losses = []
    for _ in range(8):
        loss = model(input_ids=inputs, labels=labels).loss
        loss.backward()
        opt.step()
        opt.zero_grad()
        losses.append(loss.item())
    assert all(torch.isfinite(torch.tensor(losses)))
    assert losses[-1] < losses[0]
