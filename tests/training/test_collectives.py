"""Every collective the trainer makes runs on a tensor put on the training device.

NCCL refuses CPU tensors and gloo accepts them, so a collective on a CPU
tensor passes every CPU test and crashes a GPU job at its first step. On a
CPU machine the training device *is* the CPU, so the test cannot tell the
two apart by ``tensor.device`` alone; it also watches where each tensor came
from: a torch function mode remembers every tensor a factory
(``torch.tensor``, ``torch.zeros``, ...) made without being given a device —
on a GPU job that tensor would sit on the CPU — and the wrapped collectives
refuse those. The run is a real one-process gloo group, joined as under
``torchrun --nproc_per_node 1``, through a stage boundary and the
stage-end evaluations.
"""

from __future__ import annotations

import socket
import weakref

import pytest
import torch
import torch.distributed as dist
from torch.overrides import TorchFunctionMode

from encoder_recipes.training.distributed import Dist
from encoder_recipes.training.trainer import RunOptions, Trainer
from encoder_recipes.validation import load_recipe

#: factories that place a new tensor on the default device unless given ``device=``
FACTORIES = {torch.tensor, torch.zeros, torch.ones, torch.full, torch.empty, torch.arange, torch.scalar_tensor,
             torch.randn, torch.rand}
COLLECTIVES = ["all_reduce", "broadcast", "reduce", "all_gather", "all_gather_into_tensor", "reduce_scatter_tensor",
               "all_to_all_single", "gather", "scatter"]


class ImplicitPlacement(TorchFunctionMode):
    """Remembers the tensors factories made without being told a device."""

    def __init__(self) -> None:
        super().__init__()
        self._made: dict[int, weakref.ref] = {}

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        if func in FACTORIES and kwargs.get("device") is None and isinstance(out, torch.Tensor):
            self._made[id(out)] = weakref.ref(out)
        return out

    def implicit(self, tensor: torch.Tensor) -> bool:
        ref = self._made.get(id(tensor))
        return ref is not None and ref() is tensor


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_every_collective_of_a_run_is_on_the_training_device(train_recipe, registries, tmp_path, monkeypatch):
    for name, value in {"RANK": "0", "LOCAL_RANK": "0", "WORLD_SIZE": "1", "MASTER_ADDR": "127.0.0.1",
                        "MASTER_PORT": str(free_port())}.items():
        monkeypatch.setenv(name, value)
    resolved = load_recipe(str(train_recipe(steps1=2, steps2=2, checkpoint_every=1)), registries=registries)
    trainer = Trainer(resolved, registries, RunOptions(output=tmp_path / "run", device="cpu", progress=False))
    mode = ImplicitPlacement()
    calls, wrong = [], []

    def guarded(name, original):
        def collective(tensor, *args, **kwargs):
            for t in tensor if isinstance(tensor, (list, tuple)) else [tensor]:
                if t.device != trainer.device or mode.implicit(t):
                    wrong.append(f"{name} on a tensor on {t.device}" + (" (no device given)" if mode.implicit(t) else ""))
            calls.append(name)
            return original(tensor, *args, **kwargs)
        return collective

    for name in COLLECTIVES:
        monkeypatch.setattr(dist, name, guarded(name, getattr(dist, name)))
    try:
        with mode:
            trainer.setup()
            assert dist.is_initialized() and trainer.dist.enabled  # joined as torchrun would, with one process
            trainer.train()
    finally:
        trainer.cleanup()
    assert "all_reduce" in calls, calls  # the step's collectives really ran through the wrapper
    assert wrong == [], wrong


def test_a_collective_on_another_device_is_refused_before_it_reaches_the_backend():
    group = Dist(device=torch.device("meta"), joined=True)
    with pytest.raises(ValueError, match="process group runs on meta"):
        group.sum(torch.zeros(1))
