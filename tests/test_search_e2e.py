"""End to end: compose the Hydra config, search, check the outputs, rebuild from arch.yaml."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir

from fpnas.runtime import threads
from fpnas.search.run import run_search
from fpnas.space.arch import load_architecture
from tests.helpers import MICRO, quick_search

ROOT = Path(__file__).resolve().parents[1]
SHORT = ["trainer.max_epochs=2", *quick_search(train_batches=6, val_batches=4)]


def _cfg(tmp_path, overrides):
    with initialize_config_dir(version_base="1.3", config_dir=str(ROOT / "conf")):
        return compose("search", overrides=[f"paths.output_dir={tmp_path}", *overrides])


def test_search_writes_every_output_and_the_architecture_rebuilds(tmp_path):
    summary = run_search(_cfg(tmp_path, SHORT))
    for name in ("arch.yaml", "search_summary.json", "checkpoints/last.ckpt", "csv/metrics.csv"):
        assert (tmp_path / name).is_file(), name
    written = json.loads((tmp_path / "search_summary.json").read_text())
    assert written == summary
    required = {
        "target_mflops",
        "arch_mflops",
        "arch_params_m",
        "val_acc",
        "total_arch_samples",
        "steps",
        "epochs",
        "entropy_initial",
        "entropy_final",
        "k_initial",
        "k_final",
        "wall_time_s",
    }
    assert required <= set(written)
    assert written["steps"] == 12 and written["epochs"] == 2 and written["phase_final"] == "joint"
    assert written["k_initial"] == 4 and written["entropy_initial"] == pytest.approx(17.2766, abs=1e-3)
    assert written["total_arch_samples"] >= 2 * written["steps"]
    arch = load_architecture(tmp_path / "arch.yaml")
    macs, params = arch.complexity()
    assert macs / 1e6 == pytest.approx(written["arch_mflops"], rel=1e-9)
    model = arch.build()
    assert sum(p.numel() for p in model.parameters()) == params
    assert model(torch.randn(2, 1, 28, 28)).shape == (2, 10)
    header = (tmp_path / "csv" / "metrics.csv").read_text().splitlines()[0].split(",")
    for metric in (
        "search/entropy",
        "search/K",
        "search/samples_total",
        "search/flops_expected",
        "search/flops_argmax",
        "search/cost_penalty",
        "val/acc",
        "prob/g3.channels/40",
    ):
        assert metric in header, metric


def test_resume_after_the_switch_continues_the_same_counters(tmp_path):
    run_search(_cfg(tmp_path, SHORT))
    summary = run_search(_cfg(tmp_path, [*SHORT, "trainer.max_epochs=3", "ckpt_path=last"]))
    assert summary["epochs"] == 3 and summary["steps"] == 18 and summary["phase_final"] == "joint"


def _cli(tmp_path, *overrides):
    env = {k: v for k, v in os.environ.items() if k not in ("HYDRA_FULL_ERROR",)}
    return subprocess.run(
        [sys.executable, str(ROOT / "search.py"), f"hydra.run.dir={tmp_path}", *overrides],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=300,
    )


def test_cli_search_on_the_digits_data(tmp_path):
    proc = _cli(tmp_path, "data=digits", "space=micro", "cost.target_mflops=0.08", *SHORT)
    assert proc.returncode == 0, proc.stderr[-2000:]
    summary = json.loads((tmp_path / "search_summary.json").read_text())
    assert summary["space"] == "micro" and summary["arch_mflops"] > 0
    assert not (tmp_path / "outputs").exists()  # nothing written outside the run directory
    # the thread count sets the numerics: the machine's usable cores (threads=auto), recorded
    assert summary["threads_setting"] == "auto" and summary["threads"] == threads.usable_cores()


@pytest.mark.parametrize(
    "overrides, message",
    [
        (
            ["cost.target_mflops=0.01"],
            "cost.target_mflops=0.01 is below what space 'tiny' can reach (min 0.2047, max 2.063",
        ),
        (["sampler.lam=0"], "sampler.lam must be > 0"),
        (["sampler=fixed", "sampler.k=0"], "sampler.k must be an integer >= 1"),
        (["sampler.k_min=0"], "sampler.k_min must be an integer >= 1"),
        (["distribution.schedule=sometimes"], "distribution.schedule must be one of"),
    ],
)
def test_bad_input_fails_fast_with_one_line(tmp_path, overrides, message):
    proc = _cli(tmp_path, *overrides)
    assert proc.returncode == 2
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("error: ") and message in last
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "checkpoints").exists()  # failed before training


def test_unknown_space_lists_the_options(tmp_path):
    proc = _cli(tmp_path, "space=nope")
    assert proc.returncode != 0
    assert "Could not find 'space/nope'" in proc.stderr and "tiny" in proc.stderr


def test_unknown_data_lists_the_options(tmp_path):
    proc = _cli(tmp_path, "data=imagenet9")
    assert proc.returncode != 0
    assert "Could not find 'data/imagenet9'" in proc.stderr and "mnist5k" in proc.stderr


def test_switch_epoch_beyond_the_run_warns(tmp_path):
    from fpnas.search.run import instantiate_search

    with pytest.warns(UserWarning, match="never reaches the joint distribution"):
        instantiate_search(_cfg(tmp_path, ["distribution.switch_epoch=50"]))
    with pytest.warns(
        UserWarning,
        match="at or above the largest architecture of space 'tiny' .2.063 MFLOPs.: the cost term never acts",
    ):
        instantiate_search(_cfg(tmp_path, ["cost.target_mflops=3"]))
    module, datamodule = instantiate_search(_cfg(tmp_path, []))
    assert datamodule.num_classes == 10 and not datamodule.datasets  # built, nothing loaded yet
    assert module.space.name == "tiny" and module.sampler(17.3) == 4 and module.target("flops") == 0.6
    lo, hi = module.tables.macs_range()
    assert (round(lo / 1e6, 4), round(hi / 1e6, 4)) == (0.2047, 2.0632)


def test_the_module_node_builds_the_configured_optimizers_once_checked(tmp_path):
    from fpnas.search.run import instantiate_search

    cfg = _cfg(
        tmp_path,
        [
            "optim.omega._target_=torch.optim.AdamW",
            "~optim.omega.momentum",
            "~optim.omega.nesterov",
            "optim.alpha.lr=0.02",
            "cost.target_mflops=0.5",
        ],
    )
    module, _ = instantiate_search(cfg)
    omega, alpha = module.configure_optimizers()[0]
    assert type(omega) is torch.optim.AdamW and omega.defaults["lr"] == 0.1 and omega.defaults["weight_decay"] == 4e-5
    assert type(alpha) is torch.optim.Adam and alpha.defaults["lr"] == 0.02 and alpha.defaults["betas"] == (0.9, 0.999)
    assert module.hparams.optim_omega == "torch.optim.adamw.AdamW(lr=0.1, weight_decay=4e-05)"
    assert module.constraints[0].target == 0.5 and module.target("flops") == 0.5
    assert module.hparams.constraints == [
        {"metric": "flops", "target": 0.5, "beta": 0.75, "beta_lr": 0.0, "prefix": "cost"}
    ]


def test_resumed_search_ends_exactly_like_an_uninterrupted_one(tmp_path):
    """Stopped after the FD -> JD switch and resumed: the same alpha, bit for bit, and the same arch."""
    three = ["trainer.max_epochs=3", *quick_search(train_batches=4, val_batches=2), *MICRO]
    run_search(_cfg(tmp_path / "straight", three))
    # interrupted after 2 of 3 epochs (max_steps counts both optimizers' steps: 2 per search step);
    # the run still plans 3 epochs, so its cosine schedule is the uninterrupted run's
    run_search(_cfg(tmp_path / "resumed", [*three, "+trainer.max_steps=16"]))
    before = torch.load(tmp_path / "resumed" / "checkpoints" / "last.ckpt", weights_only=False)
    assert before["fpnas"]["phase"] == "joint"  # stopped after the switch
    summary = run_search(_cfg(tmp_path / "resumed", [*three, "ckpt_path=last"]))
    assert summary["phase_final"] == "joint" and summary["steps"] == 12
    straight = torch.load(tmp_path / "straight" / "checkpoints" / "last.ckpt", weights_only=False)["state_dict"]
    resumed = torch.load(tmp_path / "resumed" / "checkpoints" / "last.ckpt", weights_only=False)["state_dict"]
    assert torch.equal(straight["members.0.distribution.alpha"], resumed["members.0.distribution.alpha"])
    assert all(torch.equal(straight[k], resumed[k]) for k in straight)
    assert (
        load_architecture(tmp_path / "straight" / "arch.yaml").indices
        == load_architecture(tmp_path / "resumed" / "arch.yaml").indices
    )
