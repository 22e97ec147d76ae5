"""Block kinds, one module each, registered by the group key ``op`` (see :mod:`.base`).

Adding an operator: a module here with a :class:`~fpnas.space.blocks.base.BlockKind` subclass
decorated with ``@register``, its import below, a space file that uses it, and its tests.
"""
from fpnas.space.blocks.base import BLOCK_KINDS, BlockConfig, BlockKind, Option, Variable, block_kind, group_ops
from fpnas.space.blocks import conv, fused, mbconv, skip  # noqa: F401  (registers the kinds)

__all__ = ["BLOCK_KINDS", "BlockConfig", "BlockKind", "Option", "Variable", "block_kind", "group_ops"]
