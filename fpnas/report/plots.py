"""Pictures of a search and of an architecture (matplotlib, Agg backend: no display needed).

Every function returns a ``matplotlib.figure.Figure``; :func:`save_figure` writes and closes it.
The search history is a mapping of equally long lists, as kept by
:class:`fpnas.search.callbacks.SearchPlots` (keys in :data:`HISTORY_KEYS`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; importing this module never needs a display
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

from fpnas.space.rows import block_rows

HISTORY_KEYS = (
    "step",
    "epoch",
    "entropy",
    "k",
    "mflops_sampled_mean",
    "mflops_sampled_min",
    "mflops_sampled_max",
    "mflops_expected",
    "mflops_argmax",
    "joint",
)


def save_figure(fig: Figure, path: str | Path, dpi: int = 110) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi)
    plt.close(fig)
    return path


def _choice_label(value) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def probability_heatmap(space, dist, title: str = "") -> Figure:
    """One row per decision, one cell per choice: its marginal probability; boxed: the choices
    of the most likely architecture (the mode, which under a joint distribution need not be the
    per-decision argmax)."""
    import numpy as np
    from matplotlib.patches import Rectangle

    marginal = dist.marginals()
    probs = [marginal([d]).double().cpu().numpy() for d in range(space.num_decisions)]
    mode = dist.mode().tolist()
    width = max((len(p) for p in probs), default=1)
    grid = np.full((max(1, len(probs)), width), np.nan)
    for r, p in enumerate(probs):
        grid[r, : len(p)] = p
    rows = len(probs)
    fig, ax = plt.subplots(figsize=(2.2 + 0.75 * width, 1.2 + 0.22 * max(rows, 4)))
    cmap = matplotlib.colormaps["viridis"].with_extremes(bad="#eeeeee")  # grey: no such choice
    im = ax.imshow(grid, aspect="auto", cmap=cmap, vmin=0.0, vmax=1.0, interpolation="nearest")
    font = 7 if rows <= 60 else 5
    for r, (decision, p) in enumerate(zip(space.decisions, probs)):
        best = int(mode[r])
        for c, value in enumerate(decision.choices):
            ax.text(
                c,
                r,
                f"{_choice_label(value)}\n{p[c]:.2f}" if rows <= 40 else _choice_label(value),
                ha="center",
                va="center",
                fontsize=font,
                color="black" if p[c] > 0.6 else "white",
            )
        ax.add_patch(Rectangle((best - 0.5, r - 0.5), 1, 1, fill=False, edgecolor="red", linewidth=1.2))
    ax.set_yticks(range(rows), [d.name for d in space.decisions], fontsize=font)
    ax.set_xticks(range(width), [str(i) for i in range(width)], fontsize=7)
    ax.set_xlabel("choice: value and marginal probability\nred box: the most likely architecture", fontsize=8)
    ax.set_title(title or f"P(choice) per decision — {space.name}", fontsize=9)
    fig.colorbar(im, ax=ax, fraction=0.04, pad=0.02)
    fig.tight_layout()
    return fig


def _phase_switch(ax, history: Mapping[str, Sequence]) -> None:
    """Dashed vertical line where the distribution became joint (FD -> JD)."""
    joint, steps = history["joint"], history["step"]
    for i in range(1, len(joint)):
        if joint[i] and not joint[i - 1]:
            ax.axvline(steps[i], color="grey", linestyle="--", linewidth=1)
            ax.annotate(
                "FD→JD",
                (steps[i], 1),
                xycoords=("data", "axes fraction"),
                fontsize=7,
                xytext=(2, -10),
                textcoords="offset points",
                color="grey",
            )


def entropy_k_figure(history: Mapping[str, Sequence]) -> Figure:
    """Entropy H (nats) and the number of samples K per step."""
    fig, (ax_h, ax_k) = plt.subplots(2, 1, figsize=(6, 4.2), sharex=True)
    steps = history["step"]
    ax_h.plot(steps, history["entropy"], color="tab:blue")
    ax_h.set_ylabel("entropy H (nats)")
    ax_k.step(steps, history["k"], where="post", color="tab:orange")
    ax_k.set_ylabel("samples K")
    ax_k.yaxis.set_major_locator(MaxNLocator(integer=True))
    if len(history["k"]):
        ax_k.set_ylim(max(0, min(history["k"]) - 1), max(history["k"]) + 1)
    ax_k.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax_k.set_xlabel("search step")
    for ax in (ax_h, ax_k):
        ax.grid(alpha=0.3)
        _phase_switch(ax, history)
    fig.suptitle("entropy and K over the search", fontsize=9)
    fig.tight_layout()
    return fig


def mflops_figure(history: Mapping[str, Sequence], target_mflops: float | None) -> Figure:
    """MFLOPs of the sampled architectures (mean, min-max band), E[MFLOPs], argmax, target."""
    fig, ax = plt.subplots(figsize=(6, 3.6))
    steps = history["step"]
    ax.fill_between(
        steps,
        history["mflops_sampled_min"],
        history["mflops_sampled_max"],
        color="tab:blue",
        alpha=0.2,
        linewidth=0,
        label="sampled (min-max)",
    )
    ax.plot(steps, history["mflops_sampled_mean"], color="tab:blue", linewidth=1, label="sampled (mean)")
    ax.plot(
        steps, history["mflops_expected"], color="tab:green", linestyle="--", linewidth=1.2, label="expected E[MFLOPs]"
    )
    ax.plot(steps, history["mflops_argmax"], color="black", linewidth=1.2, label="most likely architecture")
    if target_mflops is not None:
        ax.axhline(target_mflops, color="red", linewidth=1.2, label=f"target {target_mflops:g}")
    _phase_switch(ax, history)
    ax.set_xlabel("search step")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylabel("MFLOPs (MACs)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="best")
    ax.set_title("sampled MFLOPs vs the target", fontsize=9)
    fig.tight_layout()
    return fig


def search_figures(space, dist, history: Mapping[str, Sequence], target_mflops: float | None) -> dict[str, Figure]:
    """The search's pictures by file stem; the history ones only once there is a history."""
    figs = {"probabilities": probability_heatmap(space, dist)}
    if history.get("step"):
        figs["entropy_k"] = entropy_k_figure(history)
        figs["mflops"] = mflops_figure(history, target_mflops)
    return figs


