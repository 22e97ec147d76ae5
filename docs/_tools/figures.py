"""The figures of docs/method.md, drawn with matplotlib (no fpnas import, no torch).

    .venv/bin/python docs/_tools/figures.py                  # the diagrams: docs/img/*.svg
    .venv/bin/python docs/_tools/figures.py --run <run dir>  # also a real search's pictures: docs/img/run_*.png

``--run`` takes a finished ``search.py`` run directory (the pages use the default search:
``python search.py``) and copies its ``plots/*.png``, and draws its final pick from ``search_summary.json``.
The SVGs are written without dates or random ids, so running the script again changes nothing.
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.patches import Rectangle  # noqa: E402

OUT = Path(__file__).resolve().parents[1] / "img"
plt.rcParams.update(
    {
        "svg.fonttype": "none",  # text stays text (small files, searchable)
        "svg.hashsalt": "fpnas-docs",  # stable element ids
        "font.size": 10,
        "axes.spines.top": False,
        "axes.spines.right": False,
    }
)
COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd"]


def save(fig, name: str) -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    fig.savefig(OUT / name, metadata={"Date": None, "Creator": None} if name.endswith(".svg") else None, dpi=110)
    plt.close(fig)
    print(f"wrote {OUT / name}")


def softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max())
    return e / e.sum()


def distribution_and_samples() -> None:
    """One row per decision, one cell per choice shaded by its probability; K sampled architectures as
    paths that pick one cell per row."""
    decisions = [
        ("g1.channels", ["8", "12", "16"]),
        ("g1.b0.kernel", ["3", "5"]),
        ("g2.channels", ["16", "24", "32"]),
        ("g2.b0.kernel", ["3", "5"]),
        ("g2.b0.expansion", ["1", "3", "6"]),
        ("g2.b1.kernel", ["0 (skip)", "3", "5"]),
        ("g2.b1.se", ["0", "1"]),
    ]
    rng = np.random.default_rng(3)
    probs = [softmax(rng.normal(0, 0.9, len(c))) for _, c in decisions]
    samples = [[rng.choice(len(p), p=p) for p in probs] for _ in range(3)]
    fig, ax = plt.subplots(figsize=(7.6, 3.9))
    width = max(len(c) for _, c in decisions)
    for r, ((name, choices), p) in enumerate(zip(decisions, probs)):
        for c, (label, q) in enumerate(zip(choices, p)):
            ax.add_patch(Rectangle((c, -r - 1), 1, 1, facecolor=plt.cm.Blues(0.15 + 0.8 * q), edgecolor="white", lw=2))
            ax.text(c + 0.5, -r - 0.5, f"{label}\n{q:.2f}", ha="center", va="center", fontsize=8)
        ax.text(-0.15, -r - 0.5, name, ha="right", va="center", fontsize=9, family="monospace")
    for k, picks in enumerate(samples):
        xs = [p + 0.5 + (k - 1) * 0.18 for p in picks]
        ys = [-r - 0.5 for r in range(len(picks))]
        ax.plot(xs, ys, "-o", color=COLORS[k], lw=1.8, ms=4, label=f"A_{k + 1}")
    ax.set_xlim(-2.6, width + 0.1)
    ax.set_ylim(-len(decisions) - 0.1, 0.1)
    ax.axis("off")
    ax.legend(loc="center left", bbox_to_anchor=(1.0, 0.5), frameon=False, title="K = 3 samples")
    ax.set_title("P(A | α): one categorical per decision (cell: a choice and its probability)", fontsize=10)
    fig.tight_layout()
    save(fig, "distribution_samples.svg")


def weight_sharing() -> None:
    """Widths and kernels are slices of the super-net's largest weights."""
    fig, (a, b) = plt.subplots(1, 2, figsize=(7.6, 2.9), gridspec_kw={"width_ratios": [1, 1.6]})
    for i in range(5):
        for j in range(5):
            inner = 1 <= i <= 3 and 1 <= j <= 3
            a.add_patch(Rectangle((j, -i), 0.95, 0.95, facecolor="#9ecae1" if inner else "#eeeeee", edgecolor="grey"))
    a.text(2.5, 1.35, "depthwise kernel, max 5×5", ha="center")
    a.text(2.5, -4.6, "kernel 3 = the centre 3×3 slice", ha="center", color="#08519c")
    a.set_xlim(-0.3, 5.3)
    a.set_ylim(-5, 1.8)
    a.set_aspect("equal")
    a.axis("off")
    total, widths = 24, [(8, "#c6dbef"), (16, "#6baed6"), (24, "#2171b5")]
    for w, color in reversed(widths):
        b.add_patch(Rectangle((0, 0), w, 1, facecolor=color, edgecolor="white"))
    for w, _ in widths:
        b.annotate(f"width {w}", (w, 1), (w - 0.5, 1.7), ha="right", fontsize=9, arrowprops={"arrowstyle": "-"})
    b.text(total / 2, -0.7, "output channels: a width choice c uses channels 0 … c−1", ha="center")
    b.set_xlim(-0.5, total + 0.5)
    b.set_ylim(-1.2, 2.4)
    b.axis("off")
    fig.suptitle("One set of weights: every architecture runs on slices of the largest", fontsize=10)
    fig.tight_layout()
    save(fig, "weight_sharing.svg")


