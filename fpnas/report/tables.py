"""Per-block architecture tables (rich) and the console width they are printed at."""

from __future__ import annotations

from fpnas.space.rows import block_rows


def architecture_table(arch, title: str | None = None, rows: list[dict] | None = None, latency=None):
    """A ``rich`` renderable of :func:`block_rows` with a total row; ``latency``: a
    :class:`~fpnas.cost.latency.LatencyTable` of the architecture's space, for a column of milliseconds.
    In a terminal too narrow for the full table (80 columns), a compact one with the same numbers."""
    rows = rows if rows is not None else block_rows(arch.space, arch.indices)
    ms = latency.part_ms(arch.space, arch.indices) if latency is not None else None
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
