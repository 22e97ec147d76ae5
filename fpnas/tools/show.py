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

import yaml

from fpnas.cost.latency import load_table
from fpnas.errors import ConfigError
from fpnas.report.plots import architecture_figure, save_figure
from fpnas.report.tables import architecture_table, table_title, wide_console
from fpnas.space.arch import load_architecture
from fpnas.space.reference import architecture_file
from fpnas.space.rows import block_rows


def _load(name_or_path: str, input_size: int | None):
    """The architecture ``name_or_path`` names (:func:`architecture_file`), at ``input_size`` when given; a
    top-k export or a space file is told which tool reads it."""
    path, _ = architecture_file(name_or_path)
    try:
        arch = load_architecture(path)
    except ConfigError:
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
        try:
            path = save_figure(architecture_figure(arch, rows), args.png)
        except OSError as exc:
            print(f"error: cannot write {args.png}: {exc}", file=sys.stderr)
            return 2
        console.print(f"wrote {path}")
    return 0


def run() -> None:
    """The ``fpnas-show`` command (``python -m fpnas.show``)."""
    sys.exit(main())


if __name__ == "__main__":
    run()
