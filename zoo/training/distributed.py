"""Data-parallel training with ``torch.distributed`` (launched by ``torchrun``).

Each of the W processes takes its contiguous 1/W share of every global batch, computes the
loss on it, and the gradients are averaged over processes (one coalesced all-reduce per step)
before the optimiser step, so every process applies the same update as one process would on
the global batch (the losses are batch means and examples are independent: per-example norms
and latents, no batch statistics). Parameters are broadcast from rank 0 at the start.

Why not ``DistributedDataParallel``: one training step calls the module several times (PGD
on the first pass, then the clean and adversarial engine runs) through methods other than
``forward``, which DDP's reducer does not support; the explicit average is the same
arithmetic. Backend: NCCL on CUDA, gloo on CPU. Single-process runs (no ``WORLD_SIZE`` in the
environment) use ``Dist()`` whose operations are no-ops.

Launch, e.g. 8 GPUs on one node:
    torchrun --standalone --nproc-per-node 8 -m zoo.cli train cifar10 --adversarial ...
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Iterable

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class Dist:
    """This process's place in the job: ``rank`` of ``world`` (``world == 1``: no-op)."""
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world > 1

    @property
    def is_main(self) -> bool:
        """True on the process that logs and writes checkpoints."""
        return self.rank == 0

    def device(self) -> torch.device:
        """This process's device: ``cuda:<local_rank>`` when CUDA is available, else CPU."""
        if torch.cuda.is_available():
            return torch.device("cuda", self.local_rank)
        return torch.device("cpu")

    def shard(self, *tensors: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """This rank's contiguous share of each (B, ...) tensor; B must divide by ``world``."""
        if not self.enabled:
            return tensors
        out = []
        for t in tensors:
            if t.shape[0] % self.world:
                raise ValueError(f"global batch {t.shape[0]} must be divisible by the "
                                 f"{self.world} processes (choose --batch-size accordingly)")
            size = t.shape[0] // self.world
            out.append(t[self.rank * size:(self.rank + 1) * size])
        return tuple(out)

    def average_gradients(self, params: Iterable[torch.nn.Parameter]) -> None:
        """Replace every ``.grad`` by its mean over processes (one coalesced all-reduce)."""
        if not self.enabled:
            return
        grads = [p.grad for p in params if p.grad is not None]
        if not grads:
            return
        flat = torch.cat([g.reshape(-1) for g in grads])
        dist.all_reduce(flat, op=dist.ReduceOp.SUM)
        flat /= self.world
        offset = 0
        for g in grads:
            g.copy_(flat[offset:offset + g.numel()].view_as(g))
            offset += g.numel()

    def broadcast_parameters(self, module: torch.nn.Module) -> None:
        """Copy rank 0's parameters and buffers to every process."""
        if not self.enabled:
            return
        for tensor in list(module.parameters()) + list(module.buffers()):
            dist.broadcast(tensor.data, src=0)

    def mean(self, value: float) -> float:
        """The mean of a per-process scalar (e.g. the loss, for logging)."""
        if not self.enabled:
            return value
        t = torch.tensor([float(value)], dtype=torch.float64)
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
        return float(t) / self.world


def init_from_env() -> Dist:
    """Join the process group ``torchrun`` describes (``RANK``, ``WORLD_SIZE``,
    ``LOCAL_RANK``, ``MASTER_ADDR``/``PORT``); ``Dist()`` when not launched by it."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Dist()
    rank, local = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    backend = "nccl" if torch.cuda.is_available() else "gloo"
    if backend == "nccl":
        torch.cuda.set_device(local)
    if not dist.is_initialized():
        dist.init_process_group(backend=backend)
    return Dist(rank=rank, world=world, local_rank=local)


def shutdown(info: Dist) -> None:
    """Leave the process group (no-op for a single process). Every rank first waits at a
    barrier, so no rank tears the group down -- rank 0 also hosts the rendezvous store --
    while another is still communicating with it."""
    if info.enabled and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


class NullLog:
    """Stands in for ``JsonlLog`` on the processes that do not log (rank > 0)."""

    def write(self, event: str, **fields) -> None:
        pass
