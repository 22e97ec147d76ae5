"""Fused-MBConv (EfficientNetV2; timm's ``EdgeResidual``, block type ``er``).

A k x k expansion conv + BN + act replaces MBConv's 1x1 expansion and depthwise conv, then
optional SE and a 1x1 projection + BN. Kernel, expansion, activation and SE are searchable per
block as in MBConv; smaller kernels use the centre of the largest one.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import nn

from fpnas.space.blocks.base import ACT, EXPANSION, KERNEL, SE, BlockConfig, BlockKind, register, skip_suffix
from fpnas.space.blocks.parts import (
    ACT_FN,
    GATE_FN,
    TIMM_ACT,
    add_se,
    bn,
    bn_state,
    centre,
    se_complexity,
    se_forward,
    se_label,
    se_state,
    se_timm_suffix,
    widest,
)
from fpnas.space.choices import make_divisible


@register
class FusedMBConv(BlockKind):
    name = "fused"
    summary = "Fused-MBConv: k x k expansion conv + 1x1 projection (EfficientNetV2's early stages)"
    timm_type = "er"
    variables = (KERNEL, EXPANSION, ACT, SE)

    def mid_channels(self, space, in_chs: int, expansion: float) -> int:
        return make_divisible(in_chs * expansion, space.width_divisor)  # timm's EdgeResidual, also at 1

    def block_config(self, space, slot, in_chs, out_chs, values) -> BlockConfig:
        e = values["expansion"]
        mid = self.mid_channels(space, in_chs, e)
        se = space.se_channels(in_chs, mid, e) if values["se"] else 0
        return BlockConfig(
            in_chs,
            out_chs,
            mid,
            values["kernel"],
            e,
            values["act"],
            se,
            slot.stride,
            slot.in_size,
            op=self.name,
            residual=slot.options["residual"],
        )

    def init_super(self, block, space, slot) -> None:
        mid, rd = widest(space, slot, self.mid_channels)
        block.kmax = k = max(slot.kernel)
        block.conv_exp = nn.Conv2d(max(slot.in_channels), mid, k, padding=k // 2, bias=False)
        block.bn1 = nn.BatchNorm2d(mid)
        if 1 in slot.choices["se"]:
            add_se(block, mid, rd)
        block.conv_pwl = nn.Conv2d(mid, max(slot.out_channels), 1, bias=False)
        block.bn2 = nn.BatchNorm2d(max(slot.out_channels))
        block.gate = GATE_FN[space.se_gate]
        block.se_act = ACT_FN.get(space.se_act)  # None: the block's (se_act: block)

    def _exp_weight(self, block, cfg: BlockConfig):
        return centre(block.conv_exp.weight[: cfg.mid_chs, : cfg.in_chs], block.kmax, cfg.kernel)

    def super_forward(self, block, x, cfg: BlockConfig, bn_mode: str):
        act, mid = ACT_FN[cfg.act], cfg.mid_chs
        h = act(
            bn(F.conv2d(x, self._exp_weight(block, cfg), None, cfg.stride, cfg.kernel // 2), block.bn1, mid, bn_mode)
        )
        if cfg.se_chs:
            h = se_forward(block, h, cfg, block.se_act or act, block.gate)
        return bn(F.conv2d(h, block.conv_pwl.weight[: cfg.out_chs, :mid]), block.bn2, cfg.out_chs, bn_mode)

    def standalone_state(self, block, cfg: BlockConfig) -> dict:  # timm EdgeResidual: conv_exp, bn1, se, conv_pwl, bn2
        sd = {
            "conv_exp.weight": self._exp_weight(block, cfg),
            "conv_pwl.weight": block.conv_pwl.weight[: cfg.out_chs, : cfg.mid_chs],
        }
        sd |= bn_state(block.bn1, cfg.mid_chs, "bn1") | bn_state(block.bn2, cfg.out_chs, "bn2")
        return sd | (se_state(block, cfg) if cfg.se_chs else {})

    def timm_block_string(self, space, cfg: BlockConfig) -> str:
        return (
            f"er_r1_k{cfg.kernel}_s{cfg.stride}_e{cfg.expansion!r}_c{cfg.out_chs}"
            + se_timm_suffix(space, cfg)
            + skip_suffix(cfg)
            + f"_n{TIMM_ACT[cfg.act]}"
        )

    def complexity(self, cfg: BlockConfig) -> tuple[int, int]:
        mid, a_out, k2 = cfg.mid_chs, cfg.out_size**2, cfg.kernel**2
        se_macs, se_params = se_complexity(cfg)
        macs = cfg.in_chs * mid * k2 * a_out + se_macs + mid * cfg.out_chs * a_out
        params = cfg.in_chs * mid * k2 + 2 * mid + se_params + mid * cfg.out_chs + 2 * cfg.out_chs
        return macs, params

    def activations(self, cfg: BlockConfig) -> int:
        a_out = cfg.out_size**2
        return 3 * cfg.mid_chs * a_out + (cfg.mid_chs * a_out if cfg.se_chs else 0) + 2 * cfg.out_chs * a_out

    def describe(self, cfg: BlockConfig) -> str:
        se = f" se{cfg.se_chs}" if cfg.se_chs else ""
        return f"er e{cfg.expansion:g} k{cfg.kernel} {cfg.in_chs}->{cfg.out_chs} s{cfg.stride} {cfg.act}{se}"

    def table_cells(self, cfg: BlockConfig) -> dict:
        return dict(
            op="er",
            kernel=cfg.kernel,
            expansion=cfg.expansion,
            act=cfg.act,
            attn=se_label(cfg),
            short=f"er k{cfg.kernel} e{cfg.expansion:g} {cfg.out_chs}",
        )
