"""Split-attention MBConv (FP-NAS Fig. 2): the standalone block and its super-net parts.

After the 1x1 expansion, r depthwise convs run on the same expanded tensor; their sum is
pooled, passed through FC -> BN/ReLU -> FC to r x C logits, a softmax over the splits (a
sigmoid when r = 1, i.e. SE) weighs the splits, and a 1x1 conv projects. timm's ``SplitAttn``
does not fit: it is one grouped conv over radix x groups input slices (ResNeSt), not r
depthwise convs on one shared tensor; its ``RadixSoftmax`` is reused.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from fpnas.space.blocks.parts import bn, bn_state, centre


class SplitAttention(nn.Module):
    """Weights r same-shaped feature maps by a softmax over splits (sigmoid for one split)."""

    def __init__(self, channels: int, splits: int, attn_chs: int):
        super().__init__()
        from timm.layers import BatchNormAct2d
        from timm.layers.split_attn import RadixSoftmax

        self.splits = splits
        self.fc1 = nn.Conv2d(channels, attn_chs, 1)
        self.bn1 = BatchNormAct2d(attn_chs, act_layer=nn.ReLU)
        self.fc2 = nn.Conv2d(attn_chs, channels * splits, 1)
        self.rsoftmax = RadixSoftmax(splits, 1)

    def forward(self, xs: list[torch.Tensor]) -> torch.Tensor:
        total = xs[0] if len(xs) == 1 else torch.stack(xs).sum(0)
        gate = self.fc2(self.bn1(self.fc1(total.mean((2, 3), keepdim=True))))
        b, c = total.shape[:2]
        weights = self.rsoftmax(gate).reshape(b, self.splits, c, 1, 1)
        return sum(weights[:, i] * x for i, x in enumerate(xs))


class SplitAttnMBConv(nn.Module):
    """Inverted residual (no expansion conv when ``separable``) with split attention."""

    def __init__(
        self,
        in_chs: int,
        out_chs: int,
        mid_chs: int,
        kernel: int,
        stride: int,
        act_layer,
        splits: int,
        attn_chs: int,
        separable: bool,
        drop_path_rate: float = 0.0,
        residual: bool = True,
    ):
        super().__init__()
        from timm.layers import BatchNormAct2d, DropPath, create_conv2d

        self.has_skip = residual and stride == 1 and in_chs == out_chs
        if not separable:
            self.conv_pw = create_conv2d(in_chs, mid_chs, 1)
            self.bn1 = BatchNormAct2d(mid_chs, act_layer=act_layer)
        self.conv_dw = nn.ModuleList(
            create_conv2d(mid_chs, mid_chs, kernel, stride=stride, depthwise=True) for _ in range(splits)
        )
        self.bn2 = nn.ModuleList(BatchNormAct2d(mid_chs, act_layer=act_layer) for _ in range(splits))
        self.attn = SplitAttention(mid_chs, splits, attn_chs)
        self.conv_pwl = create_conv2d(mid_chs, out_chs, 1)
        self.bn3 = BatchNormAct2d(out_chs, apply_act=False)
        self.drop_path = DropPath(drop_path_rate) if drop_path_rate else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.bn1(self.conv_pw(x)) if hasattr(self, "conv_pw") else x
        h = self.attn([bn(conv(h)) for conv, bn in zip(self.conv_dw, self.bn2)])
        h = self.bn3(self.conv_pwl(h))
        return self.drop_path(h) + x if self.has_skip else h


# ---------------------------------------------------------------------- super-net parts of MBConv
# Split attention is an MBConv variable (``splits``): its weights live in the MBConv super-block,
# split i >= 1 with its own depthwise conv + BN shared by every r > i.
def add_split_weights(block: nn.Module, dw: int, kernel: int, max_splits: int, attn: int) -> None:
    block.conv_dw_splits = nn.ModuleList(
        nn.Conv2d(dw, dw, kernel, padding=kernel // 2, groups=dw, bias=False) for _ in range(max_splits - 1)
    )
    block.bn_dw_splits = nn.ModuleList(nn.BatchNorm2d(dw) for _ in range(max_splits - 1))
    block.attn_fc1 = nn.Conv2d(dw, attn, 1)
    block.attn_bn = nn.BatchNorm2d(attn)
    block.attn_fc2 = nn.Conv2d(attn, max_splits * dw, 1)  # rows: split-major, [split, channel]


def dw_weight(block: nn.Module, c: int, k: int, split: int = 0) -> torch.Tensor:
    conv = block.conv_dw if split == 0 else block.conv_dw_splits[split - 1]
    return centre(conv.weight[:c], block.kmax, k)


def dw_bn(block: nn.Module, split: int) -> nn.BatchNorm2d:
    return block.bn2 if split == 0 else block.bn_dw_splits[split - 1]


def attn_fc2_slices(block: nn.Module, r: int, c: int, a: int) -> tuple[torch.Tensor, torch.Tensor]:
    dw = block.conv_dw.weight.shape[0]
    w = block.attn_fc2.weight.view(block.max_splits, dw, -1)[:r, :c, :a].reshape(r * c, a, 1, 1)
    b = block.attn_fc2.bias.view(block.max_splits, dw)[:r, :c].reshape(r * c)
    return w, b


def super_forward(block: nn.Module, h: torch.Tensor, cfg, act, bn_mode: str) -> torch.Tensor:
    """r depthwise convs on the shared tensor, weighted by attention over the splits."""
    r, mid, a = cfg.splits, cfg.mid_chs, cfg.attn_chs
    outs = [
        act(
            bn(
                F.conv2d(h, dw_weight(block, mid, cfg.kernel, i), None, cfg.stride, cfg.kernel // 2, 1, mid),
                dw_bn(block, i),
                mid,
                bn_mode,
            )
        )
        for i in range(r)
    ]
    total = outs[0] if r == 1 else torch.stack(outs).sum(0)
    g = F.conv2d(total.mean((2, 3), keepdim=True), block.attn_fc1.weight[:a, :mid], block.attn_fc1.bias[:a])
    g = F.conv2d(F.relu(bn(g, block.attn_bn, a, bn_mode)), *attn_fc2_slices(block, r, mid, a))
    if r == 1:
        return outs[0] * torch.sigmoid(g)
    weights = torch.softmax(g.view(g.shape[0], r, mid, 1, 1), dim=1)
    return sum(weights[:, i] * out for i, out in enumerate(outs))


def standalone_state(block: nn.Module, cfg, separable: bool) -> dict[str, torch.Tensor]:
    """Weights for :class:`SplitAttnMBConv`."""
    mid, a, r = cfg.mid_chs, cfg.attn_chs, cfg.splits
    sd: dict[str, torch.Tensor] = {}
    if not separable:
        sd["conv_pw.weight"] = block.conv_pw.weight[:mid, : cfg.in_chs]
        sd |= bn_state(block.bn1, mid, "bn1")
    for i in range(r):
        sd[f"conv_dw.{i}.weight"] = dw_weight(block, mid, cfg.kernel, i)
        sd |= bn_state(dw_bn(block, i), mid, f"bn2.{i}")
    w2, b2 = attn_fc2_slices(block, r, mid, a)
    sd |= {
        "attn.fc1.weight": block.attn_fc1.weight[:a, :mid],
        "attn.fc1.bias": block.attn_fc1.bias[:a],
        "attn.fc2.weight": w2,
        "attn.fc2.bias": b2,
    }
    sd |= bn_state(block.attn_bn, a, "attn.bn1")
    sd["conv_pwl.weight"] = block.conv_pwl.weight[: cfg.out_chs, :mid]
    sd |= bn_state(block.bn3, cfg.out_chs, "bn3")
    return sd


def attention_complexity(cfg) -> tuple[int, int]:
    """FC (bias) + BN + ReLU, then FC (bias) to r x mid logits; the r depthwise convs are MBConv's."""
    mid, a, r = cfg.mid_chs, cfg.attn_chs, cfg.splits
    return mid * a + a * r * mid, mid * a + a + 2 * a + a * r * mid + r * mid


def attention_label(cfg) -> str:
    return f"SA r={cfg.splits}" if cfg.splits > 1 else "SA r=1 (SE)"
