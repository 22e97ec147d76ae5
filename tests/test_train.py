"""train.py's body: an architecture file becomes a trained plain model with a test accuracy."""
import json
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir

from fpnas.arch import architecture_from_indices
from fpnas.errors import ConfigError
from fpnas.run_train import run_train
from fpnas.space.spec import SearchSpace

ROOT = Path(__file__).resolve().parents[1]


def _cfg(tmp_path, overrides):
    with initialize_config_dir(version_base="1.3", config_dir=str(ROOT / "conf")):
        return compose("train", overrides=[f"paths.output_dir={tmp_path}", "trainer.enable_progress_bar=false",
                                           *overrides])


def test_train_an_architecture_file_on_digits(tmp_path):
    space = SearchSpace.load("micro")
    arch = architecture_from_indices(space, [1] * space.num_decisions)
    path = arch.save(tmp_path / "arch.yaml")
    summary = run_train(_cfg(tmp_path, [f"arch={path}", "data=digits", "trainer.max_epochs=4"]))
    assert json.loads((tmp_path / "train_summary.json").read_text()) == summary
    assert summary["epochs"] == 4
    macs, params = arch.complexity()
    assert summary["mflops"] == macs / 1e6 and summary["params_m"] == params / 1e6
    assert summary["test_acc"] > 0.6  # 10 classes: chance is 0.1
    assert (tmp_path / "checkpoints" / "last.ckpt").is_file()


def test_train_rejects_a_missing_or_mismatched_architecture(tmp_path):
    with pytest.raises(ConfigError, match="pass arch="):
        run_train(_cfg(tmp_path, []))
    space = SearchSpace.load("micro")
    path = architecture_from_indices(space, [0] * space.num_decisions).save(tmp_path / "arch.yaml")
    path.write_text(path.read_text().replace("in_chans: 1", "in_chans: 3"))
    with pytest.raises(ConfigError, match="3-channel input"):
        run_train(_cfg(tmp_path, [f"arch={path}", "data=digits"]))
