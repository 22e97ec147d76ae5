"""What every block kind provides, the resolved block configuration, and the registry.

A block kind is one operator (MBConv, conv, Fused-MBConv, the projection skip). It owns, side by
side, everything that differs between operators: the group keys it accepts and their validation,
the resolved :class:`BlockConfig`, the super-net's max-size weights and their sliced forward, the
standalone block (a timm block string, or its own module) with the weight mapping between the
two, the analytic complexity twin and the one-line description. The rest of fpnas asks
``slot.kind`` / ``cfg.kind`` and never branches on the operator: the layout of pycls' block
classes (``complexity()`` next to ``__init__``) and of mobile-vision's ``PRIMITIVES`` (one
signature for every primitive).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from fpnas.errors import ConfigError
from fpnas.space import choices as parse
from fpnas.space.choices import conv_out_size

if TYPE_CHECKING:
    import torch
    from torch import nn

    from fpnas.space.spec import BlockSlot, SearchSpace

# Group keys every kind shares: the group's structure, read by the space itself.
STRUCTURE_KEYS = ("channels", "repeat", "stride", "op", "same_stage")
REQUIRED = object()  # a variable without a default


@dataclass(frozen=True)
class Variable:
    """A per-block variable of a kind: a group key whose list of choices is searched per block."""

    name: str
    parse: Callable[[Any], Any]  # one value -> the validated value (raises ValueError)
    default: Any = REQUIRED  # a value, or a function of the space (the space's activation)
    costs: bool = True  # False when no MAC or parameter depends on it (the nonlinearity)
    doc: str = ""


# the variables several kinds share (a kind may define its own instead)
KERNEL = Variable("kernel", parse.kernel, doc="odd kernel sizes; 0 = skip")
EXPANSION = Variable("expansion", parse.expansion, doc="expanded width / input width")
ACT = Variable("act", parse.activation, lambda space: space.act, costs=False, doc="nonlinearity (default: the space's)")
SE = Variable("se", parse.se_flag, 0, doc="squeeze-and-excitation: 0 or 1")


@dataclass(frozen=True)
class Option:
    """A per-group setting of a kind: one value for every block of the group, never searched."""

    name: str
    parse: Callable[[Any], Any]
    default: Any
    doc: str = ""


@dataclass(frozen=True)
class BlockConfig:
    """A resolved block of one architecture: concrete widths, kernel, activation, SE width."""

    in_chs: int
    out_chs: int
    mid_chs: int  # the expanded width (equals in_chs for a depthwise-separable block)
    kernel: int  # 0 = skip (identity, or a 1x1 projection: see projection_skip)
    expansion: float
    act: str
    se_chs: int  # 0 = no SE
    stride: int
    in_size: int
    splits: int = 0  # split-attention splits (FP-NAS Fig. 2); 0 = none
    attn_chs: int = 0  # reduced width of the split-attention FCs
    op: str = "mbconv"  # the block kind's name (the group's ``op``)
    residual: bool = True  # False: timm's ``noskip`` (no residual even where widths match)

    @property
    def kind(self) -> BlockKind:
        """The kind that computes this block: the skip for kernel 0, else the group's ``op``."""
        return BLOCK_KINDS["skip" if self.skip else self.op]

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
    def has_residual(self) -> bool:
        return self.residual and self.stride == 1 and self.in_chs == self.out_chs

    @property
    def out_size(self) -> int:
        return conv_out_size(self.in_size, 3, self.stride)


