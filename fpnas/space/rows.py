"""One architecture as rows: stem, every block and the head, with sizes, widths, MACs and params.

What ``fpnas.tools.show`` prints and ``fpnas.report.plots`` draws; each block's cells come from its kind.
Stem + blocks + head add up to the architecture's analytic total.
"""

from __future__ import annotations

from collections.abc import Sequence

from fpnas.space.complexity import head_complexity, stem_complexity
from fpnas.space.spec import SearchSpace, conv_out_size


def block_rows(space: SearchSpace, choice_idx: Sequence[int]) -> list[dict]:
    """Stem, every block and the head as dicts (``name``, ``kind``, ``op``, sizes, channels, MACs, params)."""
    size = space.input_size
    stem_out = conv_out_size(size, space.stem_kernel, space.stem_stride)
    m, p = stem_complexity(space)
    rows = [
        dict(
            name="stem",
            kind="stem",
            op="conv",
            kernel=space.stem_kernel,
            expansion=None,
            **{"in": space.in_chans},
            out=space.stem_channels,
            stride=space.stem_stride,
            act=space.act,
            attn="",
            size_in=size,
            size_out=stem_out,
            macs=m,
            params=p,
            short=f"stem k{space.stem_kernel}",
        )
    ]
    for slot, cfg in zip(space.blocks, space.resolve(choice_idx)):
        m, p = cfg.kind.complexity(cfg)
        rows.append(
            dict(
                name=f"g{slot.group}.b{slot.position}",
                kind="skip" if cfg.skip else "block",
                **cfg.kind.table_cells(cfg),
                **{"in": cfg.in_chs},
                out=cfg.out_chs,
                stride=cfg.stride,
                size_in=cfg.in_size,
                size_out=cfg.out_size,
                macs=m,
                params=p,
            )
        )
    last = space.last_width(choice_idx)
    m, p = head_complexity(space, last)
    pool = f"+fc{space.head_pool_channels}" if space.head_pool_channels else ""
    width = space.head_channels or space.head_pool_channels  # the widest layer of the head
    rows.append(
        dict(
            name="head",
            kind="head",
            op=f"{'1x1+' if space.head_channels else ''}pool{pool}+fc",
            kernel=1,
            expansion=None,
            **{"in": last},
            out=width,
            stride=1,
            act=space.act,
            attn="",
            size_in=space.final_size,
            size_out=1,
            macs=m,
            params=p,
            short=f"head {width}",
        )
    )
    return rows