def factorized_to_joint() -> None:
    """FD: one categorical per variable; JD: one over their combinations; the switch keeps every probability."""
    kernel, act = np.array([0.2, 0.5, 0.3]), np.array([0.35, 0.65])
    learned = np.array([[0.05, 0.15], [0.10, 0.45], [0.22, 0.03]])
    fig, axes = plt.subplots(1, 4, figsize=(9.2, 2.7), gridspec_kw={"width_ratios": [1, 0.8, 1.3, 1.3]})
    axes[0].bar(["0", "3", "5"], kernel, color=COLORS[0])
    axes[0].set_title("FD: kernel (3 logits)", fontsize=9)
    axes[1].bar(["relu", "swish"], act, color=COLORS[2])
    axes[1].set_title("FD: act (2 logits)", fontsize=9)
    for ax in axes[:2]:
        ax.set_ylim(0, 0.8)
    for ax, grid, title in (
        (axes[2], np.outer(kernel, act), "JD at the switch (6 logits):\nexactly the product"),
        (axes[3], learned, "JD later: learns which\ncombinations go together"),
    ):
        ax.imshow(grid, cmap="Blues", vmin=0, vmax=0.6)
        for (i, j), q in np.ndenumerate(grid):
            ax.text(j, i, f"{q:.2f}", ha="center", va="center", fontsize=8, color="white" if q > 0.35 else "black")
        ax.set_xticks([0, 1], ["relu", "swish"])
        ax.set_yticks([0, 1, 2], ["k 0", "k 3", "k 5"])
        ax.set_title(title, fontsize=9)
        ax.spines[:].set_visible(False)
    fig.tight_layout()
    save(fig, "factorized_joint.svg")


def entropy_and_k() -> None:
    """K = max(K_min, floor(λ·H)) against the entropy H."""
    h = np.linspace(0, 100, 1001)
    fig, ax = plt.subplots(figsize=(7.2, 2.8))
    for lam, color in ((0.25, COLORS[0]), (0.125, COLORS[2])):
        ax.step(h, np.maximum(2, np.floor(lam * h)), where="post", color=color, label=f"λ = {lam:g}, K_min = 2")
    ax.axhline(14, color="grey", ls="--", lw=1)
    ax.text(1, 14.6, "PARSEC: fixed K = 14", color="grey", fontsize=9)
    for name, h0, side in (("tiny", 17.3, "left"), ("fbnetv2_f", 96.4, "right")):
        ax.axvline(h0, color="black", lw=0.6, ls=":")
        ax.text(h0 + (1 if side == "left" else -1), 26, f"H0 of {name}", fontsize=8, ha=side, va="top")
    ax.set_ylim(0, 27)
    ax.set_xlabel("entropy H of P(A | α), nats")
    ax.set_ylabel("K samples per step")
    ax.legend(frameon=False, loc="center left", bbox_to_anchor=(1.0, 0.5))
    fig.tight_layout()
    save(fig, "entropy_k_rule.svg")


def hinge_cost() -> None:
    """C = max(0, cost/target − 1): zero under the target, growing linearly above it."""
    x = np.linspace(0.4, 1.8, 200)
    fig, ax = plt.subplots(figsize=(5.6, 2.6))
    ax.plot(x, np.maximum(0, x - 1), color=COLORS[1])
    ax.axvline(1, color="grey", ls="--", lw=1)
    ax.text(1.02, 0.7, "target", color="grey")
    ax.text(0.45, 0.08, "within the target: no penalty", fontsize=9)
    ax.set_xlabel("MFLOPs(A) / target")
    ax.set_ylabel("C(A)")
    fig.tight_layout()
    save(fig, "hinge_cost.svg")


