"""Standalone builder: an architecture -> a plain ``nn.Module`` made of timm's MBConv blocks.

The model has timm's EfficientNet layout and parameter names (``conv_stem``, ``bn1``,
``blocks.<stage>.<i>``, ``conv_head``, ``bn2``, ``classifier``; with ``head.channels: 0`` timm's
MobileNetV3 head: ``conv_head`` after pooling, no ``bn2``), its blocks are built by timm's
``EfficientNetBuilder`` from the block strings of their kinds (:mod:`fpnas.space.blocks`), so
reference architectures match timm's models
parameter for parameter. timm's ``EfficientNet`` class itself is not used because it fixes the
stem stride at 2 and rounds every width to a multiple of 8, which small spaces must avoid.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial

import torch
from torch import nn

from fpnas.space.blocks.parts import TIMM_ACT_LAYER
from fpnas.space.choices import divisible_by
from fpnas.space.spec import BlockConfig, SearchSpace


def _keep_width(channels, *args, **kwargs):
    """Width rounding that keeps the width: the space already lists exact widths."""
    return channels


def timm_block_string(space: SearchSpace, cfg: BlockConfig) -> str:
    """timm's block notation for one resolved block (e.g. ``ir_r1_k5_s2_e3.0_c24_se0.75_nsw``)."""
    return cfg.kind.timm_block_string(space, cfg)


def block_positions(space: SearchSpace, configs: Sequence[BlockConfig]) -> list[tuple[int, int] | None]:
    """(stage, index) of each block in the standalone ``blocks.<stage>.<i>``; None for identity skips.

    A stage is a group (with the groups that continue it, ``same_stage``) with at least one block
    left: timm's builder cannot build an empty stage (possible when every block of a stride-1
    group is skipped)."""
    positions: list[tuple[int, int] | None] = []
    stage, i, group = -1, 0, None
    for slot, cfg in zip(space.blocks, configs):
        if cfg.identity:
            positions.append(None)
            continue
        if slot.stage != group:
            stage, i, group = stage + 1, 0, slot.stage
        positions.append((stage, i))
        i += 1
    return positions


def timm_arch_def(space: SearchSpace, choice_idx: Sequence[int]) -> list[list[str]]:
    """Block strings per stage (non-empty stage), identity skips left out."""
    stages: dict[int, list[str]] = {}
    for slot, cfg in zip(space.blocks, space.resolve(choice_idx)):
        if not cfg.identity:
            stages.setdefault(slot.stage, []).append(timm_block_string(space, cfg))
    return list(stages.values())


def _divisible_se(value: float, divisor: int, fn) -> int:
    return fn(int(value + 1e-6), divisor)


def timm_builder(space: SearchSpace, drop_path_rate: float = 0.0):
    """timm's ``EfficientNetBuilder`` set up for ``space``: exact widths, the space's activation
    and SE (gate, width rounding, inner nonlinearity), no dilation."""
    from timm.layers import get_act_layer, make_divisible
    from timm.models._efficientnet_blocks import SqueezeExcite
    from timm.models._efficientnet_builder import EfficientNetBuilder

    se_kwargs = {}
    if space.se_round == "round_channels":  # timm's MobileNetV3: round_channels, make_divisible with a 90 % floor
        se_kwargs["rd_round_fn"] = partial(make_divisible, divisor=space.se_divisor)
    elif space.se_divisor > 1:  # mobile-vision's SE width: get_divisible_by(int(width), divisor)
        se_kwargs["rd_round_fn"] = partial(_divisible_se, divisor=space.se_divisor, fn=divisible_by)
    if space.se_act != "block":  # timm's force_act_layer (MobileNetV3: ReLU whatever the block's)
        se_kwargs["force_act_layer"] = get_act_layer(TIMM_ACT_LAYER[space.se_act])
    return EfficientNetBuilder(
        output_stride=1 << 20,  # never dilate; timm assumes a stride-2 stem when counting
        round_chs_fn=_keep_width,
        act_layer=get_act_layer(TIMM_ACT_LAYER[space.act]),
        norm_layer=nn.BatchNorm2d,
        se_layer=partial(SqueezeExcite, gate_layer=space.se_gate, **se_kwargs),
        drop_path_rate=drop_path_rate,
    )


def build_block(space: SearchSpace, cfg: BlockConfig) -> nn.Module:
    """The standalone module of one resolved block, as :class:`StandaloneNet` builds it (timed
    alone by ``fpnas.cost.latency``); an identity skip is ``nn.Identity``."""
    from timm.models._efficientnet_builder import decode_arch_def

    if cfg.identity:
        return nn.Identity()
    block = cfg.kind.standalone_block(space, cfg, 0.0)
    if block is not None:
        return block
    stages = timm_builder(space)(cfg.in_chs, decode_arch_def([[timm_block_string(space, cfg)]]))
    return stages[0][0]


