"""ModernBERT with RMSNorm in place of every LayerNorm.

transformers' ModernBERT only has LayerNorm; some recipes (e.g. the Chinese
one) train with RMSNorm. This variant builds the stock model and swaps each
norm (embeddings, ``attn_norm``, ``mlp_norm``, ``final_norm``, MLM head) for a
weight-only :class:`torch.nn.RMSNorm` with ``eps = norm_eps``. Everything
else (attention backends, RoPE, sparse prediction) is transformers' own code.

It has its own ``model_type`` ("modernbert_rms") so that a checkpoint is not
loaded as plain LayerNorm ModernBERT with silently different outputs: the
Auto classes and ``pipeline`` refuse it without ``trust_remote_code``, and
naming the stock class explicitly draws transformers' model-type warning.

This file is shipped next to exported weights (``save_pretrained`` copies it
and writes ``auto_map``), so it must stay self-contained: import only torch
and transformers (never this project's own package, which a user loading
the model may not have), and no relative imports.
"""

from torch import nn
from transformers import (
    ModernBertConfig,
    ModernBertForMaskedLM,
    ModernBertForSequenceClassification,
    ModernBertForTokenClassification,
    ModernBertModel,
)

# Module name as the Hub sees it: the file is copied under this stem.
_MODULE = __name__.rsplit(".", 1)[-1]


class ModernBertRMSConfig(ModernBertConfig):
    """:class:`ModernBertConfig` whose norms are RMSNorm (weight only, no bias)."""

    model_type = "modernbert_rms"
    norm_type: str = "rmsnorm"

    def __post_init__(self, **kwargs):
        super().__post_init__(**kwargs)
        if self.norm_type != "rmsnorm":
            raise ValueError(f"ModernBertRMSConfig needs norm_type='rmsnorm', got {self.norm_type!r}")
        if self.norm_bias:
            raise ValueError("RMSNorm has no bias: set norm_bias=False")
        # Every Auto class this file serves, so a reloaded config points at
        # all of them, not just the class that happened to be saved. Entries
        # already present win: from the Hub they read "repo--module.Class".
        auto_map = {k: f"{_MODULE}.{v}" for k, v in _AUTO_CLASSES.items()}
        auto_map.update(getattr(self, "auto_map", None) or {})
        self.auto_map = auto_map


def swap_layernorms_for_rmsnorm(module: nn.Module, eps: float) -> None:
    """Replace every :class:`nn.LayerNorm` under ``module`` by a fresh RMSNorm of the same width.

    Built on the old norm's device and dtype (the meta device while
    ``from_pretrained`` builds the skeleton); the weight starts at ones, as
    transformers initialises norms.
    """
    for parent in list(module.modules()):
        for attr, sub in list(parent.named_children()):
            if isinstance(sub, nn.LayerNorm):
                rms = nn.RMSNorm(
                    sub.normalized_shape,
                    eps=eps,
                    elementwise_affine=True,
                    device=sub.weight.device,
                    dtype=sub.weight.dtype,
                )
                setattr(parent, attr, rms)


# Each class builds the stock model, then swaps its norms. post_init has run
# by then; what it records (tied weights, no-split module names) does not
# involve the norms, and the new norms are initialised by construction.
class ModernBertRMSModel(ModernBertModel):
    config_class = ModernBertRMSConfig

    def __init__(self, config: ModernBertRMSConfig):
        super().__init__(config)
        swap_layernorms_for_rmsnorm(self, config.norm_eps)


class ModernBertRMSForMaskedLM(ModernBertForMaskedLM):
    config_class = ModernBertRMSConfig

    def __init__(self, config: ModernBertRMSConfig):
        super().__init__(config)
        swap_layernorms_for_rmsnorm(self, config.norm_eps)


class ModernBertRMSForSequenceClassification(ModernBertForSequenceClassification):
    config_class = ModernBertRMSConfig

    def __init__(self, config: ModernBertRMSConfig):
        super().__init__(config)
        swap_layernorms_for_rmsnorm(self, config.norm_eps)


class ModernBertRMSForTokenClassification(ModernBertForTokenClassification):
    config_class = ModernBertRMSConfig

    def __init__(self, config: ModernBertRMSConfig):
        super().__init__(config)
        swap_layernorms_for_rmsnorm(self, config.norm_eps)


_AUTO_CLASSES = {
    "AutoConfig": ModernBertRMSConfig.__name__,
    "AutoModel": ModernBertRMSModel.__name__,
    "AutoModelForMaskedLM": ModernBertRMSForMaskedLM.__name__,
    "AutoModelForSequenceClassification": ModernBertRMSForSequenceClassification.__name__,
    "AutoModelForTokenClassification": ModernBertRMSForTokenClassification.__name__,
}

# Makes save_pretrained copy this file into the export and write auto_map.
ModernBertRMSConfig.register_for_auto_class("AutoConfig")
ModernBertRMSForMaskedLM.register_for_auto_class("AutoModelForMaskedLM")
