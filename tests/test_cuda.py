"""The search and retraining on a CUDA device (marker ``cuda``; skipped without a GPU).

``FPNAS_TEST_DEVICE=cpu pytest -m cuda`` runs the same tests on the CPU (what
``benchmarks/gpu_check.sh --cpu`` does), so the tests themselves are proven without a GPU; the
checks that only mean something on a GPU (device reads, fp16 loss scaling) skip there.
"""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path

import pytest
import torch
import yaml

from fpnas.search.run import run_search
from fpnas.space.arch import architecture_from_indices, load_architecture
from fpnas.space.builder import build_model
from fpnas.space.spec import SearchSpace
from fpnas.space.supernet import SuperNet
from fpnas.train.run import run_train
from tests.conftest import random_indices
from tests.helpers import MICRO, QUICK_SEARCH, clean_env, compose_config, search_on_two_loopback_nodes

ROOT = Path(__file__).resolve().parents[1]
DEVICE = os.environ.get("FPNAS_TEST_DEVICE") or ("cuda" if torch.cuda.is_available() else None)
ACCELERATOR = "gpu" if DEVICE == "cuda" else "cpu"
pytestmark = [
    pytest.mark.cuda,
    pytest.mark.skipif(DEVICE is None, reason="needs a CUDA GPU (FPNAS_TEST_DEVICE=cpu runs these tests on the CPU)"),
]
gpu_only = pytest.mark.skipif(DEVICE != "cuda", reason="means something only on a GPU")
SEARCH = [*MICRO, "trainer.max_epochs=2", *QUICK_SEARCH, "data.batch_size=32"]
CLEAN_ENV = clean_env()


@pytest.fixture(autouse=True)
def no_tf32():
    """Full float32 convolutions and matmuls, so that CUDA and CPU results compare at float32 rounding."""
    if DEVICE != "cuda":
        yield
        return
    before = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    yield
    torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = before


def _search(tmp_path: Path, overrides: list[str], accelerator: str = ACCELERATOR) -> dict:
    return run_search(compose_config("search", tmp_path, *SEARCH, f"trainer.accelerator={accelerator}", *overrides))


def _state(run_dir: Path) -> dict:
    return torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=False, map_location="cpu")["state_dict"]


@pytest.mark.parametrize("name", ["micro", "tiny", "fbnetv2_f"])
def test_supernet_output_equals_standalone_model_on_the_device(name):
    space = SearchSpace.load(name)
    space = SearchSpace(dict(space.spec, input_size=min(space.input_size, 32)), name=space.name)
    torch.manual_seed(0)
    net = SuperNet(space, eval_batch_stats=False).to(DEVICE)
    x = torch.randn(4, space.in_chans, space.input_size, space.input_size, device=DEVICE)
    for row in random_indices(space, 3, seed=3).tolist():
        model = build_model(space, row).to(DEVICE)
        model.load_state_dict(net.standalone_state_dict(row), strict=True)
        with torch.no_grad():
            for mode in ("eval", "train"):
                a, b = getattr(net, mode)()(x, row), getattr(model, mode)()(x)
                assert a.device.type == DEVICE and torch.allclose(a, b, atol=1e-4, rtol=1e-4), (mode, row)


def test_a_search_on_the_device_matches_the_same_search_on_the_cpu(tmp_path):
    """Same seed, same batches, same samples (the sampler's generator is a CPU one): after 4 steps
    through the FD -> JD switch the probabilities agree to 1e-3 and the counters exactly."""
    device_run, cpu_run = tmp_path / "device", tmp_path / "cpu"
    _search(device_run, [])
    _search(cpu_run, [], accelerator="cpu")
    a, b = _state(device_run), _state(cpu_run)
    assert int(a["steps_done"]) == int(b["steps_done"]) == 4
    assert int(a["samples_total"]) == int(b["samples_total"])
    pa, pb = torch.softmax(a["members.0.distribution.alpha"], 1), torch.softmax(b["members.0.distribution.alpha"], 1)
    assert (pa - pb).abs().max() <= 1e-3
    assert (pb - torch.softmax(torch.zeros_like(pb), 1)).abs().max() > 1e-2  # α did move


