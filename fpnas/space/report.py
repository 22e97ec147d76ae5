"""Space statistics: size, FD vs JD logits, initial entropy and K, FLOPs/params of uniform samples.

Run ``python -m fpnas.space <name or file> [--input-size N] [--samples N] [--lam L]``.
"""
from __future__ import annotations

import argparse
import math
import sys

import torch

from fpnas.distribution import ArchDistribution
from fpnas.space.complexity import ComplexityTables
from fpnas.space.spec import SearchSpace


def space_statistics(space: SearchSpace, samples: int = 1000, lam: float = 0.25, seed: int = 0) -> dict:
    """Numbers that characterise a space (FP-NAS Table 1/3 style); FLOPs are MACs."""
    tables = ComplexityTables(space)
    fd = ArchDistribution(space.sizes, space.units("factorized"), "factorized")
    jd = fd.to_joint(space.units("joint"))
    g = torch.Generator().manual_seed(seed)
    idx = torch.stack([torch.randint(s, (samples,), generator=g) for s in space.sizes], 1)
    macs, params = tables.lookup(idx)
    lo, hi = tables.macs_range()
    h0 = float(fd.entropy())
    fd_logits, jd_logits = int(fd.mask.sum()), int(jd.mask.sum())
    return {
        "space": space.name, "input_size": space.input_size, "blocks": len(space.blocks),
        "channels_per": space.channels_per,
        "decisions": space.num_decisions, "log10_architectures": round(space.log10_num_architectures, 2),
        "fd_logits": fd_logits, "jd_logits": jd_logits, "jd_fd_ratio": round(jd_logits / fd_logits, 2),
        "entropy_h0_nats": round(h0, 3), "k0": max(1, math.floor(lam * h0)), "lam": lam,
        "mflops_min": lo / 1e6, "mflops_max": hi / 1e6,
        "mflops_uniform_min": float(macs.min()) / 1e6, "mflops_uniform_median": float(macs.median()) / 1e6,
        "mflops_uniform_max": float(macs.max()) / 1e6,
        "params_m_uniform_min": float(params.min()) / 1e6, "params_m_uniform_median": float(params.median()) / 1e6,
        "params_m_uniform_max": float(params.max()) / 1e6, "samples": samples,
    }


def format_report(space: SearchSpace, stats: dict) -> str:
    lines = [space.describe(), ""]
    for d in space.decisions:
        lines.append(f"  {d.name:<22} {', '.join(str(c) for c in d.choices)}")
    s = stats
    lines += [
        "",
        f"architectures        10^{s['log10_architectures']}",
        f"logits FD / JD       {s['fd_logits']} / {s['jd_logits']}  (JD = {s['jd_fd_ratio']}x FD)",
        f"H0                   {s['entropy_h0_nats']} nats  ->  K0 = {s['k0']} at lambda = {s['lam']}",
        f"MFLOPs (exact)       min {s['mflops_min']:.2f}  max {s['mflops_max']:.2f}",
        f"MFLOPs ({s['samples']} uniform) min {s['mflops_uniform_min']:.2f}  median "
        f"{s['mflops_uniform_median']:.2f}  max {s['mflops_uniform_max']:.2f}",
        f"params M (uniform)   min {s['params_m_uniform_min']:.3f}  median {s['params_m_uniform_median']:.3f}  "
        f"max {s['params_m_uniform_max']:.3f}",
    ]
    if space.skip_not_offered:
        lines.append(f"kernel 0 (skip) dropped at {', '.join(space.skip_not_offered)}: a skip needs a residual (stride 1 "
                     "and the same width in and out; channels_per: block allows a projection skip instead)")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    from fpnas.errors import ConfigError

    parser = argparse.ArgumentParser(prog="python -m fpnas.space", description=__doc__.splitlines()[0])
    parser.add_argument("space", nargs="?", help=f"space name ({', '.join(SearchSpace.available())}) or YAML file")
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
            space = SearchSpace.load(name)
            spec = dict(space.spec)
            if args.num_classes:
                spec["num_classes"] = args.num_classes
            if args.input_size:
                spec["input_size"] = args.input_size
            space = SearchSpace(spec, name=space.name)
            stats = space_statistics(space, args.samples, args.lam)
            rows.append(stats)
            if len(names) == 1:
                print(format_report(space, stats))
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if len(names) > 1:
        print("| space | px | blocks | widths per | log10 archs | FD logits | JD logits | JD/FD | H0 nats | K0 | MFLOPs min / median / max (uniform) | params M median |")
        print("|---|---|---|---|---|---|---|---|---|---|---|---|")
        for s in rows:
            print(f"| {s['space']} | {s['input_size']} | {s['blocks']} | {s['channels_per']} | {s['log10_architectures']} | {s['fd_logits']} "
                  f"| {s['jd_logits']} | {s['jd_fd_ratio']} | {s['entropy_h0_nats']} | {s['k0']} | "
                  f"{s['mflops_uniform_min']:.1f} / {s['mflops_uniform_median']:.1f} / {s['mflops_uniform_max']:.1f} "
                  f"| {s['params_m_uniform_median']:.2f} |")
    return 0
