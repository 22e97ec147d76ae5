"""Search space as data: decisions, their choices, and per-block configurations.

A space file (``conf/space/<name>.yaml``) lists a stem, MBConv block groups and a head. Every
variable with more than one choice becomes a *decision*; an architecture is one choice per
decision (plain data: decision name -> value). The same object drives the super-net, the
standalone builder and the analytic FLOPs tables, so they can never disagree.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import yaml

from fpnas.errors import ConfigError

ACTIVATIONS = ("relu", "swish", "hswish", "relu6")
BLOCK_OPS = ("mbconv", "conv")  # MBConv (timm ir/ds) or a plain conv + BN + act (timm cn)
SE_GATES = ("sigmoid", "hard_sigmoid")
SE_RELATIVE = ("expanded", "input")
CHANNELS_PER = ("group", "block")  # granularity of the width decisions
BLOCK_VARIABLES = ("kernel", "expansion", "act", "se", "splits")  # searched per block
SPACE_DIR = Path(__file__).resolve().parents[2] / "conf" / "space"


def conv_out_size(size: int, kernel: int, stride: int) -> int:
    """Output side of a conv with symmetric padding ``kernel // 2`` (timm's default padding)."""
    return (size + 2 * (kernel // 2) - kernel) // stride + 1


def divisible_by(value: float, divisor: int) -> int:
    """mobile-vision's ``get_divisible_by``: nearest multiple (half away from zero), no 90% floor."""
    ret = int(value)
    if divisor > 0 and value % divisor != 0:
        q = value / divisor
        ret = int((int(math.floor(q + 0.5)) or 1) * divisor)
    return ret


def make_divisible(value: float, divisor: int = 8) -> int:
    """timm's ``make_divisible`` (the rounding timm's blocks apply to expanded channels)."""
    from timm.layers import make_divisible as timm_make_divisible

    return int(timm_make_divisible(value, divisor))


@dataclass(frozen=True)
class Decision:
    """One search variable: ``name`` like ``g2.b1.kernel``, ``g3.channels`` or ``g3.b1.channels``."""

    name: str
    kind: str  # channels | kernel | expansion | act | se | splits
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
    kernel: tuple
    expansion: tuple
    act: tuple
    se: tuple
    splits: tuple  # split-attention splits r (0 = none; 1 = SE-like gate; >= 2 = softmax over splits)
    in_decision: str | None  # decision setting the input width (None if fixed)
    out_decision: str | None
    var_decisions: Mapping[str, str | None] = field(default_factory=dict)  # variable -> decision
    op: str = "mbconv"  # mbconv | conv

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


@dataclass(frozen=True)
class BlockConfig:
    """A resolved block of one architecture: concrete widths, kernel, activation, SE width."""

    in_chs: int
    out_chs: int
    mid_chs: int  # equals in_chs for a depthwise-separable block (expansion 1)
    kernel: int  # 0 = skip (identity, or a 1x1 projection: see projection_skip)
    expansion: float
    act: str
    se_chs: int  # 0 = no SE
    stride: int
    in_size: int
    splits: int = 0  # split-attention splits (FP-NAS Fig. 2); 0 = none
    attn_chs: int = 0  # reduced width of the split-attention FCs
    op: str = "mbconv"  # mbconv | conv (plain kxk conv + BN + act, timm 'cn')

    @property
    def skip(self) -> bool:
        return self.kernel == 0

    @property
    def projection_skip(self) -> bool:
        """A skip that cannot be an identity (width change or stride 2): mobile-vision's
        ``Identity`` op, a 1x1 conv (no bias) + BN + ReLU from in_chs to out_chs at the block's
        stride. Its cost depends only on the two widths, so block costs stay a chain."""
        return self.skip and (self.in_chs != self.out_chs or self.stride != 1)

    @property
    def identity(self) -> bool:
        """A skip that is a plain identity (no module at all in the standalone model)."""
        return self.skip and not self.projection_skip

    @property
    def conv(self) -> bool:
        return self.op == "conv"

    @property
    def separable(self) -> bool:
        """Expansion 1: a depthwise-separable block without the 1x1 expansion conv (timm 'ds')."""
        return self.expansion == 1 and not self.conv

    @property
    def has_residual(self) -> bool:
        return self.stride == 1 and self.in_chs == self.out_chs

    @property
    def out_size(self) -> int:
        return conv_out_size(self.in_size, 3, self.stride)


def _as_choices(value: Any, where: str, cast) -> tuple:
    values = value if isinstance(value, (list, tuple)) else [value]
    if not values:
        raise ConfigError(f"{where}: empty choice list; give at least one value")
    try:
        out = tuple(cast(v) for v in values)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{where}: bad value in {list(values)} ({exc})") from None
    if len(set(out)) != len(out):
        raise ConfigError(f"{where}: duplicate choices in {list(values)}")
    return out


def _positive_int(v) -> int:
    if isinstance(v, bool) or int(v) != float(v) or int(v) < 1:
        raise ValueError(f"{v!r} is not a positive integer")
    return int(v)


def _kernel(v) -> int:
    if isinstance(v, bool) or int(v) != float(v) or (int(v) != 0 and int(v) % 2 == 0) or int(v) < 0:
        raise ValueError(f"{v!r} is not 0 (skip) or an odd kernel size")
    return int(v)


def _expansion(v) -> float:
    f = float(v)
    if not f > 0:
        raise ValueError(f"{v!r} is not a positive expansion ratio")
    return f


def _activation(v) -> str:
    if v not in ACTIVATIONS:
        raise ValueError(f"{v!r} is not one of {list(ACTIVATIONS)}")
    return str(v)


def _se(v) -> int:
    if v not in (0, 1) or isinstance(v, float) and not v.is_integer():
        raise ValueError(f"{v!r} is not 0 (no SE) or 1 (SE)")
    return int(v)


def _splits(v) -> int:
    if isinstance(v, bool) or int(v) != float(v) or int(v) < 0:
        raise ValueError(f"{v!r} is not a number of splits (0 = none, 1 = SE-like, 2, 4, ...)")
    return int(v)


class SearchSpace:
    """A parsed, validated search space (pure data; no weights)."""

    def __init__(self, spec: Mapping[str, Any], name: str | None = None):
        spec = dict(spec)
        self.name = str(name or spec.get("name") or "custom")
        where = f"space '{self.name}'"
        known = {"name", "input_size", "in_chans", "num_classes", "act", "se_ratio", "se_relative_to",
                 "se_gate", "se_divisor", "width_divisor", "stem", "groups", "head", "description",
                 "channels_per"}
        unknown = sorted(set(spec) - known)
        if unknown:
            raise ConfigError(f"{where}: unknown key(s) {unknown}; allowed: {sorted(known)}")
        for key in ("input_size", "stem", "groups", "head"):
            if key not in spec:
                raise ConfigError(f"{where}: missing required key '{key}'")
        self.input_size = _as_choices(spec["input_size"], f"{where}: input_size", _positive_int)[0]
        self.in_chans = _as_choices(spec.get("in_chans", 3), f"{where}: in_chans", _positive_int)[0]
        self.num_classes = _as_choices(spec.get("num_classes", 10), f"{where}: num_classes", _positive_int)[0]
        self.act = _as_choices(spec.get("act", "relu"), f"{where}: act", _activation)[0]
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
            raise ConfigError(f"{where}: channels_per must be one of {list(CHANNELS_PER)}, "
                              f"got {self.channels_per!r}")
        per_block = self.channels_per == "block"
        # SE width rounding: 1 = round() as timm's SqueezeExcite; d > 1 = mobile-vision's
        # get_divisible_by(int(width), d) (FBNetV2's SE: make_divisible(expanded x 0.25, 8))
        self.se_divisor = _as_choices(spec.get("se_divisor", 1), f"{where}: se_divisor", _positive_int)[0]

        stem = dict(spec["stem"] or {})
        for key in stem:
            if key not in ("channels", "kernel", "stride"):
                raise ConfigError(f"{where}: stem: unknown key '{key}' (allowed: channels, kernel, stride)")
        if "channels" not in stem:
            raise ConfigError(f"{where}: stem: missing 'channels'")
        self.stem_channels = _as_choices(stem["channels"], f"{where}: stem.channels", _positive_int)[0]
        self.stem_kernel = _as_choices(stem.get("kernel", 3), f"{where}: stem.kernel", _positive_int)[0]
        self.stem_stride = _as_choices(stem.get("stride", 2), f"{where}: stem.stride", _positive_int)[0]
        head = dict(spec["head"] or {})
        if set(head) - {"channels", "pool_channels", "pool_bias"} or "channels" not in head:
            raise ConfigError(f"{where}: head: expected the key 'channels' (and optionally 'pool_channels', "
                              f"'pool_bias'), got {sorted(head)}")
        self.head_channels = _as_choices(head["channels"], f"{where}: head.channels", _positive_int)[0]
        # optional linear layer (+ act) after global pooling, before the classifier: MobileNetV3's
        # conv_head / mobile-vision's IRPoolBlock pwl; 0 = none
        self.head_pool_channels = int(head.get("pool_channels", 0) or 0)
        if self.head_pool_channels < 0:
            raise ConfigError(f"{where}: head.pool_channels must be >= 0")
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
        for gi, group in enumerate(groups, start=1):
            gw = f"{where}: group {gi}"
            group = dict(group or {})
            allowed = {"channels", "repeat", "stride", "op", *BLOCK_VARIABLES}
            bad = sorted(set(group) - allowed)
            if bad:
                raise ConfigError(f"{gw}: unknown key(s) {bad}; allowed: {sorted(allowed)}")
            op = group.get("op", "mbconv")
            if op not in BLOCK_OPS:
                raise ConfigError(f"{gw}: op must be one of {list(BLOCK_OPS)}, got {op!r}")
            if op == "conv":
                if any(k in group for k in ("expansion", "se", "splits")):
                    raise ConfigError(f"{gw}: op 'conv' takes no expansion, se or splits")
                group["expansion"] = 1
            for key in ("channels", "kernel", "expansion"):
                if key not in group:
                    raise ConfigError(f"{gw}: missing required key '{key}'")
            channels = _as_choices(group["channels"], f"{gw}: channels", _positive_int)
            repeat = _as_choices(group.get("repeat", 1), f"{gw}: repeat", _positive_int)[0]
            stride = _as_choices(group.get("stride", 1), f"{gw}: stride", _positive_int)[0]
            if stride not in (1, 2):
                raise ConfigError(f"{gw}: stride must be 1 or 2, got {stride}")
            kernels = _as_choices(group["kernel"], f"{gw}: kernel", _kernel)
            expansions = _as_choices(group["expansion"], f"{gw}: expansion", _expansion)
            acts = _as_choices(group.get("act", self.act), f"{gw}: act", _activation)
            ses = _as_choices(group.get("se", 0), f"{gw}: se", _se)
            splits = _as_choices(group.get("splits", 0), f"{gw}: splits", _splits)
            if 1 in ses and max(splits) > 0:
                raise ConfigError(f"{gw}: give either 'se' or 'splits' (split attention with 1 split is SE)")
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
                choices = {"kernel": b_kernels, "expansion": expansions, "act": acts, "se": ses, "splits": splits}
                var_decisions = {}
                for var in BLOCK_VARIABLES:
                    if len(choices[var]) > 1:
                        dname = f"g{gi}.b{pos}.{var}"
                        self.decisions.append(Decision(dname, var, choices[var], gi, index))
                        var_decisions[var] = dname
                    else:
                        var_decisions[var] = None
                self.blocks.append(BlockSlot(
                    index=index, group=gi, position=pos, stride=b_stride, in_size=size,
                    in_channels=in_ch, out_channels=channels, kernel=b_kernels,
                    expansion=expansions, act=acts, se=ses, splits=splits, in_decision=in_dec,
                    out_decision=ch_decision, var_decisions=var_decisions, op=op))
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
    def load(cls, name_or_path: str | Path) -> "SearchSpace":
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

    def with_num_classes(self, num_classes: int, in_chans: int | None = None) -> "SearchSpace":
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
        if self.se_divisor > 1:  # the builder's rd_round_fn: divisible_by(int(v + 1e-6), d)
            return divisible_by(int(mid_chs * (ratio / expansion) + 1e-6), self.se_divisor)
        return int(round(mid_chs * (ratio / expansion)))

    def mid_channels(self, in_chs: int, expansion: float) -> int:
        return in_chs if expansion == 1 else make_divisible(in_chs * expansion, self.width_divisor)

    def block_config(self, slot: BlockSlot, in_chs: int, out_chs: int, kernel: int,
                     expansion: float, act: str, se: int, splits: int = 0) -> BlockConfig:
        mid = self.mid_channels(in_chs, expansion)
        reduced = self.se_channels(in_chs, mid, expansion)
        if slot.op == "conv":
            return BlockConfig(in_chs, out_chs, out_chs, kernel, 1, act, 0, slot.stride, slot.in_size, op="conv")
        return BlockConfig(in_chs, out_chs, mid, kernel, expansion, act, reduced if se else 0, slot.stride,
                           slot.in_size, splits, reduced if splits else 0)

    def _value(self, choice_idx: Sequence[int], decision: str | None, fixed: tuple):
        if decision is None:
            return fixed[0]
        return self.decisions[self.decision_index[decision]].choices[int(choice_idx[self.decision_index[decision]])]

    def resolve_block(self, slot: BlockSlot, choice_idx: Sequence[int]) -> BlockConfig:
        """Configuration of one block under the architecture ``choice_idx``."""
        v, vd = self._value, slot.var_decisions
        return self.block_config(
            slot,
            v(choice_idx, slot.in_decision, slot.in_channels),
            v(choice_idx, slot.out_decision, slot.out_channels),
            v(choice_idx, vd["kernel"], slot.kernel),
            v(choice_idx, vd["expansion"], slot.expansion),
            v(choice_idx, vd["act"], slot.act),
            v(choice_idx, vd["se"], slot.se),
            v(choice_idx, vd["splits"], slot.splits))

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
            raise ConfigError(f"architecture does not match space '{self.name}': unknown decision(s) "
                              f"{unknown[:5]}; the space has {self.num_decisions} decisions like "
                              f"{[d.name for d in self.decisions[:3]]}")
        missing = [d.name for d in self.decisions if d.name not in choices]
        if missing:
            raise ConfigError(f"architecture does not match space '{self.name}': missing decision(s) "
                              f"{missing[:5]} ({len(missing)} in all)")
        idx = []
        for d in self.decisions:
            value = choices[d.name]
            matches = [i for i, c in enumerate(d.choices) if c == value]
            if not matches:
                raise ConfigError(f"architecture does not match space '{self.name}': {d.name}={value!r} "
                                  f"is not a choice; choices: {list(d.choices)}")
            idx.append(matches[0])
        return idx

    def describe(self) -> str:
        return (f"space '{self.name}': {len(self.blocks)} blocks in {len(self.group_channels)} groups "
                f"(channels per {self.channels_per}), "
                f"{self.num_decisions} decisions, 10^{self.log10_num_architectures:.1f} architectures, "
                f"input {self.in_chans}x{self.input_size}x{self.input_size}")
