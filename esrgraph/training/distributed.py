"""Multi-process training under ``torchrun`` (DistributedDataParallel).

Every rank builds the same global batch (same seed, same sampled negatives and
masks) and trains on its contiguous share of the rows; losses are normalised
by global counts and scaled by the world size, so that DDP's gradient average
equals the single-process gradient. Rank 0 validates, checkpoints and writes.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass

import numpy as np
import torch
import torch.distributed as dist

_finished = False


def finish() -> bool:
    """End multi-process training; returns True on rank 0 (or without torchrun).

    Afterwards this process works alone (e.g. rank 0 evaluates), even though
    torchrun's environment is still set.
    """
    global _finished
    rank = 0
    if dist.is_initialized():
        rank = dist.get_rank()
        dist.destroy_process_group()
    _finished = True
    return rank == 0


@dataclass
class DistContext:
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @classmethod
    def from_env(cls, device: torch.device) -> DistContext:
        world = int(os.environ.get("WORLD_SIZE", "1"))
        if world <= 1 or _finished:
            return cls()
        if not dist.is_initialized():
            # gloo for the CPU scalars every rank exchanges (flags, loss sums), NCCL for the GPU gradients
            dist.init_process_group("cpu:gloo,cuda:nccl" if device.type == "cuda" else "gloo")
        return cls(dist.get_rank(), world, int(os.environ.get("LOCAL_RANK", "0")))

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.world > 1

    def barrier(self) -> None:
        if self.active:
            dist.barrier()

    def broadcast(self, value: float) -> float:
        """Rank 0's value on every rank."""
        return self._exchange(value, lambda t: dist.broadcast(t, 0))

    def sum(self, value: float) -> float:
        """The sum of every rank's value, on every rank."""
        return self._exchange(value, dist.all_reduce)

    def _exchange(self, value: float, collective) -> float:
        if not self.active:
            return value
        tensor = torch.tensor([value], dtype=torch.float64)  # a CPU scalar: gloo carries it
        collective(tensor)
        return float(tensor.item())

    def broadcast_object(self, value):
        """Rank 0's picklable ``value`` on every rank."""
        if not self.active:
            return value
        box = [value]
        dist.broadcast_object_list(box, 0)
        return box[0]

    def gather_rows(self, rows: np.ndarray, counts: list[int]) -> list[np.ndarray] | None:
        """Every rank's float32 ``rows`` [counts[rank], d], in rank order on rank 0 (None on the others).

        Point-to-point over gloo, CPU tensors whatever the device: every rank knows every count, so
        nothing but the rows travels.
        """
        rows = np.ascontiguousarray(rows, dtype=np.float32)
        if not self.active:
            return [rows]
        if not self.is_main:
            if counts[self.rank]:
                dist.send(torch.from_numpy(rows), 0)
            return None
        out = [rows]
        for rank in range(1, self.world):
            buffer = torch.empty((counts[rank], rows.shape[1]), dtype=torch.float32)
            if counts[rank]:
                dist.recv(buffer, rank)
            out.append(buffer.numpy())
        return out

    def share(self, rows: int) -> slice:
        """This rank's contiguous share of a global batch of ``rows``."""
        per = -(-rows // self.world)
        return slice(self.rank * per, min((self.rank + 1) * per, rows))

    def no_sync(self, network: torch.nn.Module) -> contextlib.AbstractContextManager:
        """Gradients that wait for the next synchronised backward pass (a batch trained in parts)."""
        return network.no_sync() if self.active else contextlib.nullcontext()

    def wrap(self, model: torch.nn.Module, device: torch.device) -> torch.nn.Module:
        if not self.active:
            return model
        ids = [device.index] if device.type == "cuda" else None
        return torch.nn.parallel.DistributedDataParallel(model, device_ids=ids)
