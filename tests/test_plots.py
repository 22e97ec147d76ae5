"""Search pictures: the SearchPlots history (thinning, resume), the figures, and one short search
with TensorBoard that checks pictures, TensorBoard images, the summary table and top_archs.yaml."""

from pathlib import Path
from types import SimpleNamespace

import matplotlib.image
import matplotlib.pyplot as plt
import pytest
import torch
import yaml
from hydra import compose, initialize_config_dir
from pytorch_lightning.loggers import CSVLogger

from fpnas.errors import ConfigError
from fpnas.report.plots import HISTORY_KEYS, probability_heatmap, save_figure, search_figures
from fpnas.search.distribution import ArchDistribution
from fpnas.space.spec import SearchSpace
from tests.helpers import MICRO, callback, quick_search

ROOT = Path(__file__).resolve().parents[1]
PNG = b"\x89PNG\r\n\x1a\n"


class _FakeModule(SimpleNamespace):
    """What SearchPlots reads from a SearchModule."""

    def architecture_cost(self, idx):
        return 0.5e6, 0.01e6

    def expected_macs(self):
        return (0.25 + 0.001 * int(self.steps_done)) * 1e6

    def argmax_architecture(self):
        return torch.zeros(3, dtype=torch.long)

    @property
    def steps_completed(self):
        return int(self.steps_done)


def _feed(cb, module, steps):
    for _ in range(steps):
        module.steps_done += 1
        s = int(module.steps_done)
        module.last_step = SimpleNamespace(
            k=2 + s % 3,
            entropy=10.0 - 0.01 * s,
            macs=torch.tensor([1e5 * s, 2e5 * s], dtype=torch.float64),
            costs=torch.zeros(2),
        )
        cb.on_train_batch_end(None, module, None, None, 0)


