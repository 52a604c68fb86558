"""How the model is spread over the processes: DDP or FSDP2 (``distributed.strategy``).

* ``ddp``: every process holds the whole model, its gradients and the
  optimizer's moments; gradients are averaged after each backward.
* ``fsdp``: FSDP2's ``fully_shard`` on each transformer layer, then on the
  root (embeddings, final norm, head). Each process keeps 1/N of every
  parameter, gradient and moment, and gathers one layer's parameters at a
  time for its forward and backward. It pays more communication for memory.

Both average gradients over the processes, so the trainer's loss weighting
and the weights it reaches are the same under either (a gloo test holds them
equal). A single process (no process group) is never wrapped.
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Iterator
from typing import Literal

import torch
from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict
from torch.distributed.device_mesh import init_device_mesh
from torch.distributed.fsdp import FSDPModule, MixedPrecisionPolicy, fully_shard
from torch.distributed.tensor import DTensor
from torch.nn.parallel import DistributedDataParallel

from encoder_recipes.training.distributed import Dist

Strategy = Literal["ddp", "fsdp"]


def wrap(model: torch.nn.Module, forward: torch.nn.Module, *, strategy: Strategy, dist: Dist,
         bf16: bool) -> torch.nn.Module:
    """The module to call forward on.

    :param forward: what the trainer calls: ``model`` itself, or a module around it that calls its
        parts (the chunked head loss calls ``model.model``, ``model.head``, ``model.decoder``).
        FSDP shards in place (classes change; ``model`` stays the object the optimizer and
        checkpoints see); DDP returns a wrapper around ``forward``.
    """
    if not dist.enabled:
        return forward
    if strategy == "ddp":
        return DistributedDataParallel(forward, device_ids=[dist.device.index] if dist.device.type == "cuda" else None)
    # bf16 parameters for compute and fp32 for the gradient reduce-scatter, as autocast would keep them;
    # the sharded master weights and the optimizer stay fp32 either way
    policy = MixedPrecisionPolicy(param_dtype=torch.bfloat16, reduce_dtype=torch.float32) if bf16 \
        else MixedPrecisionPolicy()
    mesh = init_device_mesh(dist.device.type, (dist.world,))
    # one unit per layer: only one layer's full parameters exist at a time (two with prefetching)
    for layer in _layers(model):
        fully_shard(layer, mesh=mesh, mp_policy=policy)
    # the root unit holds the rest; the tied embedding and decoder weight stay one parameter in it. It is
    # ``forward``, whose forward gathers them before any part of the model runs, even when it calls the
    # parts directly rather than through ``model``'s own forward
    fully_shard(forward, mesh=mesh, mp_policy=policy)
    return forward


def _layers(model: torch.nn.Module) -> torch.nn.ModuleList:
    layers = getattr(getattr(model, "model", None), "layers", None)
    if not isinstance(layers, torch.nn.ModuleList):
        raise TypeError(f"{type(model).__name__} has no transformer layers at .model.layers to shard")
    return layers


def is_sharded(model: torch.nn.Module) -> bool:
    return any(isinstance(module, FSDPModule) for module in model.modules())


@contextlib.contextmanager
def gradients_accumulate(forward_model: torch.nn.Module, accumulate: bool) -> Iterator[None]:
    """With ``accumulate``, the backward inside keeps its gradients local (a micro-batch that is not the
    step's last): no all-reduce (DDP) or reduce-scatter (FSDP) until the last one."""
    if not accumulate:
        yield
    elif isinstance(forward_model, DistributedDataParallel):
        with forward_model.no_sync():
            yield
    elif isinstance(forward_model, FSDPModule):
        forward_model.set_requires_gradient_sync(False)
        try:
            yield
        finally:
            forward_model.set_requires_gradient_sync(True)
    else:
        yield


def clip_grad_norm(model: torch.nn.Module, max_norm: float | None) -> torch.Tensor:
    """Clip the global gradient norm (none: only measure it); returns the norm before clipping, a plain tensor.

    Under FSDP the gradients are shards (DTensors) and torch computes the norm over all of them;
    the result is a DTensor, made whole here so the trainer can log it.
    """
    params = [p for p in model.parameters() if p.grad is not None]
    norm = torch.nn.utils.clip_grad_norm_(params, max_norm if max_norm else float("inf"))
    return norm.full_tensor() if isinstance(norm, DTensor) else norm


def full_model(model: torch.nn.Module) -> torch.nn.Module:
    """The whole sharded ``model`` as one plain module, on every process (collective).

    A sharded model runs a forward only when every process runs the same one,
    yet some evaluators run on the main process alone and the others on each
    process's share of the examples; the export is the main process's. So
    each process gathers the full weights (4 bytes a parameter, not the 16 of
    training state) into an unsharded copy built from the model's current
    config, so RoPE thetas set for the stage are the copy's too.
    """
    full = get_model_state_dict(model, options=StateDictOptions(full_state_dict=True))
    plain_class = next(c for c in type(model).__mro__ if not issubclass(c, FSDPModule))
    with torch.random.fork_rng(devices=[]):  # its throwaway initialisation must not move the run's RNG
        whole = plain_class(copy.deepcopy(model.config))
    whole.load_state_dict(full)
    whole.tie_weights()
    device = next(iter(full.values())).device
    return whole.to(device).train(model.training)
