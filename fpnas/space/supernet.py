"""Weight-shared super-net: max-size weights, sliced per sampled architecture.

Only the sampled path computes: widths are the leading channels of the max-size weights,
smaller kernels the centre of the largest kernel. Each block mirrors timm's InvertedResidual
(or DepthwiseSeparableConv when expansion is 1) op for op, so the output for an architecture
equals that of the standalone model built from it with :meth:`SuperNet.standalone_state_dict`.
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from fpnas.space.builder import block_positions
from fpnas.space.spec import BlockConfig, BlockSlot, SearchSpace

ACT_FN = {"relu": F.relu, "swish": F.silu, "hswish": F.hardswish, "relu6": F.relu6}
GATE_FN = {"sigmoid": torch.sigmoid, "hard_sigmoid": F.hardsigmoid}


def _bn(x: torch.Tensor, bn: nn.BatchNorm2d, c: int, mode: str) -> torch.Tensor:
    """BatchNorm on the first ``c`` channels; updates only their running statistics.

    ``mode``: ``"module"`` (the module's train/eval behaviour), ``"batch"`` (batch statistics
    in eval mode, no update) or ``"sync"`` (training with statistics over all processes).
    """
    w, b = bn.weight[:c], bn.bias[:c]
    if mode == "sync":
        from fpnas.distributed import synced_batch_norm

        return synced_batch_norm(x, bn.running_mean[:c], bn.running_var[:c], w, b, bn.momentum, bn.eps)
    if mode == "batch":
        return F.batch_norm(x, None, None, w, b, True, bn.momentum, bn.eps)
    return F.batch_norm(x, bn.running_mean[:c], bn.running_var[:c], w, b, bn.training, bn.momentum, bn.eps)


def _bn_state(bn: nn.BatchNorm2d, c: int) -> dict[str, torch.Tensor]:
    return {"weight": bn.weight[:c], "bias": bn.bias[:c], "running_mean": bn.running_mean[:c],
            "running_var": bn.running_var[:c], "num_batches_tracked": bn.num_batches_tracked}


class SuperBlock(nn.Module):
    """All choices of one MBConv position, holding the max-size weights."""

    def __init__(self, space: SearchSpace, slot: BlockSlot):
        super().__init__()
        self.op = slot.op
        if slot.can_project_skip:  # mobile-vision's Identity with a width change: 1x1 conv + BN + ReLU
            self.skip_conv = nn.Conv2d(max(slot.in_channels), max(slot.out_channels), 1, bias=False)
            self.skip_bn = nn.BatchNorm2d(max(slot.out_channels))
        if slot.op == "conv":  # timm ConvBnAct: kxk conv (centre slices for smaller k) + BN + act
            self.kmax = k = max(slot.kernel)
            self.conv = nn.Conv2d(max(slot.in_channels), max(slot.out_channels), k, padding=k // 2, bias=False)
            self.bn1 = nn.BatchNorm2d(max(slot.out_channels))
            return
        mids = [space.mid_channels(c, e) for c in slot.in_channels for e in slot.expansion]
        dw = max(mids)
        cin, cout, k = max(slot.in_channels), max(slot.out_channels), max(slot.kernel)
        self.kmax = k
        self.conv_pw = nn.Conv2d(cin, dw, 1, bias=False) if any(e != 1 for e in slot.expansion) else None
        self.bn1 = nn.BatchNorm2d(dw) if self.conv_pw is not None else None
        self.conv_dw = nn.Conv2d(dw, dw, k, padding=k // 2, groups=dw, bias=False)
        self.bn2 = nn.BatchNorm2d(dw)
        if 1 in slot.se:
            rd = max(space.se_channels(c, space.mid_channels(c, e), e)
                     for c in slot.in_channels for e in slot.expansion)
            self.se_reduce = nn.Conv2d(dw, rd, 1)
            self.se_expand = nn.Conv2d(rd, dw, 1)
        self.max_splits = max(slot.splits)
        if self.max_splits:  # split i >= 1 has its own depthwise conv + BN, shared by every r > i
            self.conv_dw_splits = nn.ModuleList(nn.Conv2d(dw, dw, k, padding=k // 2, groups=dw, bias=False)
                                                for _ in range(self.max_splits - 1))
            self.bn_dw_splits = nn.ModuleList(nn.BatchNorm2d(dw) for _ in range(self.max_splits - 1))
            attn = max(space.se_channels(c, space.mid_channels(c, e), e)
                       for c in slot.in_channels for e in slot.expansion)
            self.attn_fc1 = nn.Conv2d(dw, attn, 1)
            self.attn_bn = nn.BatchNorm2d(attn)
            self.attn_fc2 = nn.Conv2d(attn, self.max_splits * dw, 1)  # rows: split-major, [split, channel]
        self.conv_pwl = nn.Conv2d(dw, cout, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(cout)
        self.gate = GATE_FN[space.se_gate]

    def conv_weight(self, cfg: BlockConfig) -> torch.Tensor:
        w = self.conv.weight[:cfg.out_chs, :cfg.in_chs]
        off = (self.kmax - cfg.kernel) // 2
        return w[:, :, off:off + cfg.kernel, off:off + cfg.kernel] if off else w

    def dw_weight(self, c: int, k: int, split: int = 0) -> torch.Tensor:
        conv = self.conv_dw if split == 0 else self.conv_dw_splits[split - 1]
        w = conv.weight[:c]
        off = (self.kmax - k) // 2
        return w[:, :, off:off + k, off:off + k] if off else w

    def dw_bn(self, split: int) -> nn.BatchNorm2d:
        return self.bn2 if split == 0 else self.bn_dw_splits[split - 1]

    def attn_fc2_slices(self, r: int, c: int, a: int) -> tuple[torch.Tensor, torch.Tensor]:
        dw = self.conv_dw.weight.shape[0]
        w = self.attn_fc2.weight.view(self.max_splits, dw, -1)[:r, :c, :a].reshape(r * c, a, 1, 1)
        b = self.attn_fc2.bias.view(self.max_splits, dw)[:r, :c].reshape(r * c)
        return w, b

    def split_attention(self, h: torch.Tensor, cfg: BlockConfig, act, bn_mode: str) -> torch.Tensor:
        """r depthwise convs on the shared tensor, weighted by attention over the splits."""
        r, mid, a = cfg.splits, cfg.mid_chs, cfg.attn_chs
        outs = [act(_bn(F.conv2d(h, self.dw_weight(mid, cfg.kernel, i), None, cfg.stride, cfg.kernel // 2,
                                 1, mid), self.dw_bn(i), mid, bn_mode)) for i in range(r)]
        total = outs[0] if r == 1 else torch.stack(outs).sum(0)
        g = F.conv2d(total.mean((2, 3), keepdim=True), self.attn_fc1.weight[:a, :mid], self.attn_fc1.bias[:a])
        g = F.conv2d(F.relu(_bn(g, self.attn_bn, a, bn_mode)), *self.attn_fc2_slices(r, mid, a))
        if r == 1:
            return outs[0] * torch.sigmoid(g)
        weights = torch.softmax(g.view(g.shape[0], r, mid, 1, 1), dim=1)
        return sum(weights[:, i] * out for i, out in enumerate(outs))

    def forward(self, x: torch.Tensor, cfg: BlockConfig, bn_mode: str) -> torch.Tensor:
        if cfg.identity:
            return x
        if cfg.skip:  # projection skip
            h = F.conv2d(x, self.skip_conv.weight[:cfg.out_chs, :cfg.in_chs], None, cfg.stride)
            return F.relu(_bn(h, self.skip_bn, cfg.out_chs, bn_mode))
        if cfg.conv:
            h = F.conv2d(x, self.conv_weight(cfg), None, cfg.stride, cfg.kernel // 2)
            h = ACT_FN[cfg.act](_bn(h, self.bn1, cfg.out_chs, bn_mode))
            return h + x if cfg.has_residual else h
        act, mid = ACT_FN[cfg.act], cfg.mid_chs
        h = x
        if not cfg.separable:
            h = act(_bn(F.conv2d(h, self.conv_pw.weight[:mid, :cfg.in_chs]), self.bn1, mid, bn_mode))
        if cfg.splits:
            h = self.split_attention(h, cfg, act, bn_mode)
        else:
            h = F.conv2d(h, self.dw_weight(mid, cfg.kernel), None, cfg.stride, cfg.kernel // 2, 1, mid)
            h = act(_bn(h, self.bn2, mid, bn_mode))
        if cfg.se_chs:
            rd = cfg.se_chs
            s = h.mean((2, 3), keepdim=True)
            s = act(F.conv2d(s, self.se_reduce.weight[:rd, :mid], self.se_reduce.bias[:rd]))
            s = F.conv2d(s, self.se_expand.weight[:mid, :rd], self.se_expand.bias[:mid])
            h = h * self.gate(s)
        h = _bn(F.conv2d(h, self.conv_pwl.weight[:cfg.out_chs, :mid]), self.bn3, cfg.out_chs, bn_mode)
        return h + x if cfg.has_residual else h

    def standalone_state(self, cfg: BlockConfig) -> dict[str, torch.Tensor]:
        """This block's weights for ``cfg`` under timm's block parameter names."""
        mid = cfg.mid_chs
        if cfg.skip:  # projection skip = timm ConvBnAct (cn_r1_k1): conv, bn1
            return ({"conv.weight": self.skip_conv.weight[:cfg.out_chs, :cfg.in_chs]}
                    | {f"bn1.{k}": v for k, v in _bn_state(self.skip_bn, cfg.out_chs).items()})
        if cfg.conv:
            return {"conv.weight": self.conv_weight(cfg)} | {f"bn1.{k}": v for k, v in _bn_state(self.bn1, cfg.out_chs).items()}
        if cfg.splits:
            return self._split_attention_state(cfg)
        sd: dict[str, torch.Tensor] = {"conv_dw.weight": self.dw_weight(mid, cfg.kernel)}
        if cfg.se_chs:
            rd = cfg.se_chs
            sd |= {"se.conv_reduce.weight": self.se_reduce.weight[:rd, :mid],
                   "se.conv_reduce.bias": self.se_reduce.bias[:rd],
                   "se.conv_expand.weight": self.se_expand.weight[:mid, :rd],
                   "se.conv_expand.bias": self.se_expand.bias[:mid]}
        pwl = self.conv_pwl.weight[:cfg.out_chs, :mid]
        if cfg.separable:  # timm DepthwiseSeparableConv: conv_dw, bn1, se, conv_pw, bn2
            sd["conv_pw.weight"] = pwl
            sd |= {f"bn1.{k}": v for k, v in _bn_state(self.bn2, mid).items()}
            sd |= {f"bn2.{k}": v for k, v in _bn_state(self.bn3, cfg.out_chs).items()}
        else:  # timm InvertedResidual: conv_pw, bn1, conv_dw, bn2, se, conv_pwl, bn3
            sd["conv_pw.weight"] = self.conv_pw.weight[:mid, :cfg.in_chs]
            sd["conv_pwl.weight"] = pwl
            sd |= {f"bn1.{k}": v for k, v in _bn_state(self.bn1, mid).items()}
            sd |= {f"bn2.{k}": v for k, v in _bn_state(self.bn2, mid).items()}
            sd |= {f"bn3.{k}": v for k, v in _bn_state(self.bn3, cfg.out_chs).items()}
        return sd


    def _split_attention_state(self, cfg: BlockConfig) -> dict[str, torch.Tensor]:
        """Weights for :class:`~fpnas.space.split_attention.SplitAttnMBConv`."""
        mid, a, r = cfg.mid_chs, cfg.attn_chs, cfg.splits
        sd: dict[str, torch.Tensor] = {}
        if not cfg.separable:
            sd["conv_pw.weight"] = self.conv_pw.weight[:mid, :cfg.in_chs]
            sd |= {f"bn1.{k}": v for k, v in _bn_state(self.bn1, mid).items()}
        for i in range(r):
            sd[f"conv_dw.{i}.weight"] = self.dw_weight(mid, cfg.kernel, i)
            sd |= {f"bn2.{i}.{k}": v for k, v in _bn_state(self.dw_bn(i), mid).items()}
        w2, b2 = self.attn_fc2_slices(r, mid, a)
        sd |= {"attn.fc1.weight": self.attn_fc1.weight[:a, :mid], "attn.fc1.bias": self.attn_fc1.bias[:a],
               "attn.fc2.weight": w2, "attn.fc2.bias": b2}
        sd |= {f"attn.bn1.{k}": v for k, v in _bn_state(self.attn_bn, a).items()}
        sd["conv_pwl.weight"] = self.conv_pwl.weight[:cfg.out_chs, :mid]
        sd |= {f"bn3.{k}": v for k, v in _bn_state(self.bn3, cfg.out_chs).items()}
        return sd


class SuperNet(nn.Module):
    """The weight-shared super-net of a search space.

    ``eval_batch_stats``: in eval mode, normalise with the batch's statistics instead of the
    running ones. Running statistics are shared by every sampled path and fit none of them
    well, so scoring an architecture with batch statistics is the usual one-shot NAS choice.
    """

    def __init__(self, space: SearchSpace, eval_batch_stats: bool = True):
        super().__init__()
        from timm.models._efficientnet_builder import efficientnet_init_weights

        self.space = space
        self.eval_batch_stats = eval_batch_stats
        self.sync_bn = False  # set by the search when several processes train together
        self.conv_stem = nn.Conv2d(space.in_chans, space.stem_channels, space.stem_kernel,
                                   space.stem_stride, space.stem_kernel // 2, bias=False)
        self.bn1 = nn.BatchNorm2d(space.stem_channels)
        self.blocks = nn.ModuleList(SuperBlock(space, slot) for slot in space.blocks)
        self.conv_head = nn.Conv2d(max(space.last_channels), space.head_channels, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(space.head_channels)
        features = space.head_channels
        if space.head_pool_channels:  # linear + act after pooling
            self.head_fc = nn.Conv2d(space.head_channels, space.head_pool_channels, 1, bias=space.head_pool_bias)
            features = space.head_pool_channels
        self.classifier = nn.Linear(features, space.num_classes)
        self.act = ACT_FN[space.act]
        efficientnet_init_weights(self)

    def forward(self, x: torch.Tensor, choice_idx: Sequence[int]) -> torch.Tensor:
        """Logits of the architecture given by one choice index per decision."""
        configs = self.space.resolve(choice_idx)
        if self.training:
            bn_mode = "sync" if self.sync_bn else "module"
        else:
            bn_mode = "batch" if self.eval_batch_stats else "module"
        x = self.act(_bn(self.conv_stem(x), self.bn1, self.bn1.num_features, bn_mode))
        for block, cfg in zip(self.blocks, configs):
            x = block(x, cfg, bn_mode)
        last = configs[-1].out_chs
        x = F.conv2d(x, self.conv_head.weight[:, :last])
        x = self.act(_bn(x, self.bn2, self.bn2.num_features, bn_mode))
        x = x.mean((2, 3))
        if self.space.head_pool_channels:
            x = self.act(self.head_fc(x[:, :, None, None])).flatten(1)
        return self.classifier(x)

    @torch.no_grad()
    def standalone_state_dict(self, choice_idx: Sequence[int]) -> dict[str, torch.Tensor]:
        """Weights of one architecture, named as in :class:`~fpnas.space.builder.StandaloneNet`."""
        sd = {"conv_stem.weight": self.conv_stem.weight}
        sd |= {f"bn1.{k}": v for k, v in _bn_state(self.bn1, self.bn1.num_features).items()}
        configs = self.space.resolve(choice_idx)
        for pos, block, cfg in zip(block_positions(self.space, configs), self.blocks, configs):
            if pos is not None:
                sd |= {f"blocks.{pos[0]}.{pos[1]}.{k}": v for k, v in block.standalone_state(cfg).items()}
        sd["conv_head.weight"] = self.conv_head.weight[:, :configs[-1].out_chs]
        sd |= {f"bn2.{k}": v for k, v in _bn_state(self.bn2, self.bn2.num_features).items()}
        if self.space.head_pool_channels:
            sd |= {f"head_fc.{k}": v for k, v in self.head_fc.state_dict().items()}
        sd |= {"classifier.weight": self.classifier.weight, "classifier.bias": self.classifier.bias}
        return {k: v.detach().clone().contiguous() for k, v in sd.items()}