@pytest.mark.parametrize("precision", ["bf16-mixed", pytest.param("16-mixed", marks=gpu_only)])
def test_a_mixed_precision_search_runs_and_exports_within_the_target(tmp_path, precision):
    summary = _search(tmp_path, [f"trainer.precision={precision}", "export.top_k=3"])
    arch = load_architecture(tmp_path / "arch.yaml")
    assert arch.complexity()[0] / 1e6 <= 0.08 and summary["arch_mflops"] <= 0.08
    state = _state(tmp_path)
    assert state["members.0.distribution.alpha"].dtype == torch.float32 and bool(
        state["members.0.distribution.alpha"].isfinite().all()
    )
    top = yaml.safe_load((tmp_path / "top_archs.yaml").read_text())
    probs = [e["log_prob"] for e in top["entries"]]
    assert len(probs) == 3 and probs == sorted(probs, reverse=True)
    assert all(e["mflops"] <= 0.08 for e in top["entries"])


@gpu_only
def test_fp16_loss_scaling_leaves_the_alpha_gradient_unscaled(tmp_path):
    """α's gradient is closed form (never scaled by the GradScaler): under 16-mixed the optimizer
    must see the same gradient as under 32-true, not one divided by the loss scale (65536)."""
    grads = {}
    for precision in ("32-true", "16-mixed"):
        trace = tmp_path / f"{precision}.pt"
        _search(
            tmp_path / precision,
            [
                f"trainer.precision={precision}",
                "trainer.max_epochs=1",
                "+callbacks.alpha_grad._target_=tests.helpers.AlphaGradTrace",
                f"+callbacks.alpha_grad.path={trace}",
            ],
        )
        grads[precision] = torch.load(trace)[0]
    ratio = float(grads["16-mixed"].norm() / grads["32-true"].norm())
    assert 0.9 < ratio < 1.1, ratio


def test_train_py_one_epoch_on_the_device(tmp_path, cfg_train):
    space = SearchSpace.load("micro")
    path = architecture_from_indices(space, [1] * space.num_decisions).save(tmp_path / "arch.yaml")
    cfg = cfg_train(
        f"arch={path}",
        "data=digits",
        "trainer.max_epochs=1",
        f"trainer.accelerator={ACCELERATOR}",
        "model.channels_last=true",
    )
    summary = run_train(cfg)
    assert summary["epochs"] == 1 and 0.0 <= summary["test_acc"] <= 1.0
    assert json.loads((tmp_path / "train_summary.json").read_text()) == summary


@gpu_only
def test_a_search_step_reads_the_device_at_most_twice(tmp_path):
    """torch's sync debug mode flags every operation that waits for the GPU; inside a search step
    there is one (the step's numbers) plus at most the copy of α to the host."""
    from fpnas.search.module import SearchModule

    flagged: list[int] = []
    original = SearchModule.training_step

    def watched(self, batch, batch_idx):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            torch.cuda.set_sync_debug_mode("warn")
            try:
                out = original(self, batch, batch_idx)
            finally:
                torch.cuda.set_sync_debug_mode("default")
        flagged.append(sum("synchroniz" in str(w.message) for w in caught))
        return out

    SearchModule.training_step = watched
    try:
        _search(tmp_path, [])
    finally:
        SearchModule.training_step = original
    assert flagged and max(flagged) <= 2, flagged


def test_two_processes_on_one_device_with_gloo_match_one_process(tmp_path):
    """Two ranks on the same GPU (NCCL refuses two ranks per GPU, so gloo, which reduces CUDA
    tensors through the host), launched by torchrun as two single-device nodes on loopback."""
    one = tmp_path / "one"
    _search(one, ["search.sync_bn=true"])
    trainer = "trainer=ddp" if DEVICE == "cuda" else "trainer=ddp_cpu"
    overrides = [
        *SEARCH,
        "search.sync_bn=true",
        trainer,
        "trainer.devices=1",
        "trainer.num_nodes=2",
        "trainer.strategy.process_group_backend=gloo",
        "data.batch_size=16",
        f"hydra.run.dir={tmp_path / 'two'}",
    ]
    search_on_two_loopback_nodes(overrides, tmp_path, timeout=600)
    a, b = _state(one), _state(tmp_path / "two")
    assert int(a["steps_done"]) == int(b["steps_done"]) == 4
    pa, pb = torch.softmax(a["members.0.distribution.alpha"], 1), torch.softmax(b["members.0.distribution.alpha"], 1)
    assert (pa - pb).abs().max() <= 1e-5