class StandaloneNet(nn.Module):
    """A plain network for one architecture of a space."""

    def __init__(
        self, space: SearchSpace, choice_idx: Sequence[int], drop_rate: float = 0.0, drop_path_rate: float = 0.0
    ):
        super().__init__()
        from timm.layers import (
            SelectAdaptivePool2d,
            create_classifier,
            create_conv2d,
            get_act_layer,
            get_norm_act_layer,
        )
        from timm.models._efficientnet_builder import decode_arch_def, efficientnet_init_weights

        act_layer = get_act_layer(TIMM_ACT_LAYER[space.act])
        norm_act = get_norm_act_layer(nn.BatchNorm2d, act_layer)
        self.num_classes = space.num_classes
        self.drop_rate = drop_rate
        self.conv_stem = create_conv2d(space.in_chans, space.stem_channels, space.stem_kernel, stride=space.stem_stride)
        self.bn1 = norm_act(space.stem_channels, inplace=True)
        builder = timm_builder(space, drop_path_rate)
        self.blocks = nn.Sequential(*builder(space.stem_channels, decode_arch_def(timm_arch_def(space, choice_idx))))
        self._replace_custom_blocks(space, choice_idx)
        self.conv_before_pool = bool(space.head_channels)
        self.head_fc = None
        if self.conv_before_pool:  # EfficientNet's head: conv_head + bn2 (+ act), pooling, [head_fc + act,] classifier
            self.conv_head = create_conv2d(builder.in_chs, space.head_channels, 1)
            self.bn2 = norm_act(space.head_channels, inplace=True)
            features = space.head_channels
            if space.head_pool_channels:  # linear + act after pooling (FBNet IRPool head)
                self.head_fc = nn.Conv2d(space.head_channels, space.head_pool_channels, 1, bias=space.head_pool_bias)
                self.head_act = act_layer(inplace=True)
                features = space.head_pool_channels
            self.global_pool, self.classifier = create_classifier(space.head_channels, space.num_classes)
            if self.head_fc is not None:
                self.classifier = nn.Linear(features, space.num_classes)
        else:  # timm's MobileNetV3 head (its names): pooling, conv_head (1x1) + act2, flatten, classifier
            self.global_pool = SelectAdaptivePool2d(pool_type="avg")
            self.conv_head = create_conv2d(builder.in_chs, space.head_pool_channels, 1, bias=space.head_pool_bias)
            self.act2 = act_layer(inplace=True)
            self.flatten = nn.Flatten(1)
            self.classifier = nn.Linear(space.head_pool_channels, space.num_classes)
        efficientnet_init_weights(self)

    def _replace_custom_blocks(self, space: SearchSpace, choice_idx) -> None:
        """Kinds timm has no block for (split attention): timm's builder lays out every block
        (widths, strides, drop-path schedule) and the kind's own module replaces the placeholder."""
        configs = space.resolve(choice_idx)
        for pos, cfg in zip(block_positions(space, configs), configs):
            if pos is None:
                continue
            stage, i = pos
            placeholder = self.blocks[stage][i]
            drop = getattr(getattr(placeholder, "drop_path", None), "drop_prob", 0.0)
            block = cfg.kind.standalone_block(space, cfg, drop)
            if block is not None:
                self.blocks[stage][i] = block

    def forward_stem(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn1(self.conv_stem(x))

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.blocks(self.forward_stem(x))
        return self.bn2(self.conv_head(x)) if self.conv_before_pool else x

    def forward_after_blocks(self, x: torch.Tensor) -> torch.Tensor:
        """From the last block's output to the logits: head conv, pooling, classifier."""
        if not self.conv_before_pool:  # MobileNetV3: pooling, then the head conv
            x = self.flatten(self.act2(self.conv_head(self.global_pool(x))))
        else:
            x = self.global_pool(self.bn2(self.conv_head(x)))
        if self.head_fc is not None:
            x = self.head_act(self.head_fc(x[:, :, None, None])).flatten(1)
        if self.drop_rate > 0:
            x = nn.functional.dropout(x, self.drop_rate, self.training)
        return self.classifier(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_after_blocks(self.blocks(self.forward_stem(x)))


def build_model(space: SearchSpace, choice_idx: Sequence[int], **kwargs) -> StandaloneNet:
    """Plain ``nn.Module`` for the architecture given by one choice index per decision."""
    return StandaloneNet(space, [int(i) for i in choice_idx], **kwargs)