def one_step() -> None:
    """The two updates of one search step, and the loop back to the distribution."""
    fig, ax = plt.subplots(figsize=(9.2, 3.0))
    ax.axis("off")
    ax.set_xlim(0, 10)
    ax.set_ylim(0, 4)
    style = {"boxstyle": "round,pad=0.45", "facecolor": "#f2f6fb", "edgecolor": "#6baed6"}
    boxes = {
        "dist": (1.0, 2.6, "P(A | α)\nits entropy H"),
        "k": (3.3, 2.6, "K = max(K_min, ⌊λ·H⌋)"),
        "draw": (5.6, 2.6, "draw A_1 … A_K:\none path each\nthrough the super-net"),
        "omega": (8.4, 3.3, "ω batch: ℓ_k, w_k = softmax(ℓ)_k\nω ← SGD on Σ w_k ∇ℓ_k"),
        "alpha": (
            8.4,
            1.4,
            "α batch: v_k and cost C_k\nm_k = softmax(v)_k − β·C_k / ΣC\nα ← Adam on Σ m_k ∇log P(A_k | α)",
        ),
    }
    for x, y, text in boxes.values():
        ax.text(x, y, text, ha="center", va="center", fontsize=9, bbox=style)
    arrow = {"arrowstyle": "->", "color": "grey", "lw": 1.2}
    for (x0, y0), (x1, y1) in (
        ((1.85, 2.6), (2.15, 2.6)),
        ((4.45, 2.6), (4.7, 2.6)),
        ((6.55, 2.8), (6.95, 3.2)),
        ((6.55, 2.4), (6.95, 1.6)),
    ):
        ax.annotate("", xy=(x1, y1), xytext=(x0, y0), arrowprops=arrow)
    ax.annotate(
        "",
        xy=(1.0, 2.05),
        xytext=(7.0, 0.75),
        arrowprops={**arrow, "color": "#d62728", "connectionstyle": "arc3,rad=-0.15"},
    )
    ax.text(
        1.9, 1.55, "next step: the new α gives a new\ndistribution, a new H and a new K", color="#d62728", fontsize=9
    )
    fig.tight_layout()
    save(fig, "search_step.svg")


def from_run(run: Path) -> None:
    """A real search's pictures (plots/) and its final pick among the scored candidates."""
    for name in ("probabilities", "entropy_k", "mflops"):
        shutil.copyfile(run / "plots" / f"{name}.png", OUT / f"run_{name}.png")
        print(f"wrote {OUT / f'run_{name}.png'} (from {run})")
    summary = json.loads((run / "search_summary.json").read_text())
    candidates = summary.get("candidates") or []
    if not candidates:
        print("no scored candidates in search_summary.json: run_final_pick.svg not drawn")
        return
    fig, ax = plt.subplots(figsize=(6.4, 3.2))
    for filled, marker, label in (
        (False, "o", "most probable within the target"),
        (True, "^", "grown to fill the budget"),
    ):
        rows = [c for c in candidates if ("filled_from_rank" in c) == filled]
        ax.plot(
            [c["mflops"] for c in rows],
            [c["val_acc"] for c in rows],
            marker,
            color=COLORS[0],
            ms=5,
            label=label,
            fillstyle="full" if not filled else "none",
        )
    # the exported architecture's cost picks it out; among equal costs, the best score (the final pick's tie-break)
    same = [c for c in candidates if abs(c["mflops"] - summary["arch_mflops"]) < 1e-9] or candidates
    pick = max(same, key=lambda c: (c["val_acc"], c["val_log_lik"]))
    ax.plot(pick["mflops"], pick["val_acc"], "*", ms=15, color=COLORS[1], label="the pick (arch.yaml)")
    ax.axvline(summary["target_mflops"], color="grey", ls="--", lw=1)
    ax.text(summary["target_mflops"], ax.get_ylim()[0], " target", color="grey", va="bottom")
    ax.set_xlabel("MFLOPs")
    ax.set_ylabel("α-split accuracy (super-net)")
    ax.legend(frameon=False, fontsize=8, loc="best")
    fig.tight_layout()
    save(fig, "run_final_pick.svg")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=Path, help="a finished search.py run directory: copy its pictures too")
    args = parser.parse_args()
    distribution_and_samples()
    weight_sharing()
    factorized_to_joint()
    entropy_and_k()
    hinge_cost()
    one_step()
    if args.run:
        from_run(args.run)


if __name__ == "__main__":
    main()
