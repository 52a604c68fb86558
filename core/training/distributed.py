"""Several processes through ``torchrun`` and ``torch.distributed``; nothing home-made.

``torchrun --nproc-per-node 8 -m encoder_recipes run RECIPE`` (and ``--nnodes``
for several nodes) sets ``RANK``, ``WORLD_SIZE`` and ``LOCAL_RANK``; this module
reads them, joins the process group (NCCL on GPUs, gloo on CPU) and wraps the
model in DDP. Without them the run is a single process. Under torchrun the
group is joined even for one process, so ``--nproc-per-node 1`` exercises the
same collectives (and, on a GPU, NCCL) as a full job.

Every collective goes through :class:`Dist`, on a tensor on the training
device: NCCL refuses CPU tensors, so a collective on a CPU tensor would pass
every gloo test and crash the first GPU job at step 1.
"""

from __future__ import annotations

import datetime
import os
from dataclasses import dataclass, field

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class Dist:
    rank: int = 0
    world: int = 1
    local_rank: int = 0
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    joined: bool = False  # a process group exists (launched by torchrun, even with one process)

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.joined

    def barrier(self) -> None:
        if self.enabled:
            # NCCL's barrier runs on a device: name ours rather than let it guess one
            dist.barrier(device_ids=[self.device.index]) if self.device.type == "cuda" else dist.barrier()

    def share(self, n: int) -> tuple[int, int]:
        """This rank's contiguous slice [start, stop) of n items (the global batch)."""
        if n % self.world:
            raise ValueError(f"global batch {n} is not divisible by the {self.world} processes")
        per = n // self.world
        return self.rank * per, (self.rank + 1) * per

    def sum(self, tensor: torch.Tensor) -> torch.Tensor:
        """Sum ``tensor`` over the ranks, in place; it must live on the training device."""
        if tensor.device != self.device:
            raise ValueError(f"collective on a tensor on {tensor.device}; the process group runs on {self.device}")
        if self.enabled:
            dist.all_reduce(tensor)
        return tensor

    def any(self, flag: bool) -> bool:
        """True on every rank when it is true on any rank (a host sync: call it once a step at most)."""
        if not self.enabled:
            return flag
        return bool(self.sum(torch.tensor([1.0 if flag else 0.0], device=self.device)).item())


def launched_by_torchrun() -> bool:
    return "RANK" in os.environ and "WORLD_SIZE" in os.environ and "MASTER_ADDR" in os.environ


def init_distributed(device: torch.device, timeout_s: float | None = None) -> Dist:
    """Join the process group torchrun describes, or run alone.

    ``timeout_s`` bounds how long a collective may wait for a rank that is
    busy elsewhere (rank 0 training the tokenizer or evaluating): past it the
    job fails with a message instead of hanging, and before it no watchdog
    kills a job whose main rank is merely slow.
    """
    if not launched_by_torchrun():
        return Dist(device=device)
    rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if not dist.is_initialized():
        kwargs = {"timeout": datetime.timedelta(seconds=timeout_s)} if timeout_s else {}
        if device.type == "cuda":
            kwargs["device_id"] = device  # binds the group to this GPU (barriers and eager NCCL init)
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo", **kwargs)
    return Dist(rank, world, local_rank, device=device, joined=True)


def close_distributed() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def pick_device(requested: str | None, d: Dist | None = None) -> torch.device:
    if requested:
        device = torch.device(requested)
        if device.type == "cuda" and device.index is None:  # "cuda" under torchrun: this process's GPU
            device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        if device.type == "cuda":
            torch.cuda.set_device(device)
        return device
    if torch.cuda.is_available():
        local = int(os.environ.get("LOCAL_RANK", "0"))
        torch.cuda.set_device(local)
        return torch.device("cuda", local)
    return torch.device("cpu")
