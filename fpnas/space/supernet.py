"""Weight-shared super-net: max-size weights, sliced per sampled architecture.

Only the sampled path computes: widths are the leading channels of the max-size weights,
smaller kernels the centre of the largest kernel. Each block's kind (:mod:`fpnas.space.blocks`)
mirrors its standalone timm block op for op, so the output for an architecture equals that of
the standalone model built from it with :meth:`SuperNet.standalone_state_dict`.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from fpnas.space.blocks import BLOCK_KINDS
from fpnas.space.blocks.parts import ACT_FN, bn, bn_state
from fpnas.space.builder import block_positions
from fpnas.space.spec import BlockConfig, BlockSlot, SearchSpace


class SuperBlock(nn.Module):
    """All choices of one block position: the max-size weights of its kind and of its skip.

    The kinds register their weights on this module itself (flat names such as ``conv_pw``), so
    checkpoints keep their keys whatever the kind; forward and weight export ask the block's kind.
    """

    def __init__(self, space: SearchSpace, slot: BlockSlot):
        super().__init__()
        self.op = slot.op
        if slot.can_project_skip:
            BLOCK_KINDS["skip"].init_super(self, space, slot)
        slot.kind.init_super(self, space, slot)

    def forward(self, x: torch.Tensor, cfg: BlockConfig, bn_mode: str) -> torch.Tensor:
        if cfg.identity:
            return x
        h = cfg.kind.super_forward(self, x, cfg, bn_mode)
        return h + x if cfg.has_residual else h

    def standalone_state(self, cfg: BlockConfig) -> dict[str, torch.Tensor]:
        """This block's weights for ``cfg`` under the standalone block's parameter names."""
        return cfg.kind.standalone_state(self, cfg)


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
        self.conv_stem = nn.Conv2d(
            space.in_chans,
            space.stem_channels,
            space.stem_kernel,
            space.stem_stride,
            space.stem_kernel // 2,
            bias=False,
        )
        self.bn1 = nn.BatchNorm2d(space.stem_channels)
        self.blocks = nn.ModuleList(SuperBlock(space, slot) for slot in space.blocks)
        if space.head_channels:
            self.conv_head = nn.Conv2d(max(space.last_channels), space.head_channels, 1, bias=False)
            self.bn2 = nn.BatchNorm2d(space.head_channels)
            features = space.head_channels
            if space.head_pool_channels:  # linear + act after pooling
                self.head_fc = nn.Conv2d(space.head_channels, space.head_pool_channels, 1, bias=space.head_pool_bias)
                features = space.head_pool_channels
        else:  # MobileNetV3's head: pooling, then conv_head (over the last width) + act
            last, features = max(space.last_channels), space.head_pool_channels
            self.conv_head = nn.Conv2d(last, features, 1, bias=space.head_pool_bias)
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
        x = self.act(bn(self.conv_stem(x), self.bn1, self.bn1.num_features, bn_mode))
        for block, cfg in zip(self.blocks, configs):
            x = block(x, cfg, bn_mode)
        last = configs[-1].out_chs
        if not self.space.head_channels:  # MobileNetV3's head
            x = F.conv2d(x.mean((2, 3), keepdim=True), self.conv_head.weight[:, :last], self.conv_head.bias)
            return self.classifier(self.act(x).flatten(1))
        x = F.conv2d(x, self.conv_head.weight[:, :last])
        x = self.act(bn(x, self.bn2, self.bn2.num_features, bn_mode))
        x = x.mean((2, 3))
        if self.space.head_pool_channels:
            x = self.act(self.head_fc(x[:, :, None, None])).flatten(1)
        return self.classifier(x)

    @torch.no_grad()
    def standalone_state_dict(self, choice_idx: Sequence[int]) -> dict[str, torch.Tensor]:
        """Weights of one architecture, named as in :class:`~fpnas.space.builder.StandaloneNet`."""
        sd = {"conv_stem.weight": self.conv_stem.weight}
        sd |= bn_state(self.bn1, self.bn1.num_features, "bn1")
        configs = self.space.resolve(choice_idx)
        for pos, block, cfg in zip(block_positions(self.space, configs), self.blocks, configs):
            if pos is not None:
                sd |= {f"blocks.{pos[0]}.{pos[1]}.{k}": v for k, v in block.standalone_state(cfg).items()}
        sd["conv_head.weight"] = self.conv_head.weight[:, : configs[-1].out_chs]
        if not self.space.head_channels:  # MobileNetV3's head: conv_head after pooling, no BN
            sd |= {"conv_head.bias": self.conv_head.bias} if self.conv_head.bias is not None else {}
        else:
            sd |= bn_state(self.bn2, self.bn2.num_features, "bn2")
            if self.space.head_pool_channels:
                sd |= {f"head_fc.{k}": v for k, v in self.head_fc.state_dict().items()}
        sd |= {"classifier.weight": self.classifier.weight, "classifier.bias": self.classifier.bias}
        return {k: v.detach().clone().contiguous() for k, v in sd.items()}
