"""Space statistics: size, FD vs JD logits, initial entropy and K, FLOPs/params of uniform samples.

Run ``python -m fpnas.space <name or file> [--input-size N] [--samples N] [--lam L]``; an architecture
file (an ``arch.yaml``, its run directory, a reference name) gives the report of its space.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import torch
import yaml

from fpnas.errors import ConfigError
from fpnas.search.distribution import ArchDistribution
from fpnas.space.arch import load_architecture
from fpnas.space.complexity import ComplexityTables
from fpnas.space.reference import architecture_file, available_references
from fpnas.space.spec import SearchSpace


def space_statistics(space: SearchSpace, samples: int = 1000, lam: float = 0.25, seed: int = 0) -> dict:
    """Numbers that characterise a space (FP-NAS Table 1/3 style); FLOPs are MACs."""
    tables = ComplexityTables(space)
    fd = ArchDistribution(space.sizes, space.units("factorized"), "factorized")
    jd = fd.to_joint(space.units("joint"))
    g = torch.Generator().manual_seed(seed)
    idx = (
        torch.stack([torch.randint(s, (samples,), generator=g) for s in space.sizes], 1)
        if space.sizes
        else torch.zeros(samples, 0, dtype=torch.long)
    )  # a reference's space: one architecture
    macs, params = tables.lookup(idx)
    lo, hi = tables.macs_range()
    h0 = float(fd.entropy()) + 0.0  # + 0.0: no decisions gives -0.0
    fd_logits, jd_logits = int(fd.mask.sum()), int(jd.mask.sum())
    return {
        "space": space.name,
        "input_size": space.input_size,
        "blocks": len(space.blocks),
        "channels_per": space.channels_per,
        "decisions": space.num_decisions,
        "log10_architectures": round(space.log10_num_architectures, 2),
        "fd_logits": fd_logits,
        "jd_logits": jd_logits,
        "jd_fd_ratio": round(jd_logits / fd_logits, 2) if fd_logits else None,
        "entropy_h0_nats": round(h0, 3),
        "k0": max(1, math.floor(lam * h0)),
        "lam": lam,
        "mflops_min": lo / 1e6,
        "mflops_max": hi / 1e6,
        "mflops_uniform_min": float(macs.min()) / 1e6,
        "mflops_uniform_median": float(macs.median()) / 1e6,
        "mflops_uniform_max": float(macs.max()) / 1e6,
        "params_m_uniform_min": float(params.min()) / 1e6,
        "params_m_uniform_median": float(params.median()) / 1e6,
        "params_m_uniform_max": float(params.max()) / 1e6,
        "samples": samples,
    }


def format_report(space: SearchSpace, stats: dict) -> str:
    lines = [space.describe(), ""]
    for d in space.decisions:
        lines.append(f"  {d.name:<22} {', '.join(str(c) for c in d.choices)}")
    s = stats
    lines += [
        "",
        f"architectures        10^{s['log10_architectures']}",
        f"logits FD / JD       {s['fd_logits']} / {s['jd_logits']}  "
        + (f"(JD = {s['jd_fd_ratio']}x FD)" if s["fd_logits"] else "(no decisions: every variable is fixed)"),
        f"H0                   {s['entropy_h0_nats']} nats  ->  K0 = {s['k0']} at lambda = {s['lam']}",
        f"MFLOPs (exact)       min {s['mflops_min']:.2f}  max {s['mflops_max']:.2f}",
        f"MFLOPs ({s['samples']} uniform) min {s['mflops_uniform_min']:.2f}  median "
        f"{s['mflops_uniform_median']:.2f}  max {s['mflops_uniform_max']:.2f}",
        f"params M (uniform)   min {s['params_m_uniform_min']:.3f}  median {s['params_m_uniform_median']:.3f}  "
        f"max {s['params_m_uniform_max']:.3f}",
    ]
    if space.skip_not_offered:
        lines.append(
            f"kernel 0 (skip) dropped at {', '.join(space.skip_not_offered)}: a skip needs a residual (stride 1 "
            "and the same width in and out; channels_per: block allows a projection skip instead)"
        )
    return "\n".join(lines)


def space_of(name_or_path: str) -> tuple[SearchSpace, str | None]:
    """The space ``name_or_path`` names, and for an architecture file (``arch.yaml``, a run directory
    holding one, a reference name) the line saying which space of which file it is (else None)."""

    if name_or_path in SearchSpace.available() or not (
        Path(name_or_path).exists() or name_or_path in available_references()
    ):  # a space name (it wins over a reference name), or neither a path nor a name: SearchSpace.load says so
        return SearchSpace.load(name_or_path), None
    path, _ = architecture_file(name_or_path)
    try:
        data = yaml.safe_load(path.read_text()) if path.suffix in (".yaml", ".yml") and path.is_file() else None
    except (yaml.YAMLError, UnicodeDecodeError):
        data = None  # SearchSpace.load reports it
    if not (isinstance(data, dict) and "choices" in data):
        return SearchSpace.load(name_or_path), None
    arch = load_architecture(path)
    entry = data.get("space")
    how = "written inline in the file" if isinstance(entry, dict) else f"space: {entry}"
    return arch.space, f"space '{arch.space.name}' of architecture file {path} ({how})"


def main(argv: list[str] | None = None) -> int:

    parser = argparse.ArgumentParser(prog="python -m fpnas.space", description=__doc__.splitlines()[0])
    parser.add_argument(
        "space",
        nargs="?",
        help=f"space name ({', '.join(SearchSpace.available())}) or YAML file, "
        "or an architecture file (arch.yaml, run directory, reference name)",
    )
    parser.add_argument("--input-size", type=int, help="override the space's input size")
    parser.add_argument("--num-classes", type=int, help="classifier size (default: the space file's)")
    parser.add_argument("--samples", type=int, default=1000, help="uniform samples for the FLOPs statistics")
    parser.add_argument("--lam", type=float, default=0.25, help="lambda of K0 = floor(lambda * H0)")
    parser.add_argument("--all", action="store_true", help="one summary table for every shipped space")
    args = parser.parse_args(argv)
    try:
        names = SearchSpace.available() if args.all or not args.space else [args.space]
        rows = []
        for name in names:
            space, origin = space_of(name) if len(names) == 1 else (SearchSpace.load(name), None)
            spec = dict(space.spec)
            if args.num_classes:
                spec["num_classes"] = args.num_classes
            if args.input_size:
                spec["input_size"] = args.input_size
            space = SearchSpace(spec, name=space.name)
            stats = space_statistics(space, args.samples, args.lam)
            rows.append(stats)
            if len(names) == 1:
                print(format_report(space, stats) if origin is None else f"{origin}\n{format_report(space, stats)}")
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if len(names) > 1:
        print(
            "| space | px | blocks | widths per | log10 archs | FD logits | JD logits | JD/FD | H0 nats | K0 "
            "| MFLOPs min / median / max (uniform) | params M median |"
        )
        print("|---|---|---|---|---|---|---|---|---|---|---|---|")
        for s in rows:
            print(
                f"| {s['space']} | {s['input_size']} | {s['blocks']} | {s['channels_per']} "
                f"| {s['log10_architectures']} | {s['fd_logits']} "
                f"| {s['jd_logits']} | {s['jd_fd_ratio']} | {s['entropy_h0_nats']} | {s['k0']} | "
                f"{s['mflops_uniform_min']:.1f} / {s['mflops_uniform_median']:.1f} / {s['mflops_uniform_max']:.1f} "
                f"| {s['params_m_uniform_median']:.2f} |"
            )
    return 0


def run() -> None:
    """The ``fpnas-space`` command (``python -m fpnas.space``)."""
    sys.exit(main())


if __name__ == "__main__":
    run()
