"""The skip (kernel 0): an identity, or a 1x1 projection where the width or the stride changes.

The projection is mobile-vision's ``Identity`` op with a width change: a 1x1 conv (no bias) + BN +
ReLU at the block's stride, timm's ``cn_r1_k1``. Its cost depends only on the two widths, so block
costs stay a chain. Every kind's slot can hold it: the super-block registers its weights next to
the operator's.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import nn

from fpnas.space.blocks.base import BlockConfig, BlockKind, register
from fpnas.space.blocks.parts import bn, bn_state


@register
class Skip(BlockKind):
    name = "skip"
    summary = "an identity, or a 1x1 conv + BN + ReLU where the width or the stride changes (mobile-vision's Identity)"
    timm_type = "cn (k1), or no block"
    group_op = False

    def init_super(self, block, space, slot) -> None:
        block.skip_conv = nn.Conv2d(max(slot.in_channels), max(slot.out_channels), 1, bias=False)
        block.skip_bn = nn.BatchNorm2d(max(slot.out_channels))

    def super_forward(self, block, x, cfg: BlockConfig, bn_mode: str):
        h = F.conv2d(x, block.skip_conv.weight[: cfg.out_chs, : cfg.in_chs], None, cfg.stride)
        return F.relu(bn(h, block.skip_bn, cfg.out_chs, bn_mode))

    def standalone_state(self, block, cfg: BlockConfig) -> dict:  # timm ConvBnAct: conv, bn1
        return {"conv.weight": block.skip_conv.weight[: cfg.out_chs, : cfg.in_chs]} | bn_state(
            block.skip_bn, cfg.out_chs, "bn1"
        )

    def timm_block_string(self, space, cfg: BlockConfig) -> str:
        if cfg.identity:
            raise ValueError("an identity skip has no block string")
        return f"cn_r1_k1_s{cfg.stride}_c{cfg.out_chs}_nre"

    def complexity(self, cfg: BlockConfig) -> tuple[int, int]:
        if cfg.identity:
            return 0, 0
        return cfg.in_chs * cfg.out_chs * cfg.out_size**2, cfg.in_chs * cfg.out_chs + 2 * cfg.out_chs

    def activations(self, cfg: BlockConfig) -> int:
        return 0 if cfg.identity else 3 * cfg.out_chs * cfg.out_size**2

    def describe(self, cfg: BlockConfig) -> str:
        return f"skip ({cfg.in_chs}->{cfg.out_chs})"

    def table_cells(self, cfg: BlockConfig) -> dict:
        op = "skip 1x1" if cfg.projection_skip else "skip"
        return dict(op=op, kernel=0, expansion=None, act="", attn="", short=op)
