"""Multi-process pieces of the search: one gradient all-reduce per step, reduced likelihoods,
synchronised batch norm, and a DDP strategy without DistributedDataParallel's reducer.

DistributedDataParallel all-reduces after every backward pass; a search step runs K backward
passes (one per sampled architecture) and needs the importance weights of all processes
before it may weight them. So the search keeps DDP's process group, launcher and samplers
but not its wrapper: each sample's log-likelihood is all-reduced (a scalar), gradients are
accumulated locally with the global weights, and all-reduced once per step.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
from pytorch_lightning.strategies import DDPStrategy


def is_distributed() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def all_reduce_sum(tensor: torch.Tensor) -> torch.Tensor:
    """Sum over processes (in place; a no-op in one process)."""
    if is_distributed():
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor


class AllReduceStats:
    """Counts the gradient all-reduces of a run (for the DDP benchmark)."""

    calls = 0
    bytes = 0

    @classmethod
    def reset(cls) -> None:
        cls.calls = cls.bytes = 0


def average_gradients(params) -> None:
    """All-reduce (mean) every existing gradient in one flat buffer: one collective per step.

    Every process samples the same architectures, so the set of parameters with a gradient is
    the same everywhere; parameters off the sampled paths have none and cost nothing.
    """
    if not is_distributed():
        return
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat, op=dist.ReduceOp.SUM)
    flat /= dist.get_world_size()
    AllReduceStats.calls += 1
    AllReduceStats.bytes += flat.numel() * flat.element_size()
    offset = 0
    for g in grads:
        g.copy_(flat[offset : offset + g.numel()].view_as(g))
        offset += g.numel()


def sync_batch_stats(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, int]:
    """Mean and biased variance per channel over the batches of all processes (differentiable).

    One all-reduce of [sum, sum of squares] accumulated in float64 (exact enough to match a
    single process's batch norm to ~1e-7), plus the global element count per channel.
    """
    count = x.numel() // x.shape[1]
    stats = torch.cat([x.sum((0, 2, 3), dtype=torch.float64), (x * x).sum((0, 2, 3), dtype=torch.float64)])
    world = 1
    if is_distributed():
        from torch.distributed.nn.functional import all_reduce  # differentiable

        stats = all_reduce(stats, op=dist.ReduceOp.SUM)
        world = dist.get_world_size()
    total = count * world
    mean, sq = stats.chunk(2)
    mean = mean / total
    var = (sq / total - mean * mean).clamp_min(0)
    dtype = torch.promote_types(x.dtype, torch.float32)  # float32 statistics for bf16/fp16 activations
    return mean.to(dtype), var.to(dtype), total


def synced_batch_norm(x, running_mean, running_var, weight, bias, momentum: float, eps: float) -> torch.Tensor:
    """Training-mode batch norm with statistics over all processes (updates running stats).

    Normalises in at least float32 and returns ``x``'s dtype, as cuDNN's batch norm does under
    mixed precision."""
    mean, var, n = sync_batch_stats(x)
    if running_mean is not None:
        with torch.no_grad():
            running_mean.mul_(1 - momentum).add_(mean.detach().to(running_mean.dtype), alpha=momentum)
            running_var.mul_(1 - momentum).add_(
                (var.detach() * (n / max(n - 1, 1))).to(running_var.dtype), alpha=momentum
            )
    shape = (1, -1, 1, 1)
    out = (x.to(mean.dtype) - mean.view(shape)) * torch.rsqrt(var.view(shape) + eps) * weight.view(shape) + bias.view(
        shape
    )
    return out.to(x.dtype)


class SearchDDPStrategy(DDPStrategy):
    """DDP processes, launcher and collectives, without the DistributedDataParallel wrapper.

    Initial weights are broadcast from rank 0; gradients are averaged by the search module once
    per step (:func:`average_gradients`). Use ``strategy: ddp`` (torch DDP) for plain models.
    """

    def configure_ddp(self) -> None:
        if is_distributed():  # the same start on every process: weights, alpha, BN statistics
            with torch.no_grad():
                for tensor in [*self.model.parameters(), *self.model.buffers()]:
                    dist.broadcast(tensor, src=0)