class BlockKind:
    """One operator of a search space. Subclasses set the class attributes and the methods below.

    Super-net methods take the slot's ``SuperBlock`` and register weights on it, so every kind of
    a slot (its operator and the projection skip) shares one module with flat parameter names.
    """

    name: str = ""  # the group's ``op`` value
    summary: str = ""  # one line for the docs and the error that lists the kinds
    timm_type: str = ""  # timm's block type (``ir``, ``ds``, ``cn``, ``er``) or a note
    variables: tuple[Variable, ...] = ()  # searched per block, in decision order
    options: tuple[Option, ...] = (
        Option("residual", parse.flag, True, "false = timm's noskip: no residual even where it fits"),
    )
    group_op: bool = True  # False for kinds a group cannot name (the projection skip)

    # ------------------------------------------------------------------ space file
    def parse_group(self, group: Mapping[str, Any], where: str, space: SearchSpace) -> tuple[dict, dict]:
        """``(choices per variable, options)`` from one group's keys; a ``ConfigError`` names the key."""
        mine = [v.name for v in self.variables] + [o.name for o in self.options]
        bad = sorted(set(group) - set(mine) - set(STRUCTURE_KEYS))
        if bad:
            raise ConfigError(
                f"{where}: unknown key(s) {bad} for op '{self.name}'; allowed: {sorted({*STRUCTURE_KEYS, *mine})}"
            )
        values: dict[str, tuple] = {}
        for var in self.variables:
            if var.name in group:
                values[var.name] = parse.as_choices(group[var.name], f"{where}: {var.name}", var.parse)
            elif var.default is REQUIRED:
                raise ConfigError(f"{where}: missing required key '{var.name}'")
            else:
                default = var.default(space) if callable(var.default) else var.default
                values[var.name] = (default,)
        options = {}
        for opt in self.options:
            try:
                options[opt.name] = opt.parse(group.get(opt.name, opt.default))
            except (TypeError, ValueError) as exc:
                raise ConfigError(f"{where}: {opt.name}: {exc}") from None
        self.check_group(values, options, where)
        return values, options

    def check_group(self, values: dict, options: dict, where: str) -> None:
        """Checks across a group's variables (e.g. SE and split attention exclude each other)."""

    def variable(self, name: str) -> Variable:
        return next(v for v in self.variables if v.name == name)

    def block_config(
        self, space: SearchSpace, slot: BlockSlot, in_chs: int, out_chs: int, values: Mapping[str, Any]
    ) -> BlockConfig:
        """The resolved block for one value per variable and the two widths."""
        raise NotImplementedError

    # ------------------------------------------------------------------ super-net
    def init_super(self, block: nn.Module, space: SearchSpace, slot: BlockSlot) -> None:
        """Register the max-size weights of every choice of ``slot`` on ``block``."""
        raise NotImplementedError

    def super_forward(self, block: nn.Module, x: torch.Tensor, cfg: BlockConfig, bn_mode: str) -> torch.Tensor:
        """The block for ``cfg`` on sliced weights, without the residual (the super-block adds it)."""
        raise NotImplementedError

    def standalone_state(self, block: nn.Module, cfg: BlockConfig) -> dict:
        """The weights of ``cfg`` under the standalone block's parameter names."""
        raise NotImplementedError

    # ------------------------------------------------------------------ standalone model
    def timm_block_string(self, space: SearchSpace, cfg: BlockConfig) -> str:
        """timm's block notation for ``cfg`` (``ir_r1_k5_s2_e3.0_c24_se0.75_nsw``)."""
        raise NotImplementedError

    def standalone_block(self, space: SearchSpace, cfg: BlockConfig, drop_path_rate: float):
        """A module replacing the block timm built from the string, or None to keep timm's."""
        return None

    # ------------------------------------------------------------------ complexity twin
    def complexity(self, cfg: BlockConfig) -> tuple[int, int]:
        """(MACs, params) of the block for one image (``FlopCounterMode`` reports 2 x MACs)."""
        raise NotImplementedError

    def activations(self, cfg: BlockConfig) -> int:
        """Elements one image keeps for backward (conv, BN and activation outputs), no residual."""
        raise NotImplementedError

    # ------------------------------------------------------------------ description
    def describe(self, cfg: BlockConfig) -> str:
        """One readable line, e.g. ``ir k5 e3 16->24 s2 swish se4`` (the ``blocks`` of arch.yaml)."""
        raise NotImplementedError

    def table_cells(self, cfg: BlockConfig) -> dict:
        """Cells of the per-block table (``fpnas.tools.show``) and diagram (``fpnas.report.plots``): ``op``,
        ``kernel``, ``expansion`` (None if the kind has none), ``attn`` and a ``short`` label."""
        raise NotImplementedError


BLOCK_KINDS: dict[str, BlockKind] = {}


def register(cls: type[BlockKind]) -> type[BlockKind]:
    """Class decorator: add a kind to the registry under its ``name``."""
    if cls.name in BLOCK_KINDS:
        raise ValueError(f"block kind '{cls.name}' registered twice")
    BLOCK_KINDS[cls.name] = cls()
    return cls


def group_ops() -> list[str]:
    return sorted(name for name, kind in BLOCK_KINDS.items() if kind.group_op)


def block_kind(op: Any, where: str) -> BlockKind:
    """The kind a group names with ``op``; a ``ConfigError`` lists the registered ones."""
    kind = BLOCK_KINDS.get(op) if isinstance(op, str) else None
    if kind is None or not kind.group_op:
        raise ConfigError(f"{where}: op must be one of {group_ops()}, got {op!r}")
    return kind


def skip_suffix(cfg: BlockConfig) -> str:
    """timm's ``_noskip`` where a residual would fit but the group turned it off."""
    return "_noskip" if not cfg.residual and cfg.stride == 1 and cfg.in_chs == cfg.out_chs else ""
