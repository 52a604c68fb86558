"""Weight-decay parameter groups, chosen by each parameter's role in the model.

BERT and ModernBERT decay the weight matrices and embeddings but not the
norms' weights or any bias (ModernBERT: ``filter_bias_norm_wd: true`` in its
YAMLs, whose rule in ``main.py`` ``param_groups_weight_decay`` is "1-D or
named ``.bias``"). Here the role comes from the model itself, not from
parameter names or shapes:

- a **norm** parameter belongs to a normalisation module: an instance of
  torch's norm classes (``LayerNorm``, ``RMSNorm``, ``GroupNorm``, the batch
  and instance norms) or of any class whose name ends in ``Norm``, which
  catches the RMSNorm classes models define for themselves (transformers'
  ``LlamaRMSNorm``, ``T5LayerNorm`` and the like do not subclass torch's);
- a **bias** is a parameter registered under the name ``bias``.

Everything else is decayed. A list of module names (``LayerNorm``,
``layer_norm``) misses ModernBERT's ``norm``, ``attn_norm``, ``mlp_norm`` and
``final_norm``; a shape rule would also exempt a learned 1-D scale that is
neither. A parameter shared by several modules (tied embeddings) is placed
once, and exempt if any of its roles is.
"""

from __future__ import annotations

from torch import nn

__all__ = ["NORM_TYPES", "is_norm_module", "split_decay", "weight_decay_groups"]

NORM_TYPES: tuple[type[nn.Module], ...] = (
    nn.LayerNorm,
    nn.RMSNorm,
    nn.GroupNorm,
    nn.LocalResponseNorm,
    nn.modules.batchnorm._NormBase,  # BatchNorm*d, SyncBatchNorm, InstanceNorm*d
)


def is_norm_module(module: nn.Module) -> bool:
    """True for torch's normalisation layers and for any module class named ``...Norm``."""
    return isinstance(module, NORM_TYPES) or type(module).__name__.endswith("Norm")


def split_decay(model: nn.Module) -> tuple[list[str], list[str]]:
    """``(decayed, exempt)`` parameter names, in ``model.named_parameters()`` order.

    Frozen parameters (``requires_grad`` False) are in neither list.
    """
    exempt_ids: set[int] = set()
    for module in model.modules():
        norm = is_norm_module(module)
        for local_name, param in module.named_parameters(recurse=False):
            if norm or local_name == "bias":
                exempt_ids.add(id(param))
    decayed, exempt = [], []
    for name, param in model.named_parameters():
        if param.requires_grad:
            (exempt if id(param) in exempt_ids else decayed).append(name)
    return decayed, exempt


def weight_decay_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """Two optimizer param groups: the decayed parameters at ``weight_decay``, then the exempt ones at 0.

    The order (decayed first) and the order within each group are stable, so an
    optimizer's saved state loads back onto the same parameters.
    """
    decayed, exempt = split_decay(model)
    params = dict(model.named_parameters())
    return [
        {"params": [params[n] for n in decayed], "weight_decay": weight_decay},
        {"params": [params[n] for n in exempt], "weight_decay": 0.0},
    ]
