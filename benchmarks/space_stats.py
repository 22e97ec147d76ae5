"""Space statistics of every shipped space: FD vs JD logits, H0, K0, FLOPs of uniform samples.

The paper's numbers for comparison (docs/method.md, §5): one FBNetV2-F block has 720 joint vs
23 factorized logits; the whole FBNetV2-F about 6.8K vs 311 (~22x); 6e25 architectures,
H0 = 59.36 nats and K0 = 14 at λ = 1/4.

    python benchmarks/space_stats.py [--quick]
"""

from __future__ import annotations

import argparse

from common import markdown_table, write_report

PAPER = {
    "fbnetv2_f": "6e25 archs (10^25.8), JD/FD ~22 (~6.8K / ~311), H0 59.36 = ln(6e25), K0 14",
    "fbnetv2_f_fine": "1e45 archs",
    "fpnas_l0": "2e32 archs, median 390 MFLOPs",
    "fpnas_l1": "1e36 archs, median 900 MFLOPs",
    "fpnas_l2": "1e36 archs, median 1100 MFLOPs",
}


def mflops(value: float) -> str:
    return f"{value:.0f}" if value >= 100 else f"{value:.3g}"


def main() -> None:
    from fpnas.space.spec import SearchSpace
    from fpnas.tools.space import space_statistics

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="the two small spaces, 100 samples")
    args = parser.parse_args()
    names = ["micro", "tiny"] if args.quick else SearchSpace.available()
    rows = []
    for name in names:
        stats = space_statistics(SearchSpace.load(name), samples=100 if args.quick else 1000)
        stats["paper"] = PAPER.get(name, "")
        stats["mflops_uniform"] = " / ".join(mflops(stats[f"mflops_uniform_{k}"]) for k in ("min", "median", "max"))
        rows.append(stats)
    md = markdown_table(
        rows,
        [
            ("space", "space"),
            ("input_size", "px"),
            ("blocks", "blocks"),
            ("channels_per", "widths per"),
            ("log10_architectures", "log10 archs"),
            ("fd_logits", "FD logits"),
            ("jd_logits", "JD logits"),
            ("jd_fd_ratio", "JD/FD"),
            ("entropy_h0_nats", "H0 nats"),
            ("k0", "K0 (λ=1/4)"),
            ("mflops_uniform", "MFLOPs uniform min / median / max"),
            ("paper", "paper (docs/method.md)"),
        ],
    )
    write_report("space_stats", args.quick, {"rows": rows}, md)


if __name__ == "__main__":
    main()
