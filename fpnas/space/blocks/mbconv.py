"""MBConv: timm's ``InvertedResidual`` (``ir``), ``DepthwiseSeparableConv`` at expansion 1 (``ds``),
and FP-NAS's split-attention variant (``splits`` >= 1), all on one set of super-net weights.

1x1 expansion conv + BN + act, k x k depthwise conv + BN + act, optional SE (or split attention),
1x1 projection + BN. Smaller kernels use the centre of the largest kernel, narrower widths the
leading channels.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import nn

from fpnas.errors import ConfigError
from fpnas.space import choices as parse
from fpnas.space.blocks import split_attention as sa
from fpnas.space.blocks.base import ACT, EXPANSION, KERNEL, SE, BlockConfig, BlockKind, Variable, register, skip_suffix
from fpnas.space.blocks.parts import (
    ACT_FN,
    GATE_FN,
    TIMM_ACT,
    TIMM_ACT_LAYER,
    add_se,
    bn,
    bn_state,
    se_complexity,
    se_forward,
    se_label,
    se_state,
    se_timm_suffix,
    widest,
)
from fpnas.space.choices import make_divisible


@register
class MBConv(BlockKind):
    name = "mbconv"
    summary = "inverted residual; expansion 1 drops the 1x1 expansion conv (depthwise-separable)"
    timm_type = "ir, ds at expansion 1"
    variables = (
        KERNEL,
        EXPANSION,
        ACT,
        SE,
        Variable("splits", parse.splits, 0, doc="split attention r (FP-NAS Fig. 2): 0 = none, 1 = SE-like"),
    )

    def check_group(self, values: dict, options: dict, where: str) -> None:
        if 1 in values["se"] and max(values["splits"]) > 0:
            raise ConfigError(f"{where}: give either 'se' or 'splits' (split attention with 1 split is SE)")

    def separable_at(self, expansion: float) -> bool:
        """No 1x1 expansion conv at this expansion: timm's DepthwiseSeparableConv (``ds``)."""
        return expansion == 1

    def separable(self, cfg: BlockConfig) -> bool:
        return self.separable_at(cfg.expansion)

    def mid_channels(self, space, in_chs: int, expansion: float) -> int:
        return in_chs if self.separable_at(expansion) else make_divisible(in_chs * expansion, space.width_divisor)

    def block_config(self, space, slot, in_chs, out_chs, values) -> BlockConfig:
        e = values["expansion"]
        mid = self.mid_channels(space, in_chs, e)
        reduced = space.se_channels(in_chs, mid, e)
        return BlockConfig(
            in_chs,
            out_chs,
            mid,
            values["kernel"],
            e,
            values["act"],
            reduced if values["se"] else 0,
            slot.stride,
            slot.in_size,
            values["splits"],
            reduced if values["splits"] else 0,
            op=self.name,
            residual=slot.options["residual"],
        )

    # ------------------------------------------------------------------ super-net
    def init_super(self, block, space, slot) -> None:
        dw, rd = widest(space, slot, self.mid_channels)
        cin, cout, k = max(slot.in_channels), max(slot.out_channels), max(slot.kernel)
        block.kmax = k
        expands = not all(self.separable_at(e) for e in slot.choices["expansion"])
        block.conv_pw = nn.Conv2d(cin, dw, 1, bias=False) if expands else None
        block.bn1 = nn.BatchNorm2d(dw) if expands else None
        block.conv_dw = nn.Conv2d(dw, dw, k, padding=k // 2, groups=dw, bias=False)
        block.bn2 = nn.BatchNorm2d(dw)
        if 1 in slot.choices["se"]:
            add_se(block, dw, rd)
        block.max_splits = max(slot.choices["splits"])
        if block.max_splits:
            sa.add_split_weights(block, dw, k, block.max_splits, rd)
        block.conv_pwl = nn.Conv2d(dw, cout, 1, bias=False)
        block.bn3 = nn.BatchNorm2d(cout)
        block.gate = GATE_FN[space.se_gate]
        block.se_act = ACT_FN.get(space.se_act)  # None: the block's (se_act: block)

    def super_forward(self, block, x, cfg: BlockConfig, bn_mode: str):
        act, mid = ACT_FN[cfg.act], cfg.mid_chs
        h = x
        if not self.separable(cfg):
            h = act(bn(F.conv2d(h, block.conv_pw.weight[:mid, : cfg.in_chs]), block.bn1, mid, bn_mode))
        if cfg.splits:
            h = sa.super_forward(block, h, cfg, act, bn_mode)
        else:
            h = F.conv2d(h, sa.dw_weight(block, mid, cfg.kernel), None, cfg.stride, cfg.kernel // 2, 1, mid)
            h = act(bn(h, block.bn2, mid, bn_mode))
        if cfg.se_chs:
            h = se_forward(block, h, cfg, block.se_act or act, block.gate)
        return bn(F.conv2d(h, block.conv_pwl.weight[: cfg.out_chs, :mid]), block.bn3, cfg.out_chs, bn_mode)

    def standalone_state(self, block, cfg: BlockConfig) -> dict:
        mid = cfg.mid_chs
        if cfg.splits:
            return sa.standalone_state(block, cfg, self.separable(cfg))
        sd = {"conv_dw.weight": sa.dw_weight(block, mid, cfg.kernel)}
        if cfg.se_chs:
            sd |= se_state(block, cfg)
        pwl = block.conv_pwl.weight[: cfg.out_chs, :mid]
        if self.separable(cfg):  # timm DepthwiseSeparableConv: conv_dw, bn1, se, conv_pw, bn2
            sd["conv_pw.weight"] = pwl
            sd |= bn_state(block.bn2, mid, "bn1") | bn_state(block.bn3, cfg.out_chs, "bn2")
        else:  # timm InvertedResidual: conv_pw, bn1, conv_dw, bn2, se, conv_pwl, bn3
            sd["conv_pw.weight"] = block.conv_pw.weight[:mid, : cfg.in_chs]
            sd["conv_pwl.weight"] = pwl
            sd |= bn_state(block.bn1, mid, "bn1") | bn_state(block.bn2, mid, "bn2")
            sd |= bn_state(block.bn3, cfg.out_chs, "bn3")
        return sd

    # ------------------------------------------------------------------ standalone model
    def timm_block_string(self, space, cfg: BlockConfig) -> str:
        if self.separable(cfg):
            s = f"ds_r1_k{cfg.kernel}_s{cfg.stride}_c{cfg.out_chs}"
        else:
            s = f"ir_r1_k{cfg.kernel}_s{cfg.stride}_e{cfg.expansion!r}_c{cfg.out_chs}"
        return s + ("" if cfg.splits else se_timm_suffix(space, cfg)) + skip_suffix(cfg) + f"_n{TIMM_ACT[cfg.act]}"

    def standalone_block(self, space, cfg: BlockConfig, drop_path_rate: float):
        """timm has no split-attention MBConv: it replaces the block timm built from the string."""
        if not cfg.splits:
            return None
        from timm.layers import get_act_layer

        return sa.SplitAttnMBConv(
            cfg.in_chs,
            cfg.out_chs,
            cfg.mid_chs,
            cfg.kernel,
            cfg.stride,
            get_act_layer(TIMM_ACT_LAYER[cfg.act]),
            cfg.splits,
            cfg.attn_chs,
            self.separable(cfg),
            drop_path_rate,
            residual=cfg.residual,
        )

    # ------------------------------------------------------------------ complexity twin
    def complexity(self, cfg: BlockConfig) -> tuple[int, int]:
        h_in, h_out, mid = cfg.in_size, cfg.out_size, cfg.mid_chs
        macs = params = 0
        if not self.separable(cfg):  # 1x1 expansion conv + BN
            macs += cfg.in_chs * mid * h_in * h_in
            params += cfg.in_chs * mid + 2 * mid
        r = max(1, cfg.splits)  # depthwise convs (+ BN) on the shared expanded tensor, one per split
        macs += r * mid * cfg.kernel * cfg.kernel * h_out * h_out
        params += r * (mid * cfg.kernel * cfg.kernel + 2 * mid)
        for m, p in (se_complexity(cfg), sa.attention_complexity(cfg) if cfg.splits else (0, 0)):
            macs, params = macs + m, params + p
        macs += mid * cfg.out_chs * h_out * h_out  # 1x1 projection + BN
        params += mid * cfg.out_chs + 2 * cfg.out_chs
        return macs, params

    def activations(self, cfg: BlockConfig) -> int:
        a_in, a_out, mid, r = cfg.in_size**2, cfg.out_size**2, cfg.mid_chs, max(1, cfg.splits)
        n = 0 if self.separable(cfg) else 3 * mid * a_in  # 1x1 expansion: conv, BN, act
        n += r * 3 * mid * a_out  # depthwise conv(s), BN, act
        if cfg.se_chs or cfg.splits:
            n += mid * a_out  # gated (weighted) output
        return n + 2 * cfg.out_chs * a_out  # 1x1 projection: conv, BN

    # ------------------------------------------------------------------ description
    def describe(self, cfg: BlockConfig) -> str:
        kind = "ds" if self.separable(cfg) else f"ir e{cfg.expansion:g}"
        se = f" se{cfg.se_chs}" if cfg.se_chs else ""
        return f"{kind} k{cfg.kernel} {cfg.in_chs}->{cfg.out_chs} s{cfg.stride} {cfg.act}{se}"

    def table_cells(self, cfg: BlockConfig) -> dict:
        return dict(
            op="ds" if self.separable(cfg) else "ir",
            kernel=cfg.kernel,
            expansion=cfg.expansion,
            act=cfg.act,
            attn=sa.attention_label(cfg) if cfg.splits else se_label(cfg),
            short=f"k{cfg.kernel} e{cfg.expansion:g} {cfg.out_chs}",
        )


@register
class InvertedResidual(MBConv):
    """timm's ``ir`` at every expansion: expansion 1 keeps the 1x1 expansion conv (FBNet-C)."""

    name = "ir"
    summary = "inverted residual at every expansion; expansion 1 keeps the 1x1 expansion conv (FBNet-C)"
    timm_type = "ir"

    def separable_at(self, expansion: float) -> bool:
        return False
