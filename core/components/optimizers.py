"""Built-in optimizers: ``adamw`` (torch's) and ``stable_adamw`` (torch-optimi's).

Both decay weight matrices and embeddings and leave norm weights and biases
alone, choosing by parameter role (:mod:`encoder_recipes.components.param_groups`),
as BERT and ModernBERT do. The optimizers themselves are the libraries';
nothing here reimplements an update rule.
"""

from __future__ import annotations

from typing import Annotated, ClassVar

import torch
from pydantic import Field

from encoder_recipes.components.base import Params
from encoder_recipes.components.kinds import Optimizer
from encoder_recipes.components.param_groups import weight_decay_groups

#: a moving-average coefficient: torch and optimi both refuse one outside [0, 1)
Beta = Annotated[float, Field(ge=0, lt=1)]


def _on_cuda(model: torch.nn.Module) -> bool:
    return next(model.parameters()).device.type == "cuda"


class AdamWParams(Params):
    betas: tuple[Beta, Beta] = Field((0.9, 0.999), description="coefficients of the gradient and squared-gradient averages")
    eps: float = Field(1e-8, gt=0, description="added to the denominator")
    weight_decay: float = Field(0.01, ge=0, description="decoupled decay (× lr) of weights; norms and biases get none")


class AdamW(Optimizer):
    """AdamW (torch.optim.AdamW, fused on CUDA); defaults are torch's."""

    name: ClassVar[str] = "adamw"
    Params: ClassVar[type[Params]] = AdamWParams

    def build(self, model: torch.nn.Module, *, lr: float) -> torch.optim.Optimizer:
        p = self.params
        return torch.optim.AdamW(weight_decay_groups(model, p.weight_decay), lr=lr, betas=p.betas, eps=p.eps,
                                 fused=_on_cuda(model))


class StableAdamWParams(Params):
    betas: tuple[Beta, Beta] = Field((0.9, 0.99), description="coefficients of the gradient and squared-gradient averages")
    eps: float = Field(1e-6, gt=0, description="added to the denominator")
    weight_decay: float = Field(1e-2, ge=0, description="decay of weights (× lr, or × lr / max_lr with decouple_lr); "
                                "norms and biases get none")
    decouple_lr: bool = Field(
        False, description="fully decoupled decay: each step decays by weight_decay × lr / max_lr, where max_lr is "
        "the LR the optimizer is built with (the first stage's peak), as ModernBERT's decoupled_stableadamw; "
        "false: by weight_decay × lr, as AdamW",
    )


class StableAdamW(Optimizer):
    """StableAdamW (torch-optimi): AdamW with Adafactor-style update clipping, ModernBERT's optimizer; defaults are optimi's."""

    name: ClassVar[str] = "stable_adamw"
    Params: ClassVar[type[Params]] = StableAdamWParams

    def build(self, model: torch.nn.Module, *, lr: float) -> torch.optim.Optimizer:
        # imported here: optimi imports triton where it is installed, and only a run using it should pay
        from optimi import StableAdamW as OptimiStableAdamW

        p = self.params
        return OptimiStableAdamW(weight_decay_groups(model, p.weight_decay), lr=lr, betas=p.betas, eps=p.eps,
                                 decouple_lr=p.decouple_lr)
