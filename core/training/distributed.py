"""Several processes through ``torchrun`` and ``torch.distributed``; nothing home-made.

``torchrun --nproc-per-node 8 -m encoder_recipes run RECIPE`` (and ``--nnodes``
for several nodes) sets ``RANK``, ``WORLD_SIZE`` and ``LOCAL_RANK``; this module
reads them, joins the process group (NCCL on GPUs, gloo on CPU) and wraps the
model in DDP. Without them the run is a single process.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class Dist:
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world > 1

    def barrier(self) -> None:
        if self.enabled:
            dist.barrier()

    def share(self, n: int) -> tuple[int, int]:
        """This rank's contiguous slice [start, stop) of n items (the global batch)."""
        if n % self.world:
            raise ValueError(f"global batch {n} is not divisible by the {self.world} processes")
        per = n // self.world
        return self.rank * per, (self.rank + 1) * per

    def all_reduce_mean(self, value: float) -> float:
        if not self.enabled:
            return value
        t = torch.tensor([value], dtype=torch.float64)
        dist.all_reduce(t)
        return float(t.item()) / self.world


def init_distributed(device: torch.device) -> Dist:
    """Join the process group torchrun describes, or run alone."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Dist()
    rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    return Dist(rank, world, local_rank)


def close_distributed() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def pick_device(requested: str | None, d: Dist | None = None) -> torch.device:
    if requested:
        return torch.device(requested)
    if torch.cuda.is_available():
        local = int(os.environ.get("LOCAL_RANK", "0"))
        torch.cuda.set_device(local)
        return torch.device("cuda", local)
    return torch.device("cpu")