KERNEL_COLOURS = {3: "tab:blue", 5: "tab:orange", 7: "tab:green", 1: "tab:purple"}


def architecture_figure(arch, rows: list[dict] | None = None) -> Figure:
    """Block diagram: one box per block, height ~ output channels, colour = kernel size.

    Thick edge: SE or split attention; pale dashed box: a skipped block; ↓2: stride 2. The head's
    box is clipped to the widest block.
    """
    from matplotlib.patches import Patch, Rectangle

    rows = rows if rows is not None else block_rows(arch.space, arch.indices)
    widest = max((r["out"] for r in rows if r["kind"] != "head"), default=1) or 1  # the wide head is clipped
    fig, ax = plt.subplots(figsize=(max(6.0, 0.55 * len(rows) + 1.5), 4.2))
    for i, r in enumerate(rows):
        h = 0.25 + 0.75 * min(r["out"], widest) / widest
        if r["kind"] in ("stem", "head"):
            colour, style, lw = "lightgrey", "-", 1.0
        elif r["kind"] == "skip":
            colour, style, lw = "#f5f5f5", "--", 0.8
        else:
            colour, style, lw = KERNEL_COLOURS.get(r["kernel"], "tab:red"), "-", 2.4 if r["attn"] else 0.8
        ax.add_patch(
            Rectangle(
                (i - 0.4, -h / 2),
                0.8,
                h,
                facecolor=colour,
                edgecolor="black",
                linestyle=style,
                linewidth=lw,
                alpha=0.85,
            )
        )
        label = r["short"]
        ax.text(i, 0, label, ha="center", va="center", rotation=90, fontsize=6.5)
        if r.get("stride") == 2:
            ax.text(i, 0.56, "↓2", ha="center", va="bottom", fontsize=7)
        ax.text(i, -0.58, r["name"], ha="center", va="top", rotation=90, fontsize=6)
    ax.set_xlim(-0.7, len(rows) - 0.3)
    ax.set_ylim(-1.05, 0.75)
    ax.axis("off")
    kernels = sorted({r["kernel"] for r in rows if r["kind"] == "block"})
    handles = [Patch(facecolor=KERNEL_COLOURS.get(k, "tab:red"), label=f"k{k}") for k in kernels]
    handles += [
        Patch(facecolor="#f5f5f5", edgecolor="black", linestyle="--", label="skip"),
        Patch(facecolor="white", edgecolor="black", linewidth=2.4, label="SE / split attention"),
    ]
    ax.legend(
        handles=handles, fontsize=7, loc="upper right", ncol=len(handles), frameon=False, bbox_to_anchor=(1, 1.08)
    )
    macs, params = arch.complexity()
    ax.set_title(
        f"{arch.space.name}: {macs / 1e6:.4g} MFLOPs, {params / 1e6:.4g} M params, "
        f"{arch.space.input_size}px input (box height ~ output channels)",
        fontsize=9,
        loc="left",
    )
    fig.tight_layout()
    return fig
