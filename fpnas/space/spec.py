"""Search space as data: decisions, their choices, and per-block configurations.

A space file (``conf/space/<name>.yaml``) lists a stem, groups of blocks (each of one block kind,
:mod:`fpnas.space.blocks`, MBConv by default) and a head. Every
variable with more than one choice becomes a *decision*; an architecture is one choice per
decision (plain data: decision name -> value). The same object drives the super-net, the
standalone builder and the analytic FLOPs tables, so they can never disagree.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from fpnas.errors import ConfigError
from fpnas.runtime.config import CONF_DIR
from fpnas.space.blocks import BLOCK_KINDS, BlockConfig, BlockKind, block_kind
from fpnas.space.choices import (  # noqa: F401
    ACTIVATIONS,
    activation,
    as_choices,
    conv_out_size,
    divisible_by,
    make_divisible,
    non_negative_int,
    positive_int,
)

SE_GATES = ("sigmoid", "hard_sigmoid")
SE_ROUNDS = ("round", "round_channels")  # SE width rounding rules (see SearchSpace.se_channels)
SE_ACTS = ("block", *ACTIVATIONS)  # the SE's inner nonlinearity: the block's, or one forced for every SE
SE_RELATIVE = ("expanded", "input")
CHANNELS_PER = ("group", "block")  # granularity of the width decisions
SPACE_DIR = CONF_DIR / "space"


@dataclass(frozen=True)
class Decision:
    """One search variable: ``name`` like ``g2.b1.kernel``, ``g3.channels`` or ``g3.b1.channels``."""

    name: str
    kind: str  # channels, or the block variable (kernel, expansion, act, se, splits, ...)
    choices: tuple
    group: int  # 1-based group index
    block: int | None  # global block index; None for group-level decisions (group widths)

    @property
    def size(self) -> int:
        return len(self.choices)


@dataclass(frozen=True)
class BlockSlot:
    """Static description of one block position: its choices and which decision sets each."""

    index: int  # global block index (0-based)
    group: int  # 1-based group index
    position: int  # index inside the group
    stride: int
    in_size: int  # input feature-map side
    in_channels: tuple  # choices of the input width (previous block's, previous group's or the stem's)
    out_channels: tuple
    choices: Mapping[str, tuple]  # the kind's variables, in decision order -> their choices here
    in_decision: str | None  # decision setting the input width (None if fixed)
    out_decision: str | None
    var_decisions: Mapping[str, str | None] = field(default_factory=dict)  # variable -> decision
    op: str = "mbconv"  # the block kind's name
    options: Mapping[str, Any] = field(default_factory=dict)  # the kind's per-group options
    stage: int = 0  # the standalone model's stage (blocks.<stage>.<i>): the group, or the one it continues

    @property
    def kind(self) -> BlockKind:
        return BLOCK_KINDS[self.op]  # checked when the space was parsed; read on every resolve

    @property
    def kernel(self) -> tuple:
        return self.choices["kernel"]

    @property
    def out_size(self) -> int:
        return conv_out_size(self.in_size, 3, self.stride)

    @property
    def can_project_skip(self) -> bool:
        """Whether some architecture skips this block with a width change (a 1x1 projection)."""
        if 0 not in self.kernel:
            return False
        if self.stride != 1:
            return True
        if self.in_decision is not None and self.in_decision == self.out_decision:
            return False  # the width is one shared decision: always equal
        return any(i != o for i in self.in_channels for o in self.out_channels)


class SearchSpace:
    """A parsed, validated search space (pure data; no weights)."""

    def __init__(self, spec: Mapping[str, Any], name: str | None = None):
        spec = dict(spec)
        self.name = str(name or spec.get("name") or "custom")
        where = f"space '{self.name}'"
        known = {
            "name",
            "input_size",
            "in_chans",
            "num_classes",
            "act",
            "se_ratio",
            "se_relative_to",
            "se_gate",
            "se_divisor",
            "se_round",
            "se_act",
            "width_divisor",
            "stem",
            "groups",
            "head",
            "description",
            "channels_per",
        }
        unknown = sorted(set(spec) - known)
        if unknown:
            raise ConfigError(f"{where}: unknown key(s) {unknown}; allowed: {sorted(known)}")
        for key in ("input_size", "stem", "groups", "head"):
            if key not in spec:
                raise ConfigError(f"{where}: missing required key '{key}'")
        self.input_size = as_choices(spec["input_size"], f"{where}: input_size", positive_int)[0]
        self.in_chans = as_choices(spec.get("in_chans", 3), f"{where}: in_chans", positive_int)[0]
        self.num_classes = as_choices(spec.get("num_classes", 10), f"{where}: num_classes", positive_int)[0]
        self.act = as_choices(spec.get("act", "relu"), f"{where}: act", activation)[0]
        self.se_ratio = float(spec.get("se_ratio", 0.25))
        if not 0 < self.se_ratio <= 1:
            raise ConfigError(f"{where}: se_ratio must be in (0, 1], got {self.se_ratio}")
        self.se_relative_to = spec.get("se_relative_to", "expanded")
        if self.se_relative_to not in SE_RELATIVE:
            raise ConfigError(f"{where}: se_relative_to must be one of {list(SE_RELATIVE)}")
        self.se_gate = spec.get("se_gate", "sigmoid")
        if self.se_gate not in SE_GATES:
            raise ConfigError(f"{where}: se_gate must be one of {list(SE_GATES)}")
        self.width_divisor = 8  # fixed by timm's InvertedResidual (make_divisible default)
        # group: one width decision per group (g{g}.channels); block: one per block (g{g}.b{i}.channels)
        self.channels_per = spec.get("channels_per", "group")
        if self.channels_per not in CHANNELS_PER:
            raise ConfigError(f"{where}: channels_per must be one of {list(CHANNELS_PER)}, got {self.channels_per!r}")
        per_block = self.channels_per == "block"
        # SE width rounding (se_round: round): 1 = round() as timm's SqueezeExcite; d > 1 = mobile-vision's
        # get_divisible_by(int(width), d) (FBNetV2's SE: make_divisible(expanded x 0.25, 8))
        self.se_divisor = as_choices(spec.get("se_divisor", 1), f"{where}: se_divisor", positive_int)[0]
        # round: the above; round_channels: timm's MobileNetV3 (rd_round_fn=round_channels), make_divisible(width,
        # se_divisor) with its 90 % floor (a width rounded down by more than 10 % goes one multiple up)
        self.se_round = spec.get("se_round", "round")
        if self.se_round not in SE_ROUNDS:
            raise ConfigError(f"{where}: se_round must be one of {list(SE_ROUNDS)}, got {self.se_round!r}")
        if self.se_round == "round_channels" and self.se_divisor == 1:
            raise ConfigError(f"{where}: se_round: round_channels needs se_divisor > 1 (timm's MobileNetV3: 8)")
        # the SE's nonlinearity between its two 1x1 convs: the block's (block), or one for every SE (timm's
        # force_act_layer; MobileNetV3: relu)
        self.se_act = spec.get("se_act", "block")
        if self.se_act not in SE_ACTS:
            raise ConfigError(f"{where}: se_act must be one of {list(SE_ACTS)}, got {self.se_act!r}")

        stem = dict(spec["stem"] or {})
        for key in stem:
            if key not in ("channels", "kernel", "stride"):
                raise ConfigError(f"{where}: stem: unknown key '{key}' (allowed: channels, kernel, stride)")
        if "channels" not in stem:
            raise ConfigError(f"{where}: stem: missing 'channels'")
        self.stem_channels = as_choices(stem["channels"], f"{where}: stem.channels", positive_int)[0]
        self.stem_kernel = as_choices(stem.get("kernel", 3), f"{where}: stem.kernel", positive_int)[0]
        self.stem_stride = as_choices(stem.get("stride", 2), f"{where}: stem.stride", positive_int)[0]
        head = dict(spec["head"] or {})
        if set(head) - {"channels", "pool_channels", "pool_bias"} or "channels" not in head:
            raise ConfigError(
                f"{where}: head: expected the key 'channels' (and optionally 'pool_channels', "
                f"'pool_bias'), got {sorted(head)}"
            )
        # 1x1 conv + BN + act before pooling; 0 = none: pooling right after the last block, then the pool_channels
        # layer, named conv_head (timm's MobileNetV3 head, whose last 1x1 conv + BN + act is a block: op conv)
        self.head_channels = as_choices(head["channels"], f"{where}: head.channels", non_negative_int)[0]
        # optional linear layer (+ act) after global pooling, before the classifier: MobileNetV3's
        # conv_head / mobile-vision's IRPoolBlock pwl; 0 = none
        self.head_pool_channels = int(head.get("pool_channels", 0) or 0)
        if self.head_pool_channels < 0:
            raise ConfigError(f"{where}: head.pool_channels must be >= 0")
        if not self.head_channels and not self.head_pool_channels:
            raise ConfigError(
                f"{where}: head: channels 0 (no conv before pooling) needs pool_channels > 0 (the 1x1 layer after "
                "pooling, MobileNetV3's conv_head)"
            )
        self.head_pool_bias = bool(head.get("pool_bias", True))

        groups = spec["groups"]
        if not isinstance(groups, (list, tuple)) or not groups:
            raise ConfigError(f"{where}: 'groups' must be a non-empty list of block groups")
        self.decisions: list[Decision] = []
        self.blocks: list[BlockSlot] = []
        self.skip_not_offered: list[str] = []  # blocks whose kernel choice 0 (skip) was dropped: no residual there
        self.group_channels: list[tuple] = []  # channel choices per group (of every block in block mode)
        self.group_channel_decision: list[str | None] = []  # the group's width decision; None in block mode
        prev_channels: tuple = (self.stem_channels,)
        prev_decision: str | None = None
        size = conv_out_size(self.input_size, self.stem_kernel, self.stem_stride)
        stage = -1
        for gi, group in enumerate(groups, start=1):
            gw = f"{where}: group {gi}"
            group = dict(group or {})
            kind = block_kind(group.get("op", "mbconv"), gw)
            if "channels" not in group:
                raise ConfigError(f"{gw}: missing required key 'channels'")
            choices, options = kind.parse_group(group, gw, self)
            channels = as_choices(group["channels"], f"{gw}: channels", positive_int)
            repeat = as_choices(group.get("repeat", 1), f"{gw}: repeat", positive_int)[0]
            stride = as_choices(group.get("stride", 1), f"{gw}: stride", positive_int)[0]
            if stride not in (1, 2):
                raise ConfigError(f"{gw}: stride must be 1 or 2, got {stride}")
            same_stage = group.get("same_stage", False)
            if not isinstance(same_stage, bool) or (same_stage and gi == 1):
                raise ConfigError(
                    f"{gw}: same_stage must be true or false (and false for the first group), got {same_stage!r}"
                )
            stage += 0 if same_stage else 1
            kernels = choices["kernel"]
            if kernels == (0,):
                raise ConfigError(f"{gw}: kernel choices are only 0 (skip); add a real kernel size")
            ch_decision = None
            if len(channels) > 1 and not per_block:
                ch_decision = f"g{gi}.channels"
                self.decisions.append(Decision(ch_decision, "channels", channels, gi, None))
            self.group_channels.append(channels)
            self.group_channel_decision.append(ch_decision)
            for pos in range(repeat):
                index = len(self.blocks)
                b_stride = stride if pos == 0 else 1
                if per_block:
                    # own width; the input is the previous block's output (a chain of widths)
                    in_ch, in_dec = prev_channels, prev_decision
                    if len(channels) > 1:
                        ch_decision = f"g{gi}.b{pos}.channels"
                        self.decisions.append(Decision(ch_decision, "channels", channels, gi, index))
                    # skip is legal on every stride-1 block: a width change makes it a 1x1
                    # projection (mobile-vision's Identity), see BlockConfig.projection_skip
                    skip_ok = b_stride == 1
                else:
                    in_ch, in_dec = (prev_channels, prev_decision) if pos == 0 else (channels, ch_decision)
                    # Skip (kernel 0) is legal only where the residual is guaranteed: stride 1 and
                    # input width always equal to output width. The first block of a group usually
                    # is not such a place, so 0 is dropped there (FBNetV2 convention).
                    skip_ok = b_stride == 1 and (pos > 0 or (len(in_ch) == 1 and in_ch == channels))
                b_kernels = kernels if skip_ok else tuple(k for k in kernels if k != 0)
                if b_kernels != kernels:  # said in the space report (python -m fpnas.space)
                    self.skip_not_offered.append(f"g{gi}.b{pos}")
                b_choices = dict(choices, kernel=b_kernels)
                var_decisions = {}
                for var, var_choices in b_choices.items():
                    if len(var_choices) > 1:
                        dname = f"g{gi}.b{pos}.{var}"
                        self.decisions.append(Decision(dname, var, var_choices, gi, index))
                        var_decisions[var] = dname
                    else:
                        var_decisions[var] = None
                self.blocks.append(
                    BlockSlot(
                        index=index,
                        group=gi,
                        position=pos,
                        stride=b_stride,
                        in_size=size,
                        in_channels=in_ch,
                        out_channels=channels,
                        choices=b_choices,
                        in_decision=in_dec,
                        out_decision=ch_decision,
                        var_decisions=var_decisions,
                        op=kind.name,
                        options=options,
                        stage=stage,
                    )
                )
                size = conv_out_size(size, 3, b_stride)
                prev_channels, prev_decision = channels, ch_decision
        if size < 1:
            raise ConfigError(f"{where}: input_size {self.input_size} is too small for its strides")
        self.final_size = size
        self.last_channels = prev_channels  # width choices of the last block
        self.last_channel_decision = prev_decision
        # the width decisions in network order: each block's cost couples two neighbours at most
        self.width_chain = list(dict.fromkeys(s.out_decision for s in self.blocks if s.out_decision is not None))
        self.decision_index = {d.name: i for i, d in enumerate(self.decisions)}
        self.spec = spec

    # ----------------------------------------------------------------------------- loading
    @classmethod
    def available(cls) -> list[str]:
        return sorted(p.stem for p in SPACE_DIR.glob("*.yaml"))

    @classmethod
    def load(cls, name_or_path: str | Path) -> SearchSpace:
        """Load ``conf/space/<name>.yaml`` or a YAML file path."""
        path = Path(name_or_path)
        if path.suffix not in (".yaml", ".yml"):
            path = SPACE_DIR / f"{name_or_path}.yaml"
            if not path.exists():
                raise ConfigError(f"unknown search space '{name_or_path}'; available: {cls.available()}")
        elif not path.exists():
            raise ConfigError(f"space file {path} does not exist")
        with open(path) as f:
            spec = yaml.safe_load(f)
        if not isinstance(spec, dict):
            raise ConfigError(f"space file {path} must hold a mapping, got {type(spec).__name__}")
        return cls(spec, name=spec.get("name") or path.stem)

    def with_num_classes(self, num_classes: int, in_chans: int | None = None) -> SearchSpace:
        """The same space with another classifier size (and input channels), e.g. from the data."""
        spec = dict(self.spec, num_classes=int(num_classes))
        if in_chans is not None:
            spec["in_chans"] = int(in_chans)
        return SearchSpace(spec, name=self.name)

    # ----------------------------------------------------------------------------- sizes
    @property
    def num_decisions(self) -> int:
        return len(self.decisions)

    @property
    def sizes(self) -> list[int]:
        return [d.size for d in self.decisions]

    @property
    def log10_num_architectures(self) -> float:
        return sum(math.log10(s) for s in self.sizes)

    def units(self, kind: str) -> list[list[int]]:
        """Groups of decisions sampled together.

        ``factorized``: every decision alone. ``joint``: one unit per block, the tuple of its
        variables; with ``channels_per: block`` the tuple includes the block's own width (the
        paper's 3*2*2*6*10 = 720 logits), with ``group`` a group's width joins the tuple of the
        group's first block.
        """
        if kind == "factorized":
            return [[i] for i in range(self.num_decisions)]
        if kind != "joint":
            raise ValueError(f"unknown distribution kind '{kind}' (factorized|joint)")
        units = []
        for slot in self.blocks:
            names = []
            if (slot.position == 0 or self.channels_per == "block") and slot.out_decision is not None:
                names.append(slot.out_decision)
            names += [n for n in slot.var_decisions.values() if n is not None]
            if names:
                units.append([self.decision_index[n] for n in names])
        return units

    # ----------------------------------------------------------------------------- resolving
    def se_channels(self, in_chs: int, mid_chs: int, expansion: float) -> int:
        """SE reduced width, computed exactly as timm's builder does for the block args we emit."""
        ratio = self.se_ratio if self.se_relative_to == "input" else self.se_ratio * expansion
        if self.se_round == "round_channels":  # timm's round_channels: make_divisible(v, d), 90 % floor
            return make_divisible(mid_chs * (ratio / expansion), self.se_divisor)
        if self.se_divisor > 1:  # the builder's rd_round_fn: divisible_by(int(v + 1e-6), d)
            return divisible_by(int(mid_chs * (ratio / expansion) + 1e-6), self.se_divisor)
        return int(round(mid_chs * (ratio / expansion)))

    def block_config(self, slot: BlockSlot, in_chs: int, out_chs: int, values: Mapping[str, Any]) -> BlockConfig:
        """The block at ``slot`` for two widths and one value per variable of its kind."""
        return slot.kind.block_config(self, slot, in_chs, out_chs, values)

    def _value(self, choice_idx: Sequence[int], decision: str | None, fixed: tuple):
        if decision is None:
            return fixed[0]
        return self.decisions[self.decision_index[decision]].choices[int(choice_idx[self.decision_index[decision]])]

    def resolve_block(self, slot: BlockSlot, choice_idx: Sequence[int]) -> BlockConfig:
        """Configuration of one block under the architecture ``choice_idx``."""
        values = {var: self._value(choice_idx, slot.var_decisions[var], c) for var, c in slot.choices.items()}
        return self.block_config(
            slot,
            self._value(choice_idx, slot.in_decision, slot.in_channels),
            self._value(choice_idx, slot.out_decision, slot.out_channels),
            values,
        )

    def resolve(self, choice_idx: Sequence[int]) -> list[BlockConfig]:
        """Per-block configurations of the architecture given by one choice index per decision."""
        idx = [int(i) for i in choice_idx]
        return [self.resolve_block(slot, idx) for slot in self.blocks]

    def last_width(self, choice_idx: Sequence[int]) -> int:
        return self._value(choice_idx, self.last_channel_decision, self.last_channels)

    # ----------------------------------------------------------------------------- arch <-> indices
    def choices_of(self, choice_idx: Sequence[int]) -> dict[str, Any]:
        """Architecture as plain data: decision name -> chosen value."""
        return {d.name: d.choices[int(i)] for d, i in zip(self.decisions, choice_idx)}

    def indices_of(self, choices: Mapping[str, Any]) -> list[int]:
        """Inverse of :meth:`choices_of`, validating names and values against the space."""
        unknown = sorted(set(choices) - set(self.decision_index))
        if unknown:
            raise ConfigError(
                f"architecture does not match space '{self.name}': unknown decision(s) "
                f"{unknown[:5]}; the space has {self.num_decisions} decisions like "
                f"{[d.name for d in self.decisions[:3]]}"
            )
        missing = [d.name for d in self.decisions if d.name not in choices]
        if missing:
            raise ConfigError(
                f"architecture does not match space '{self.name}': missing decision(s) "
                f"{missing[:5]} ({len(missing)} in all)"
            )
        idx = []
        for d in self.decisions:
            value = choices[d.name]
            matches = [i for i, c in enumerate(d.choices) if c == value]
            if not matches:
                raise ConfigError(
                    f"architecture does not match space '{self.name}': {d.name}={value!r} "
                    f"is not a choice; choices: {list(d.choices)}"
                )
            idx.append(matches[0])
        return idx

    def describe(self) -> str:
        return (
            f"space '{self.name}': {len(self.blocks)} blocks in {len(self.group_channels)} groups "
            f"(channels per {self.channels_per}), "
            f"{self.num_decisions} decisions, 10^{self.log10_num_architectures:.1f} architectures, "
            f"input {self.in_chans}x{self.input_size}x{self.input_size}"
        )
