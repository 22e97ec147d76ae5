"""Plain conv: a k x k conv + BN + activation (timm ``ConvBnAct``, block type ``cn``)."""

from __future__ import annotations

import torch.nn.functional as F
from torch import nn

from fpnas.space.blocks.base import ACT, KERNEL, BlockConfig, BlockKind, register
from fpnas.space.blocks.parts import ACT_FN, TIMM_ACT, bn, bn_state, centre


@register
class Conv(BlockKind):
    name = "conv"
    summary = "k x k conv + BN + act (FBNetV2-F1's width-changing 1x1, EfficientNetV2's first block)"
    timm_type = "cn"
    variables = (KERNEL, ACT)

    def block_config(self, space, slot, in_chs, out_chs, values) -> BlockConfig:
        return BlockConfig(
            in_chs,
            out_chs,
            out_chs,
            values["kernel"],
            1,
            values["act"],
            0,
            slot.stride,
            slot.in_size,
            op=self.name,
            residual=slot.options["residual"],
        )

    def init_super(self, block, space, slot) -> None:
        block.kmax = k = max(slot.kernel)
        block.conv = nn.Conv2d(max(slot.in_channels), max(slot.out_channels), k, padding=k // 2, bias=False)
        block.bn1 = nn.BatchNorm2d(max(slot.out_channels))

    def _weight(self, block, cfg: BlockConfig):
        return centre(block.conv.weight[: cfg.out_chs, : cfg.in_chs], block.kmax, cfg.kernel)

    def super_forward(self, block, x, cfg: BlockConfig, bn_mode: str):
        h = F.conv2d(x, self._weight(block, cfg), None, cfg.stride, cfg.kernel // 2)
        return ACT_FN[cfg.act](bn(h, block.bn1, cfg.out_chs, bn_mode))

    def standalone_state(self, block, cfg: BlockConfig) -> dict:
        return {"conv.weight": self._weight(block, cfg)} | bn_state(block.bn1, cfg.out_chs, "bn1")

    def timm_block_string(self, space, cfg: BlockConfig) -> str:
        # timm's ConvBnAct has a residual only with the explicit 'skip' option
        return (
            f"cn_r1_k{cfg.kernel}_s{cfg.stride}_c{cfg.out_chs}"
            + ("_skip" if cfg.has_residual else "")
            + f"_n{TIMM_ACT[cfg.act]}"
        )

    def complexity(self, cfg: BlockConfig) -> tuple[int, int]:
        k2 = cfg.kernel * cfg.kernel
        return cfg.in_chs * cfg.out_chs * k2 * cfg.out_size**2, cfg.in_chs * cfg.out_chs * k2 + 2 * cfg.out_chs

    def activations(self, cfg: BlockConfig) -> int:
        return 3 * cfg.out_chs * cfg.out_size**2

    def describe(self, cfg: BlockConfig) -> str:
        return f"conv k{cfg.kernel} {cfg.in_chs}->{cfg.out_chs} s{cfg.stride} {cfg.act}"

    def table_cells(self, cfg: BlockConfig) -> dict:
        return dict(
            op="conv",
            kernel=cfg.kernel,
            expansion=None,
            act=cfg.act,
            attn="",
            short=f"conv k{cfg.kernel} {cfg.out_chs}",
        )
