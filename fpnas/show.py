"""Print an architecture as a table, per block, and optionally draw it.

``python -m fpnas.show <arch.yaml | run dir | reference name> [--png out.png] [--input-size N]
[--latency-table FILE]``
Per-block MFLOPs (MACs) and parameters come from the analytic formulas
(:mod:`fpnas.space.rows`); stem + blocks + head add up to the architecture's total. With a latency
look-up table (``python -m fpnas.latency build``), a column of each block's measured milliseconds.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import yaml

from fpnas.errors import ConfigError
from fpnas.run_dir import RunDir
from fpnas.space.rows import block_rows


def architecture_table(arch, title: str | None = None, rows: list[dict] | None = None, latency=None):
    """A ``rich`` renderable of :func:`block_rows` with a total row; ``latency``: a
    :class:`~fpnas.latency.LatencyTable` of the architecture's space, for a column of milliseconds.
    In a terminal too narrow for the full table (80 columns), a compact one with the same numbers."""
    rows = rows if rows is not None else block_rows(arch.space, arch.indices)
    ms = latency_column(arch, latency) if latency is not None else None
    total_ms = latency.predict(arch.space, arch.indices) if ms is not None else None
    return FitToWidth(
        _block_table(rows, title, ms, total_ms, compact=False), _block_table(rows, title, ms, total_ms, compact=True)
    )


class FitToWidth:
    """Renders ``wide`` where it fits the console, else ``narrow``: rich would otherwise shrink every
    column of a too-wide table and elide numbers ("0.…"), which must never happen to a result."""

    def __init__(self, wide, narrow):
        self.wide, self.narrow = wide, narrow

    def __rich_console__(self, console, options):
        from rich.measure import Measurement

        unbounded = options.update(width=1_000_000)  # Measurement.get clamps to the width it is given
        fits = Measurement.get(console, unbounded, self.wide).maximum <= options.max_width
        yield self.wide if fits else self.narrow


def _block_table(rows: list[dict], title, ms, total_ms, compact: bool):
    """The per-block table; ``compact``: short headers, kernel and expansion folded into the op
    (``ir k5 e6``, timm's notation), no borders between columns."""
    from rich import box
    from rich.table import Table

    total_m, total_p = sum(r["macs"] for r in rows), sum(r["params"] for r in rows)
    table = Table(
        title=title,
        show_footer=True,
        header_style="bold",
        title_justify="left",
        **({"box": box.SIMPLE_HEAD, "padding": (0, 0), "show_edge": False} if compact else {}),
    )
    table.add_column("block", footer="total", no_wrap=True)
    table.add_column("op", no_wrap=True)
    if not compact:
        table.add_column("kernel", justify="right")
        table.add_column("exp", justify="right")
    table.add_column("ch" if compact else "channels", justify="right", no_wrap=True)
    table.add_column("s" if compact else "stride", justify="right")
    table.add_column("act")
    table.add_column("SE" if compact else "SE/splits", no_wrap=True)
    table.add_column("size", justify="right", no_wrap=True)
    table.add_column("MFLOPs", justify="right", footer=f"{total_m / 1e6:.4f}", no_wrap=True)
    table.add_column("%", justify="right", footer="100")
    table.add_column("params", justify="right", footer=f"{total_p:,}", no_wrap=True)
    if ms is not None:
        table.add_column("ms", justify="right", footer=f"{total_ms:.4g}", no_wrap=True)
    for i, r in enumerate(rows):
        skip = r["kind"] == "skip"
        kernel = "-" if skip else str(r["kernel"])
        expansion = "" if r["expansion"] is None else f"{r['expansion']:g}"
        if compact:
            plain = skip or r["kind"] == "head"  # the head's 1x1 is in its op already
            op = r["op"] if plain else " ".join([r["op"], f"k{kernel}", *([f"e{expansion}"] if expansion else [])])
            shape = [op]
        else:
            shape = [r["op"], kernel, expansion]
        table.add_row(
            r["name"],
            *shape,
            f"{r['in']}→{r['out']}",
            str(r["stride"]),
            r["act"],
            r["attn"],
            f"{r['size_in']}→{r['size_out']}",
            f"{r['macs'] / 1e6:.4f}",
            f"{100 * r['macs'] / total_m:.1f}" if total_m else "0",
            f"{r['params']:,}",
            *([f"{ms[i]:.4g}"] if ms is not None else []),
            style="dim" if skip else None,
        )
    return table


def latency_column(arch, latency) -> list[float]:
    """Milliseconds of the stem, every block and the head (the rows of :func:`block_rows`), each with
    its parameters' share of the table's per-parameter correction; their sum plus the table's
    per-network overhead is the predicted latency."""
    from fpnas.space.complexity import head_complexity, stem_complexity

    space, per_param = arch.space, latency.ms_per_mparam / 1e6
    last = int(space.last_width(arch.indices))
    blocks = [latency.block_ms(c) + per_param * c.kind.complexity(c)[1] for c in space.resolve(arch.indices)]
    return [
        latency.stem_ms + per_param * stem_complexity(space)[1],
        *blocks,
        latency.head_ms[last] + per_param * head_complexity(space, last)[1],
    ]


def table_title(label: str, arch) -> str:
    """The title of :func:`architecture_table`: what was given, the space, input and classes."""
    sp = arch.space
    return f"{label} — space '{sp.name}', {sp.in_chans}x{sp.input_size}x{sp.input_size} input, {sp.num_classes} classes"


def wide_console():
    """A ``rich`` console; piped output is not wrapped at 80 columns, which would break the table."""
    from rich.console import Console

    console = Console()
    if not console.is_terminal:
        console.width = max(console.width, 120)
    return console


def _load(name_or_path: str, input_size: int | None):
    from fpnas.reference import resolve_architecture

    if Path(name_or_path).is_dir():  # a run directory: its arch.yaml
        if not RunDir(name_or_path).arch.is_file():
            raise ConfigError(f"{name_or_path} is a directory without an arch.yaml; give an architecture file")
        name_or_path = str(RunDir(name_or_path).arch)
    try:
        arch, _ = resolve_architecture(name_or_path)
    except ConfigError:
        path = Path(name_or_path)
        text = path.read_text(errors="replace") if path.is_file() and path.suffix in (".yaml", ".yml") else ""
        if "entries:" in text:
            raise ConfigError(
                f"{path} lists several architectures (top-k export): show one of them with "
                f"python -m fpnas.show {path.parent / 'top_archs' / 'rank_<i>.yaml'}"
            ) from None
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError:
            data = None
        if isinstance(data, dict) and "groups" in data and "choices" not in data:
            raise ConfigError(
                f"{path} is a search space, not an architecture: print its report with python -m fpnas.space {path}"
            ) from None
        raise
    if input_size is not None and input_size != arch.space.input_size:
        if input_size < 1:
            raise ConfigError(f"--input-size must be >= 1, got {input_size}")
        arch = arch.with_data(arch.space.num_classes, arch.space.in_chans, input_size)
    return arch


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m fpnas.show", description=__doc__.splitlines()[0])
    parser.add_argument(
        "arch",
        help="arch.yaml written by search.py / train.py (or its run directory), "
        "top_archs/rank_<i>.yaml, or a registered reference name",
    )
    parser.add_argument("--png", help="also draw the architecture as a block diagram into this PNG file")
    parser.add_argument("--input-size", type=int, help="evaluate at this input size instead of the file's")
    parser.add_argument(
        "--latency-table",
        help="a latency table of the architecture's space (python -m fpnas.latency build): an ms column",
    )
    args = parser.parse_args(argv)
    latency = None
    try:
        arch = _load(args.arch, args.input_size)
        rows = block_rows(arch.space, arch.indices)
        if args.latency_table:
            from fpnas.latency import load_table

            latency = load_table(args.latency_table, "--latency-table")
            latency.check_space(arch.space, "--latency-table")
    except ConfigError as exc:
        print("error: " + " ".join(str(exc).split()), file=sys.stderr)  # one line (YAML errors span several)
        return 2
    except OSError as exc:  # e.g. a directory or an unreadable file
        print(f"error: cannot read {args.arch}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    console = wide_console()
    macs, params = arch.complexity()
    sp = arch.space
    console.print(architecture_table(arch, rows=rows, title=table_title(args.arch, arch), latency=latency))
    console.print(
        f"total: {macs / 1e6:.4f} MFLOPs (MACs), {params / 1e6:.4f} M params, "
        f"{sum(r['kind'] == 'skip' for r in rows)} of {len(sp.blocks)} blocks skipped"
    )
    if latency is not None:
        k = latency.key
        console.print(
            f"latency: {latency.predict(arch.space, arch.indices):.4g} ms predicted (the column + the per-network "
            f"overhead {latency.overhead_ms:.3g} ms) on {k['device_name']}, batch {k['batch']}, {k['threads']} threads"
        )
    if args.png:
        from fpnas.plots import architecture_figure, save_figure

        try:
            path = save_figure(architecture_figure(arch, rows), args.png)
        except OSError as exc:
            print(f"error: cannot write {args.png}: {exc}", file=sys.stderr)
            return 2
        console.print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
