"""Block kinds, one module each, registered by the group key ``op`` (see :mod:`.base`).

Adding an operator is one module here: a :class:`~fpnas.space.blocks.base.BlockKind` subclass
decorated with ``@register`` (every module of this package is imported, so the kind is found),
plus a space file that uses it and its tests.
"""

import importlib
import pkgutil

from fpnas.space.blocks.base import BLOCK_KINDS, BlockConfig, BlockKind, Option, Variable, block_kind, group_ops

for _module in pkgutil.iter_modules(__path__):  # registers the kinds
    importlib.import_module(f"{__name__}.{_module.name}")

__all__ = ["BLOCK_KINDS", "BlockConfig", "BlockKind", "Option", "Variable", "block_kind", "group_ops"]