def test_history_records_every_step_then_thins_and_round_trips():
    cb = callback("search_plots", dirpath="unused", max_points=10)
    module = _FakeModule(steps_done=torch.tensor(0), last_step=None, current_epoch=0, phase="factorized")
    cb.on_train_batch_end(None, module, None, None, 0)  # no step yet: nothing recorded
    assert cb.history["step"] == []
    _feed(cb, module, 10)
    h = cb.history
    assert h["step"] == list(range(1, 11)) and h["k"] == [2 + s % 3 for s in range(1, 11)]
    assert h["mflops_sampled_mean"][3] == pytest.approx(0.6) and h["mflops_sampled_min"][3] == pytest.approx(0.4)
    assert h["mflops_sampled_max"][3] == pytest.approx(0.8) and h["mflops_expected"][3] == pytest.approx(0.254)
    assert h["entropy"][0] == pytest.approx(9.99) and h["mflops_argmax"] == [0.5] * 10 and not any(h["joint"])
    _feed(cb, module, 15)  # 25 steps: thinned to every 2nd, then to every 4th step
    assert cb.stride == 4 and cb.history["step"] == [1, 5, 9, 13, 17, 21, 25]
    assert set(cb.history) == set(HISTORY_KEYS) and all(len(v) == 7 for v in cb.history.values())
    state = cb.state_dict()
    resumed = callback("search_plots", dirpath="unused", max_points=10)
    resumed.load_state_dict(state)
    module.phase = "joint"
    _feed(resumed, module, 4)  # steps 26..29: only step 29 is on the stride
    assert resumed.history["step"] == [1, 5, 9, 13, 17, 21, 25, 29] and resumed.history["joint"][-1] is True


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"every_n_epochs": -1}, "every_n_epochs must be an integer >= 0"),
        ({"max_points": 3}, "max_points must be an integer >= 10"),
    ],
)
def test_bad_arguments(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        callback("search_plots", dirpath="x", **kwargs)


def test_the_heatmap_marks_the_joint_mode(tmp_path):
    space = SearchSpace.load("micro")
    fd = ArchDistribution(space.sizes, space.units("factorized"), "factorized")
    fd.alpha.normal_(generator=torch.Generator().manual_seed(0))
    jd = fd.to_joint(space.units("joint"))
    fig = probability_heatmap(space, jd)
    ax = fig.axes[0]
    boxed = sorted((round(p.get_y() + 0.5), round(p.get_x() + 0.5)) for p in ax.patches)
    assert boxed == list(enumerate(jd.mode().tolist()))  # one red box per decision, on the mode's choice
    image = ax.images[0].get_array()
    assert image.shape == (space.num_decisions, 3)
    assert float(image[0, :2].sum()) == pytest.approx(1.0, abs=1e-6)  # g1.channels has 2 choices
    assert bool(image.mask[0, 2])  # the missing third choice is blank
    save_figure(fig, tmp_path / "p.png")
    assert (tmp_path / "p.png").read_bytes()[:8] == PNG


def test_search_figures_without_history_draw_only_the_probabilities():
    space = SearchSpace.load("micro")
    dist = ArchDistribution(space.sizes, space.units("factorized"), "factorized")
    figs = search_figures(space, dist, {k: [] for k in HISTORY_KEYS}, 0.08)
    assert list(figs) == ["probabilities"]


SHORT = [
    *MICRO,
    "trainer.max_epochs=2",
    *quick_search(train_batches=3),
    "callbacks.search_plots.every_n_epochs=1",
    "export.top_k=3",
    "export.candidates=1",  # arch.yaml is the most probable architecture within the target: top-k's first
]


class FigureRecordingLogger(CSVLogger):
    """A CSV logger whose writer also takes figures like TensorBoard's ``SummaryWriter``: checks what
    SearchPlots sends to TensorBoard without needing the tensorboard package."""

    figures: list = []  # (tag, global_step, figure width in inches)

    @property
    def experiment(self):
        writer = super().experiment
        writer.add_figure = lambda tag, figure, global_step=None, close=True: FigureRecordingLogger.figures.append(
            (tag, global_step, float(figure.get_size_inches()[0]))
        )
        writer.flush = lambda: None
        return writer


def _cfg(tmp_path, overrides):
    with initialize_config_dir(version_base="1.3", config_dir=str(ROOT / "conf")):
        return compose("search", overrides=[f"paths.output_dir={tmp_path}", *overrides])


def test_a_search_draws_logs_summarises_and_exports(tmp_path, capsys):
    from fpnas.search.run import run_search

    recorder = [
        f"+logger.figures._target_={__name__}.FigureRecordingLogger",
        f"+logger.figures.save_dir={tmp_path}",
        "+logger.figures.name=figures",
    ]
    FigureRecordingLogger.figures.clear()
    summary = run_search(_cfg(tmp_path, [*SHORT, *recorder]))
    out = capsys.readouterr().out
    for name in ("probabilities", "entropy_k", "mflops"):
        path = tmp_path / "plots" / f"{name}.png"
        assert path.read_bytes()[:8] == PNG
        assert matplotlib.image.imread(path).shape[0] > 200
    # the same figures to the figure-taking logger after epoch 1 and epoch 2 (= the end: drawn once);
    # Lightning's global step counts both optimizers: 2 per search step
    names = ("probabilities", "entropy_k", "mflops")
    assert [(t, s) for t, s, _ in FigureRecordingLogger.figures] == [(f"plots/{n}", s) for s in (6, 12) for n in names]
    # the summary table, once
    assert out.count("search result") == 1 and "found architecture" in out
    assert f"{summary['arch_mflops']:.4g} vs target 0.08" in out and str(tmp_path / "top_archs.yaml") in out
    assert "g2.b1" in out and str(tmp_path / "plots") in out
    # top-k
    doc = yaml.safe_load((tmp_path / "top_archs.yaml").read_text())
    assert doc["found"] == 3 and summary["top_archs_file"] == str(tmp_path / "top_archs.yaml")
    assert all(e["mflops"] <= 0.08 for e in doc["entries"]) and doc["phase"] == "joint"
    arch = yaml.safe_load((tmp_path / "arch.yaml").read_text())
    if arch["mflops"] <= 0.08:  # the mode is under the target: it is entry 1
        assert doc["entries"][0]["choices"] == arch["choices"]
    # the history is in the checkpoint and a resumed search continues it
    ckpt = torch.load(tmp_path / "checkpoints" / "last.ckpt", weights_only=False)
    state = ckpt["callbacks"]["SearchPlots"]
    assert state["history"]["step"] == list(range(1, 7)) and state["history"]["joint"] == [False] * 3 + [True] * 3
    run_search(_cfg(tmp_path, [*SHORT, *recorder, "trainer.max_epochs=3", "ckpt_path=last"]))
    ckpt = torch.load(tmp_path / "checkpoints" / "last.ckpt", weights_only=False)
    assert ckpt["callbacks"]["SearchPlots"]["history"]["step"] == list(range(1, 10))
    assert FigureRecordingLogger.figures[-1][:2] == ("plots/mflops", 18)


def test_tensorboard_event_files_hold_the_figures(tmp_path):
    pytest.importorskip("tensorboard", reason="logger=tensorboard needs the tensorboard package")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from fpnas.search.run import run_search

    run_search(_cfg(tmp_path, [*SHORT, "logger=tensorboard", "export.top_k=0"]))
    acc = EventAccumulator(str(tmp_path / "tensorboard"), size_guidance={"images": 0})
    acc.Reload()
    images = {tag: [e.step for e in acc.Images(tag)] for tag in acc.Tags()["images"]}
    assert images == {f"plots/{n}": [6, 12] for n in ("probabilities", "entropy_k", "mflops")}


# ----------------------------------------------------------------------------- no text outside a picture
def text_outside(fig) -> str:
    """ "" when everything ``fig`` draws lies on its canvas (matplotlib's tight bbox of the figure, which
    holds every drawn text: titles, axis and tick labels, annotations, legends), else how far it sticks out
    on each side, in inches (more than a pixel: a cut label)."""
    fig.canvas.draw()
    box = fig.get_tightbbox(fig.canvas.get_renderer())
    w, h = fig.get_size_inches()
    pixel = 1 / fig.dpi
    out = {"left": -box.x0, "bottom": -box.y0, "right": box.x1 - w, "top": box.y1 - h}
    return ", ".join(f"{side} {v:.2f} in" for side, v in out.items() if v > pixel)


def _history(steps: int) -> dict:
    h = {k: [] for k in HISTORY_KEYS}
    for s in range(1, steps + 1):
        values = {
            "step": s,
            "k": 2 + s % 3,
            "entropy": 10.0 - 0.01 * s,
            "mflops_sampled_mean": 0.3 + 0.001 * s,
            "mflops_sampled_min": 0.2,
            "mflops_sampled_max": 0.5,
            "mflops_expected": 0.31,
            "mflops_argmax": 0.33,
            "joint": s > steps // 2,
        }
        for k in HISTORY_KEYS:
            h[k].append(values.get(k, 0.0))
    return h


@pytest.mark.parametrize("space_name", ["micro", "tiny", "fbnetv2_f"])
def test_no_search_picture_cuts_a_label(space_name):
    """probabilities.png, entropy_k.png and mflops.png of spaces from 2 to many decisions: every text
    (title, axis labels, tick labels, cell values) lies inside the picture."""
    space = SearchSpace.load(space_name)
    dist = ArchDistribution(space.sizes, space.units("factorized"), "factorized")
    dist.alpha.normal_(generator=torch.Generator().manual_seed(0))
    for name, fig in search_figures(space, dist, _history(300), 0.3).items():
        assert text_outside(fig) == "", name
        plt.close(fig)


@pytest.mark.parametrize("which", ["tiny", "mobilenetv2_100"])
def test_the_architecture_picture_cuts_no_label(which):
    from fpnas.report.plots import architecture_figure
    from fpnas.space.arch import Architecture, load_architecture

    if which == "tiny":
        space = SearchSpace.load("tiny")
        arch = Architecture(space, [d.size - 1 for d in space.decisions])
    else:
        arch = load_architecture(ROOT / "conf" / "reference" / f"{which}.yaml")
    fig = architecture_figure(arch)
    assert text_outside(fig) == ""
    plt.close(fig)


def test_the_sweep_pareto_picture_cuts_no_label():
    from fpnas.report.sweep import pareto_figure

    rows = [
        {"arch_mflops": m, "val_acc": a, "target_mflops": t}
        for m, a, t in [(0.101, 0.9, 0.1), (0.2, 0.93, 0.2), (0.298, 0.925, 0.3), (0.399, 0.95, 0.4)]
    ]
    fig = pareto_figure(rows, "flops")
    assert text_outside(fig) == ""
    plt.close(fig)
