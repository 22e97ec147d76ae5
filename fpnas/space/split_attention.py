"""Split-attention MBConv (FP-NAS Fig. 2) as a standalone block.

After the 1x1 expansion, r depthwise convs run on the same expanded tensor; their sum is
pooled, passed through FC -> BN/ReLU -> FC to r x C logits, a softmax over the splits (a
sigmoid when r = 1, i.e. SE) weighs the splits, and a 1x1 conv projects. timm's ``SplitAttn``
does not fit: it is one grouped conv over radix x groups input slices (ResNeSt), not r
depthwise convs on one shared tensor; its ``RadixSoftmax`` is reused.
"""
from __future__ import annotations

import torch
from torch import nn


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

    def __init__(self, in_chs: int, out_chs: int, mid_chs: int, kernel: int, stride: int, act_layer,
                 splits: int, attn_chs: int, separable: bool, drop_path_rate: float = 0.0):
        super().__init__()
        from timm.layers import BatchNormAct2d, DropPath, create_conv2d

        self.has_skip = stride == 1 and in_chs == out_chs
        if not separable:
            self.conv_pw = create_conv2d(in_chs, mid_chs, 1)
            self.bn1 = BatchNormAct2d(mid_chs, act_layer=act_layer)
        self.conv_dw = nn.ModuleList(create_conv2d(mid_chs, mid_chs, kernel, stride=stride, depthwise=True)
                                     for _ in range(splits))
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
