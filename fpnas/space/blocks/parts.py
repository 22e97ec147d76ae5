"""Pieces several block kinds share: sliced BatchNorm, activations, squeeze-and-excitation."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from fpnas.runtime.distributed import synced_batch_norm

ACT_FN = {"relu": F.relu, "swish": F.silu, "hswish": F.hardswish, "relu6": F.relu6}
GATE_FN = {"sigmoid": torch.sigmoid, "hard_sigmoid": F.hardsigmoid}
TIMM_ACT = {"relu": "re", "swish": "sw", "hswish": "hs", "relu6": "r6"}  # block-string suffixes
TIMM_ACT_LAYER = {"relu": "relu", "swish": "swish", "hswish": "hard_swish", "relu6": "relu6"}


def bn(x: torch.Tensor, norm: nn.BatchNorm2d, c: int, mode: str) -> torch.Tensor:
    """BatchNorm on the first ``c`` channels; updates only their running statistics.

    ``mode``: ``"module"`` (the module's train/eval behaviour), ``"batch"`` (batch statistics
    in eval mode, no update) or ``"sync"`` (training with statistics over all processes).
    """
    w, b = norm.weight[:c], norm.bias[:c]
    if mode == "sync":
        return synced_batch_norm(x, norm.running_mean[:c], norm.running_var[:c], w, b, norm.momentum, norm.eps)
    if mode == "batch":
        return F.batch_norm(x, None, None, w, b, True, norm.momentum, norm.eps)
    return F.batch_norm(x, norm.running_mean[:c], norm.running_var[:c], w, b, norm.training, norm.momentum, norm.eps)


def bn_state(norm: nn.BatchNorm2d, c: int, prefix: str) -> dict[str, torch.Tensor]:
    """The first ``c`` channels of a BatchNorm under ``<prefix>.<name>``."""
    return {
        f"{prefix}.weight": norm.weight[:c],
        f"{prefix}.bias": norm.bias[:c],
        f"{prefix}.running_mean": norm.running_mean[:c],
        f"{prefix}.running_var": norm.running_var[:c],
        f"{prefix}.num_batches_tracked": norm.num_batches_tracked,
    }


def centre(weight: torch.Tensor, kmax: int, k: int) -> torch.Tensor:
    """The centre ``k x k`` of a ``kmax x kmax`` kernel (smaller kernels share the largest one)."""
    off = (kmax - k) // 2
    return weight[:, :, off : off + k, off : off + k] if off else weight


# ---------------------------------------------------------------------- squeeze-and-excitation
def se_timm_suffix(space, cfg) -> str:
    """The ``_se<ratio>`` of a block string. timm divides the ratio by the expansion (SE width
    relative to the block input); pre-multiply for FBNet-style SE relative to the expanded width."""
    if not cfg.se_chs:
        return ""
    ratio = space.se_ratio if space.se_relative_to == "input" else space.se_ratio * cfg.expansion
    return f"_se{ratio!r}"


def add_se(block: nn.Module, width: int, reduced: int) -> None:
    """Max-size SE weights (timm ``SqueezeExcite``: reduce and expand 1x1 convs with bias)."""
    block.se_reduce = nn.Conv2d(width, reduced, 1)
    block.se_expand = nn.Conv2d(reduced, width, 1)


def se_forward(block: nn.Module, h: torch.Tensor, cfg, act, gate) -> torch.Tensor:
    rd, mid = cfg.se_chs, cfg.mid_chs
    s = h.mean((2, 3), keepdim=True)
    s = act(F.conv2d(s, block.se_reduce.weight[:rd, :mid], block.se_reduce.bias[:rd]))
    s = F.conv2d(s, block.se_expand.weight[:mid, :rd], block.se_expand.bias[:mid])
    return h * gate(s)


def se_state(block: nn.Module, cfg) -> dict[str, torch.Tensor]:
    rd, mid = cfg.se_chs, cfg.mid_chs
    return {
        "se.conv_reduce.weight": block.se_reduce.weight[:rd, :mid],
        "se.conv_reduce.bias": block.se_reduce.bias[:rd],
        "se.conv_expand.weight": block.se_expand.weight[:mid, :rd],
        "se.conv_expand.bias": block.se_expand.bias[:mid],
    }


def se_complexity(cfg) -> tuple[int, int]:
    """Two 1x1 convs with bias on the pooled vector."""
    if not cfg.se_chs:
        return 0, 0
    mid, rd = cfg.mid_chs, cfg.se_chs
    return 2 * mid * rd, 2 * mid * rd + rd + mid


def se_label(cfg) -> str:
    return f"SE {cfg.se_chs}" if cfg.se_chs else ""


def widest(space, slot, mid_channels) -> tuple[int, int]:
    """The widest expanded width and SE width over a slot's input widths and expansions: the sizes
    of its super-net weights (``mid_channels(space, in_chs, expansion)`` is the kind's)."""
    pairs = [(c, e) for c in slot.in_channels for e in slot.choices["expansion"]]
    return (
        max(mid_channels(space, c, e) for c, e in pairs),
        max(space.se_channels(c, mid_channels(space, c, e), e) for c, e in pairs),
    )
