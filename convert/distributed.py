"""Several processes through ``torchrun`` (PyTorch DDP): one per GPU, or a few on a CPU.

``torchrun`` tells each process its ``RANK``, ``LOCAL_RANK`` and ``WORLD_SIZE``; a process started
without them is a world of one and needs no process group. GPUs talk through NCCL, CPUs through
gloo. Process 0 alone writes files and shows progress; the others wait for it at the barriers.
"""

from __future__ import annotations

import datetime as dt
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from edge.core.errors import AslEdgeError

TIMEOUT = dt.timedelta(minutes=30)  # long enough for process 0 to export and check the bundle


class DeviceError(AslEdgeError):
    """The requested device is not available here."""


@dataclass(frozen=True)
class World:
    rank: int
    local_rank: int
    size: int
    device: torch.device

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.size > 1

    def barrier(self) -> None:
        if self.distributed:
            dist.barrier()

    def agree(self, value: float) -> bool:
        """Whether every process holds the same ``value`` (e.g. a digest of its weights)."""
        if not self.distributed:
            return True
        mine = torch.tensor([value], dtype=torch.float64, device=self.device)
        values = [torch.zeros_like(mine) for _ in range(self.size)]
        dist.all_gather(values, mine)
        return all(bool(torch.equal(v, mine)) for v in values)

    def close(self) -> None:
        if self.distributed and dist.is_initialized():
            dist.destroy_process_group()


def choose_device(wanted: str, local_rank: int = 0) -> torch.device:
    """``auto``: CUDA when present, else the CPU; ``cuda`` is refused when there is none."""
    if wanted == "cpu" or (wanted == "auto" and not torch.cuda.is_available()):
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise DeviceError("--device cuda: PyTorch sees no CUDA GPU here (use --device cpu or auto)")
    return torch.device("cuda", local_rank % torch.cuda.device_count())


def join_world(wanted_device: str) -> World:
    """This process's place among those ``torchrun`` started (a world of one without it)."""
    size = int(os.environ.get("WORLD_SIZE", "1"))
    rank, local_rank = int(os.environ.get("RANK", "0")), int(os.environ.get("LOCAL_RANK", "0"))
    device = choose_device(wanted_device, local_rank)
    if size > 1 and not dist.is_initialized():
        if device.type == "cuda":
            torch.cuda.set_device(device)
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo", timeout=TIMEOUT)
    return World(rank, local_rank, size, device)
