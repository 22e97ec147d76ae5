"""Golden outputs of ``search.py`` and ``train.py`` with their defaults at a fixed seed: a refactoring that
changes what a user gets (architecture, α, metrics, trained weights) fails here.

The runs are the default configuration shortened (epochs, batches, one thread). ``FPNAS_WRITE_GOLDEN=1``
rewrites tests/golden/ after an intended change of results; say why in the commit. The comparison allows
1e-6 (relative) so that another torch build's rounding does not fail it; a move of code gives 0.
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tests.helpers import ROOT, clean_env

GOLDEN = Path(__file__).parent / "golden"
SHORT = ["+trainer.limit_train_batches=4", "threads=1", "progress=lines"]
SEARCH = [*SHORT, "trainer.max_epochs=3", "+trainer.limit_val_batches=2", "search.warmup_epochs=1",
          "distribution.switch_epoch=2"]  # fmt: skip
TRAIN = [*SHORT, "trainer.max_epochs=2", "+trainer.limit_test_batches=2"]
NOT_PINNED = (
    "time",
    "wall",
    "threads",
    "arch",
    "init_from_search",
    "checkpoint",
)  # keys that name paths, clocks or the machine


def _run(script: str, out: Path, *overrides: str) -> None:
    proc = subprocess.run(
        [sys.executable, str(ROOT / script), f"paths.output_dir={out}", *overrides],
        env=clean_env(),
        cwd=out.parent,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]


def _metrics(path: Path) -> list[dict[str, float]]:
    with open(path) as f:
        return [{k: float(v) for k, v in row.items() if v != "" and "time" not in k} for row in csv.DictReader(f)]


def _summary(path: Path) -> dict:
    return {k: v for k, v in json.loads(path.read_text()).items() if not any(s in k for s in NOT_PINNED)}


def _weights(ckpt: Path) -> dict[str, list[float]]:
    """Each tensor of the checkpoint's state_dict as (sum, sum of squares, first value): a small fingerprint."""
    state = torch.load(ckpt, map_location="cpu", weights_only=True)["state_dict"]
    return {
        k: [v.double().sum().item(), v.double().square().sum().item(), v.flatten()[0].double().item()]
        for k, v in state.items()
        if v.numel()
    }


def _observed(tmp_path: Path) -> dict:
    search, train = tmp_path / "search", tmp_path / "train"
    _run("search.py", search, *SEARCH)
    _run("train.py", train, f"arch={search / 'arch.yaml'}", *TRAIN)
    ckpt = torch.load(search / "checkpoints/last.ckpt", map_location="cpu", weights_only=True)
    return {
        "search": {
            "arch.yaml": (search / "arch.yaml").read_text(),
            "alpha": ckpt["state_dict"]["members.0.distribution.alpha"].flatten().tolist(),
            "metrics": _metrics(search / "csv/metrics.csv"),
            "summary": _summary(search / "search_summary.json"),
            "weights": _weights(search / "checkpoints/last.ckpt"),
        },
        "train": {
            "metrics": _metrics(train / "csv/metrics.csv"),
            "summary": _summary(train / "train_summary.json"),
            "weights": _weights(train / "checkpoints/last.ckpt"),
        },
    }


def _close(observed, golden, where: str = "") -> None:
    if isinstance(golden, dict):
        assert sorted(observed) == sorted(golden), f"{where}: keys differ"
        for k in golden:
            _close(observed[k], golden[k], f"{where}/{k}")
    elif isinstance(golden, list):
        assert len(observed) == len(golden), f"{where}: length {len(observed)} != {len(golden)}"
        for i, (o, g) in enumerate(zip(observed, golden)):
            _close(o, g, f"{where}[{i}]")
    elif isinstance(golden, float) and not isinstance(golden, bool):
        assert observed == pytest.approx(golden, rel=1e-6, abs=1e-9, nan_ok=True), where
    else:
        assert observed == golden, where


@pytest.mark.filterwarnings("ignore")
def test_search_and_train_defaults_give_the_golden_outputs(tmp_path):
    observed = _observed(tmp_path)
    path = GOLDEN / "defaults.json"
    if os.environ.get("FPNAS_WRITE_GOLDEN") == "1":
        GOLDEN.mkdir(exist_ok=True)
        path.write_text(json.dumps(observed, indent=1) + "\n")
    golden = json.loads(path.read_text())
    _close(json.loads(json.dumps(observed)), golden)
