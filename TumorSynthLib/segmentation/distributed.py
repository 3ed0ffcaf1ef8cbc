"""Distributed data-parallel training under ``torchrun``.

``torchrun --nproc-per-node N -m TumorSynthLib.cli train ...`` starts N copies of the same
command; torchrun sets ``WORLD_SIZE``, ``RANK``, ``LOCAL_RANK``, ``MASTER_ADDR`` and
``MASTER_PORT``. ``init_distributed`` joins the process group (gloo on CPU, NCCL on GPU);
every rank trains on its shard of each epoch (``pipeline.EpochSampler``) and DDP averages the
gradients, so all ranks hold identical weights after every step. Only rank 0 writes
checkpoints and events. A stop request on any rank (signal, time budget) is agreed on by all
ranks through ``any_rank`` so they leave the loop at the same step.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from .device import resolve_device


@dataclass
class DistContext:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")
    enabled: bool = False

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def launched_by_torchrun() -> bool:
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def init_distributed(device_preference: str = "auto") -> DistContext:
    """The context of this process; joins the process group when started by torchrun."""
    if not launched_by_torchrun():
        return DistContext(device=resolve_device(device_preference))
    rank = int(os.environ["RANK"])
    local_rank = int(os.environ.get("LOCAL_RANK", rank))
    device = resolve_device(device_preference, local_rank)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    return DistContext(rank=rank, world_size=dist.get_world_size(), local_rank=local_rank,
                       device=device, enabled=True)


def wrap_model(model: torch.nn.Module, ctx: DistContext) -> torch.nn.Module:
    """DistributedDataParallel around ``model`` when distributed, else ``model``."""
    if not ctx.enabled:
        return model
    from torch.nn.parallel import DistributedDataParallel

    ids = [ctx.device.index] if ctx.device.type == "cuda" else None
    return DistributedDataParallel(model, device_ids=ids)


def unwrap(model: torch.nn.Module) -> torch.nn.Module:
    return model.module if hasattr(model, "module") else model


def any_rank(flag: bool, ctx: DistContext) -> bool:
    """True on every rank when ``flag`` is true on at least one."""
    if not ctx.enabled:
        return bool(flag)
    t = torch.tensor([1.0 if flag else 0.0], device=ctx.device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item() > 0)


def mean_over_ranks(value: float, ctx: DistContext) -> float:
    if not ctx.enabled:
        return float(value)
    t = torch.tensor([float(value)], device=ctx.device)
    dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return float(t.item()) / ctx.world_size


def barrier(ctx: DistContext) -> None:
    if ctx.enabled:
        dist.barrier()


def shutdown(ctx: DistContext) -> None:
    if ctx.enabled and dist.is_initialized():
        dist.destroy_process_group()


__all__ = ["DistContext", "init_distributed", "wrap_model", "unwrap", "any_rank",
           "mean_over_ranks", "barrier", "shutdown", "launched_by_torchrun"]
