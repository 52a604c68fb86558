"""Build a ModernBERT masked-LM from a recipe's ``model`` section.

transformers (v5) owns the architecture; this module only translates the
recipe's :class:`~encoder_recipes.schema.ModelConfig` into a
``ModernBertConfig`` (``layer_types``, ``rope_parameters``), picks the
RMSNorm variant when asked, and changes RoPE bases between stages.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

import torch
from transformers import ModernBertConfig, ModernBertForMaskedLM, PreTrainedTokenizerBase
from transformers.modeling_rope_utils import ROPE_INIT_FUNCTIONS
from transformers.models.modernbert.modeling_modernbert import ModernBertRotaryEmbedding
from transformers.utils import is_flash_attn_2_available

from encoder_recipes.modeling.modeling_modernbert_rms import ModernBertRMSConfig, ModernBertRMSForMaskedLM
from encoder_recipes.schema import ModelConfig

AttnImplementation = Literal["flash_attention_2", "sdpa", "eager"]

GLOBAL, LOCAL = "full_attention", "sliding_attention"  # transformers' layer_types names

# pad, cls and sep are required; ModernBERT uses [CLS]/[SEP] as bos/eos when
# a tokenizer has none, as answerdotai/ModernBERT-base does.
_REQUIRED_SPECIALS = ("pad", "cls", "sep")
_OPTIONAL_SPECIALS = {"bos": "cls", "eos": "sep"}


def special_ids_from_tokenizer(tokenizer: PreTrainedTokenizerBase) -> dict[str, int]:
    """The ``special_ids`` :func:`model_config` wants, read from a tokenizer (bos/eos fall back to cls/sep)."""
    ids = {
        "pad": tokenizer.pad_token_id,
        "cls": tokenizer.cls_token_id,
        "sep": tokenizer.sep_token_id,
        "bos": tokenizer.bos_token_id,
        "eos": tokenizer.eos_token_id,
    }
    missing = [k for k in _REQUIRED_SPECIALS if ids[k] is None]
    if missing:
        raise ValueError(f"tokenizer has no {', '.join(missing)} token; ModernBERT needs pad, cls and sep")
    return {k: v for k, v in ids.items() if v is not None}


def layer_types(num_hidden_layers: int, global_attn_every_n_layers: int) -> list[str]:
    """Layer i attends globally when ``i % n == 0``, otherwise within the sliding window."""
    return [GLOBAL if i % global_attn_every_n_layers == 0 else LOCAL for i in range(num_hidden_layers)]


def _resolve_specials(special_ids: Mapping[str, int]) -> dict[str, int]:
    unknown = sorted(set(special_ids) - set(_REQUIRED_SPECIALS) - set(_OPTIONAL_SPECIALS))
    if unknown:
        expected = [*_REQUIRED_SPECIALS, *_OPTIONAL_SPECIALS]
        raise ValueError(f"unknown special_ids keys {unknown}; expected {expected}")
    missing = [k for k in _REQUIRED_SPECIALS if special_ids.get(k) is None]
    if missing:
        raise ValueError(f"special_ids lacks {missing}")
    ids = dict(special_ids)
    for key, fallback in _OPTIONAL_SPECIALS.items():
        if ids.get(key) is None:
            ids[key] = ids[fallback]
    return ids


def model_config(
    model: ModelConfig,
    *,
    vocab_size: int,
    special_ids: Mapping[str, int],
    attn_implementation: AttnImplementation = "sdpa",
) -> ModernBertConfig:
    """Translate the recipe's model section into a transformers config.

    :param vocab_size: the tokenizer's vocabulary size; the recipe's
        ``vocab_size``, when set, may be larger (padded for speed), never smaller.
    :param special_ids: ``pad``, ``cls``, ``sep`` and optionally ``bos``/``eos``
        (see :func:`special_ids_from_tokenizer`).
    :returns: a ``ModernBertConfig``, or ``ModernBertRMSConfig`` when ``norm == "rmsnorm"``.
    """
    if model.vocab_size is not None and model.vocab_size < vocab_size:
        raise ValueError(f"recipe vocab_size {model.vocab_size} is smaller than the tokenizer's {vocab_size}")
    ids = _resolve_specials(special_ids)
    too_big = {k: v for k, v in ids.items() if not 0 <= v < (model.vocab_size or vocab_size)}
    if too_big:
        raise ValueError(f"special ids {too_big} are outside the vocabulary")

    config_class = ModernBertRMSConfig if model.norm == "rmsnorm" else ModernBertConfig
    return config_class(
        vocab_size=model.vocab_size or vocab_size,
        hidden_size=model.hidden_size,
        intermediate_size=model.intermediate_size,
        num_hidden_layers=model.num_hidden_layers,
        num_attention_heads=model.num_attention_heads,
        layer_types=layer_types(model.num_hidden_layers, model.global_attn_every_n_layers),
        local_attention=model.local_attention,
        rope_parameters={
            GLOBAL: {"rope_type": "default", "rope_theta": model.global_rope_theta},
            LOCAL: {"rope_type": "default", "rope_theta": model.local_rope_theta},
        },
        max_position_embeddings=model.max_position_embeddings,
        norm_eps=model.norm_eps,
        norm_bias=model.norm_bias,
        hidden_activation=model.hidden_activation,
        attention_bias=model.attention_bias,
        mlp_bias=model.mlp_bias,
        decoder_bias=model.decoder_bias,
        embedding_dropout=model.embedding_dropout,
        attention_dropout=model.attention_dropout,
        mlp_dropout=model.mlp_dropout,
        initializer_range=model.initializer_range,
        sparse_prediction=model.sparse_prediction,
        pad_token_id=ids["pad"],
        bos_token_id=ids["bos"],
        eos_token_id=ids["eos"],
        cls_token_id=ids["cls"],
        sep_token_id=ids["sep"],
        attn_implementation=attn_implementation,
    )


def build_model(
    model: ModelConfig,
    *,
    vocab_size: int,
    special_ids: Mapping[str, int],
    attn_implementation: AttnImplementation = "sdpa",
    seed: int | None = None,
) -> ModernBertForMaskedLM:
    """A freshly initialised masked-LM (the RMSNorm variant when ``norm == "rmsnorm"``).

    :param seed: when given, the initial weights depend only on it; the
        caller's global torch RNG state is left as it was.
    """
    config = model_config(
        model, vocab_size=vocab_size, special_ids=special_ids, attn_implementation=attn_implementation
    )
    model_class = ModernBertRMSForMaskedLM if isinstance(config, ModernBertRMSConfig) else ModernBertForMaskedLM
    if seed is None:
        return model_class(config)
    # Built on the CPU, so only the CPU generator needs forking.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return model_class(config)


def set_rope_thetas(model: torch.nn.Module, *, global_theta: float | None, local_theta: float | None) -> None:
    """Change the RoPE bases in place, e.g. for a long-context stage; ``None`` leaves that base as it is.

    Updates the config's ``rope_parameters`` (so a save records them) and
    recomputes the rotary modules' ``inv_freq`` buffers with the function
    transformers itself uses, so the result equals a model built with these
    thetas.
    """
    thetas = {GLOBAL: global_theta, LOCAL: local_theta}
    if any(t is not None and t <= 0 for t in thetas.values()):
        raise ValueError(f"rope thetas must be > 0, got global {global_theta}, local {local_theta}")
    rotaries = [m for m in model.modules() if isinstance(m, ModernBertRotaryEmbedding)]
    if not rotaries:
        raise TypeError(f"{type(model).__name__} has no ModernBERT rotary embedding")
    # The model and its rotary module normally share one config object; update every distinct one.
    configs = {id(c): c for c in [getattr(model, "config", None), *(r.config for r in rotaries)] if c is not None}
    for config in configs.values():
        for layer_type, theta in thetas.items():
            if theta is not None:
                config.rope_parameters[layer_type]["rope_theta"] = float(theta)

    # Mirrors ModernBertRotaryEmbedding.__init__ / ModernBertPreTrainedModel._init_weights.
    for rotary in rotaries:
        for layer_type in rotary.layer_types:
            if thetas.get(layer_type) is None:
                continue
            init_fn = rotary.compute_default_rope_parameters
            if rotary.rope_type[layer_type] != "default":
                init_fn = ROPE_INIT_FUNCTIONS[rotary.rope_type[layer_type]]
            buffer = getattr(rotary, f"{layer_type}_inv_freq")
            inv_freq, scaling = init_fn(rotary.config, buffer.device, layer_type=layer_type)
            with torch.no_grad():
                buffer.copy_(inv_freq)
                getattr(rotary, f"{layer_type}_original_inv_freq").copy_(inv_freq)
            setattr(rotary, f"{layer_type}_attention_scaling", scaling)


def describe_attention_backend(
    device_type: str,
    *,
    requested: Literal["auto"] | AttnImplementation = "auto",
    flash_attn_available: bool | None = None,
) -> AttnImplementation:
    """The attention implementation to build with.

    ``auto`` picks FlashAttention-2 on CUDA when the ``flash_attn`` package is
    usable, else PyTorch SDPA; an explicit ``requested`` is returned as is,
    except FlashAttention-2 where it cannot run.

    :param device_type: ``torch.device(...).type``, e.g. ``"cuda"`` or ``"cpu"``.
    :param flash_attn_available: ``None`` asks transformers
        (``is_flash_attn_2_available``); pass a bool to decide without looking.
    """
    if requested not in ("auto", "flash_attention_2", "sdpa", "eager"):
        raise ValueError(f"unknown attention implementation {requested!r}; use auto, flash_attention_2, sdpa or eager")
    if requested in ("sdpa", "eager"):
        return requested
    if flash_attn_available is None:
        flash_attn_available = is_flash_attn_2_available()
    usable = device_type == "cuda" and flash_attn_available
    if requested == "flash_attention_2" and not usable:
        raise ValueError(
            f"flash_attention_2 needs a CUDA device and the flash-attn package (device {device_type!r}, "
            f"flash-attn {'found' if flash_attn_available else 'missing'}); install encoder-recipes[gpu] or use sdpa"
        )
    return "flash_attention_2" if usable else "sdpa"
