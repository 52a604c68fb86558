"""Building ModernBERT from a recipe's model section: config mapping, RMSNorm, RoPE stages, backends."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from transformers import ModernBertConfig, ModernBertForMaskedLM

from encoder_recipes.modeling.build import (
    build_model,
    describe_attention_backend,
    layer_types,
    model_config,
    set_rope_thetas,
)
from encoder_recipes.modeling.modeling_modernbert_rms import ModernBertRMSConfig, ModernBertRMSForMaskedLM
from encoder_recipes.schema import ModelConfig

VOCAB = 300
SPECIALS = {"pad": 0, "cls": 2, "sep": 3}


def tiny(**overrides) -> ModelConfig:
    base = dict(
        hidden_size=32,
        intermediate_size=48,
        num_hidden_layers=3,
        num_attention_heads=2,
        local_attention=4,  # shorter than the test sequences, so local layers really are local
        global_attn_every_n_layers=2,
        max_position_embeddings=128,
    )
    return ModelConfig(**{**base, **overrides})


def batch(seed: int = 0, length: int = 24) -> tuple[torch.Tensor, torch.Tensor]:
    """Two sequences, the second padded after 15 tokens."""
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(5, VOCAB, (2, length), generator=g)
    mask = torch.ones_like(ids)
    mask[1, 15:] = 0
    ids[1, 15:] = SPECIALS["pad"]
    return ids, mask


@torch.no_grad()
def logits(model: nn.Module, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    return model.eval()(input_ids=ids, attention_mask=mask).logits


# -- config mapping ----------------------------------------------------------


def test_model_config_maps_every_field():
    recipe = tiny(
        hidden_activation="silu",
        attention_bias=True,
        mlp_bias=True,
        decoder_bias=False,
        norm_eps=1e-6,
        norm_bias=True,
        embedding_dropout=0.1,
        attention_dropout=0.2,
        mlp_dropout=0.3,
        initializer_range=0.05,
        global_rope_theta=80_000.0,
        local_rope_theta=5_000.0,
        sparse_prediction=False,
    )
    cfg = model_config(recipe, vocab_size=VOCAB, special_ids=SPECIALS, attn_implementation="eager")

    assert type(cfg) is ModernBertConfig
    assert cfg.vocab_size == VOCAB
    for field in (
        "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads", "local_attention",
        "max_position_embeddings", "norm_eps", "norm_bias", "hidden_activation", "attention_bias", "mlp_bias",
        "decoder_bias", "embedding_dropout", "attention_dropout", "mlp_dropout", "initializer_range",
        "sparse_prediction",
    ):  # fmt: skip
        assert getattr(cfg, field) == getattr(recipe, field), field
    assert cfg.rope_parameters["full_attention"]["rope_theta"] == 80_000.0
    assert cfg.rope_parameters["sliding_attention"]["rope_theta"] == 5_000.0
    assert cfg.sliding_window == 2  # transformers' half window of local_attention=4
    # bos/eos fall back to cls/sep when the tokenizer has none.
    assert (cfg.pad_token_id, cfg.cls_token_id, cfg.sep_token_id) == (0, 2, 3)
    assert (cfg.bos_token_id, cfg.eos_token_id) == (2, 3)
    assert cfg._attn_implementation == "eager"


def test_vocab_size_from_tokenizer_or_padded_recipe():
    assert model_config(tiny(), vocab_size=VOCAB, special_ids=SPECIALS).vocab_size == VOCAB
    assert model_config(tiny(vocab_size=320), vocab_size=VOCAB, special_ids=SPECIALS).vocab_size == 320
    with pytest.raises(ValueError, match="smaller than the tokenizer"):
        model_config(tiny(vocab_size=200), vocab_size=VOCAB, special_ids=SPECIALS)


def test_special_ids_are_checked():
    with pytest.raises(ValueError, match="lacks"):
        model_config(tiny(), vocab_size=VOCAB, special_ids={"pad": 0, "cls": 2})
    with pytest.raises(ValueError, match="unknown"):
        model_config(tiny(), vocab_size=VOCAB, special_ids={**SPECIALS, "msk": 4})
    with pytest.raises(ValueError, match="outside the vocabulary"):
        model_config(tiny(), vocab_size=VOCAB, special_ids={**SPECIALS, "sep": VOCAB})


@pytest.mark.parametrize(
    ("layers", "every", "globals_at"),
    [(7, 3, [0, 3, 6]), (4, 1, [0, 1, 2, 3]), (3, 5, [0]), (6, 2, [0, 2, 4])],
)
def test_layer_types_pattern(layers, every, globals_at):
    types = layer_types(layers, every)
    assert [i for i, t in enumerate(types) if t == "full_attention"] == globals_at
    assert all(t == "sliding_attention" for i, t in enumerate(types) if i not in globals_at)


def test_built_layers_follow_the_pattern():
    model = build_model(tiny(num_hidden_layers=5, global_attn_every_n_layers=2), vocab_size=VOCAB, special_ids=SPECIALS)
    windows = [layer.attn.sliding_window for layer in model.model.layers]
    # transformers stores half the window + 1 (flash-attn's inclusive bound) on local layers
    assert windows == [None, 3, None, 3, None]


# -- initialisation ----------------------------------------------------------


def test_seed_fixes_weights_and_leaves_global_rng_alone():
    torch.manual_seed(123)
    expected_next = torch.rand(3)
    torch.manual_seed(123)
    a = build_model(tiny(), vocab_size=VOCAB, special_ids=SPECIALS, seed=7)
    assert torch.equal(torch.rand(3), expected_next)  # the caller's stream did not move

    b = build_model(tiny(), vocab_size=VOCAB, special_ids=SPECIALS, seed=7)
    c = build_model(tiny(), vocab_size=VOCAB, special_ids=SPECIALS, seed=8)
    wa, wb, wc = (m.model.layers[1].attn.Wqkv.weight for m in (a, b, c))
    assert torch.equal(wa, wb)
    assert not torch.equal(wa, wc)


# -- RoPE per stage ----------------------------------------------------------


@pytest.mark.parametrize(("new_global", "new_local"), [(500_000.0, 20_000.0), (1_000.0, None), (None, 77.0)])
def test_set_rope_thetas_equals_building_with_them(new_global, new_local):
    # initializer_range 0.2: at the default 0.02 attention is near uniform and RoPE barely shows in the logits.
    stage1 = tiny(global_rope_theta=10_000.0, local_rope_theta=10_000.0, initializer_range=0.2)
    model = build_model(stage1, vocab_size=VOCAB, special_ids=SPECIALS, seed=0)
    ids, mask = batch()
    before = logits(model, ids, mask)

    set_rope_thetas(model, global_theta=new_global, local_theta=new_local)
    stage2 = stage1.model_copy(
        update={
            "global_rope_theta": new_global or stage1.global_rope_theta,
            "local_rope_theta": new_local or stage1.local_rope_theta,
        }
    )
    direct = build_model(stage2, vocab_size=VOCAB, special_ids=SPECIALS, seed=0)

    after = logits(model, ids, mask)
    assert (before - after).abs().max() > 0.1  # the change reached the forward pass
    torch.testing.assert_close(after, logits(direct, ids, mask), rtol=0, atol=1e-6)
    assert model.config.rope_parameters == direct.config.rope_parameters
    for name, buf in direct.model.rotary_emb.named_buffers():
        torch.testing.assert_close(dict(model.model.rotary_emb.named_buffers())[name], buf, rtol=0, atol=0)


def test_set_rope_thetas_rejects_models_without_rotary():
    with pytest.raises(TypeError):
        set_rope_thetas(nn.Linear(2, 2), global_theta=1.0, local_theta=None)


# -- attention backends ------------------------------------------------------


def test_sdpa_and_eager_agree_with_padding_and_sliding_window():
    ids, mask = batch()
    eager = build_model(tiny(), vocab_size=VOCAB, special_ids=SPECIALS, attn_implementation="eager", seed=1)
    sdpa = build_model(tiny(), vocab_size=VOCAB, special_ids=SPECIALS, attn_implementation="sdpa", seed=1)
    assert sdpa.config._attn_implementation == "sdpa"
    a, b = logits(eager, ids, mask), logits(sdpa, ids, mask)
    real = mask.bool()
    torch.testing.assert_close(a[real], b[real], rtol=0, atol=1e-5)


@pytest.mark.parametrize(
    ("device", "requested", "fa", "expected"),
    [
        ("cuda", "auto", True, "flash_attention_2"),
        ("cuda", "auto", False, "sdpa"),
        ("cpu", "auto", True, "sdpa"),
        ("cpu", "eager", False, "eager"),
        ("cuda", "sdpa", True, "sdpa"),
        ("cuda", "flash_attention_2", True, "flash_attention_2"),
    ],
)
def test_describe_attention_backend(device, requested, fa, expected):
    assert describe_attention_backend(device, requested=requested, flash_attn_available=fa) == expected


def test_describe_attention_backend_refuses_impossible_requests():
    with pytest.raises(ValueError, match="CUDA"):
        describe_attention_backend("cpu", requested="flash_attention_2", flash_attn_available=True)
    with pytest.raises(ValueError, match="unknown"):
        describe_attention_backend("cuda", requested="flex")  # type: ignore[arg-type]
    # Looking the package up itself: this CPU machine never gets flash-attn.
    assert describe_attention_backend("cpu") == "sdpa"


# -- RMSNorm -----------------------------------------------------------------


def test_rmsnorm_model_has_only_rmsnorms():
    recipe = tiny(norm="rmsnorm", norm_eps=1e-6, num_hidden_layers=3)
    model = build_model(recipe, vocab_size=VOCAB, special_ids=SPECIALS)
    assert isinstance(model, ModernBertRMSForMaskedLM)
    assert isinstance(model.config, ModernBertRMSConfig) and model.config.model_type == "modernbert_rms"

    norms = [m for m in model.modules() if isinstance(m, nn.RMSNorm)]
    assert not [m for m in model.modules() if isinstance(m, nn.LayerNorm)]
    # embeddings + attn_norm of layers 1.. (layer 0's is Identity) + mlp_norm of every layer + final + head
    assert len(norms) == 1 + (3 - 1) + 3 + 1 + 1
    assert all(n.eps == 1e-6 and n.weight is not None and n.normalized_shape == (32,) for n in norms)
    for m in (model.model.embeddings.norm, model.model.final_norm, model.head.norm, model.model.layers[1].attn_norm):
        assert isinstance(m, nn.RMSNorm)
    assert all(torch.equal(n.weight, torch.ones(32)) for n in norms)


def test_rmsnorm_changes_outputs_on_the_same_weights():
    ln = build_model(tiny(), vocab_size=VOCAB, special_ids=SPECIALS, seed=3)
    rms = build_model(tiny(norm="rmsnorm"), vocab_size=VOCAB, special_ids=SPECIALS, seed=3)
    rms.load_state_dict(ln.state_dict())  # same keys: norm_bias=False leaves LayerNorm with a weight only
    ids, mask = batch()
    assert not torch.allclose(logits(ln, ids, mask), logits(rms, ids, mask), atol=1e-3)

    # The embeddings norm really computes x / rms(x) * w (no mean subtraction).
    x = torch.randn(4, 32) + 3.0
    norm = rms.model.embeddings.norm
    expected = x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + norm.eps) * norm.weight
    torch.testing.assert_close(norm(x), expected)


def test_rmsnorm_with_bias_is_refused():
    with pytest.raises(ValueError, match="no bias"):
        model_config(tiny(norm="rmsnorm", norm_bias=True), vocab_size=VOCAB, special_ids=SPECIALS)


# -- sparse prediction -------------------------------------------------------


@pytest.mark.parametrize("norm", ["layernorm", "rmsnorm"])
def test_sparse_prediction_loss_equals_dense_loss_at_masked_positions(norm):
    sparse = build_model(tiny(norm=norm, sparse_prediction=True), vocab_size=VOCAB, special_ids=SPECIALS, seed=5)
    dense = build_model(tiny(norm=norm, sparse_prediction=False), vocab_size=VOCAB, special_ids=SPECIALS, seed=5)
    assert sparse.sparse_prediction and not dense.sparse_prediction
    ids, mask = batch()
    labels = torch.full_like(ids, -100)
    picked = torch.tensor([0, 0, 1, 1]), torch.tensor([1, 9, 4, 12])  # (rows, cols) of 4 masked tokens
    labels[picked] = ids[picked]

    with torch.no_grad():
        out = sparse.eval()(input_ids=ids, attention_mask=mask, labels=labels)
        full = dense.eval()(input_ids=ids, attention_mask=mask).logits
        dense_out = dense(input_ids=ids, attention_mask=mask, labels=labels)
    assert out.logits.shape == (4, VOCAB)  # only the masked positions went through the head
    at_masked = labels != -100
    expected = F.cross_entropy(full[at_masked], labels[at_masked])
    torch.testing.assert_close(out.loss, expected, rtol=0, atol=1e-6)
    torch.testing.assert_close(dense_out.loss, expected, rtol=0, atol=1e-6)
    torch.testing.assert_close(out.logits, full[at_masked], rtol=0, atol=1e-5)


def test_stock_class_for_layernorm():
    model = build_model(tiny(), vocab_size=VOCAB, special_ids=SPECIALS)
    assert type(model) is ModernBertForMaskedLM
    assert sum(isinstance(m, nn.LayerNorm) for m in model.modules()) == 1 + 2 + 3 + 1 + 1
