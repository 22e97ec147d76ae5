"""Experiment presets (conf/experiment): the paper's settings compose, are feasible, and run."""
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from PIL import Image

from fpnas.run_search import build_space, run_search
from fpnas.space.complexity import ComplexityTables

ROOT = Path(__file__).resolve().parents[1]
PRESETS = {  # name: (space, input size, target MFLOPs) as in FP-NAS Tables 2-3
    "fpnas_s1": ("fbnetv2_f", 128, 58), "fpnas_s2": ("fbnetv2_f", 160, 88), "fpnas_s3": ("fbnetv2_f", 192, 131),
    "fpnas_s4": ("fbnetv2_f", 256, 240), "fpnas_s1pp": ("fbnetv2_f_pp", 128, 66),
    "fpnas_s4pp": ("fbnetv2_f_pp", 256, 268), "fpnas_l0": ("fpnas_l0", 224, 399),
    "fpnas_l1": ("fpnas_l1", 240, 728), "fpnas_l2": ("fpnas_l2", 256, 1045),
    "parsec_baseline": ("fbnetv2_f", 128, 58),
}


def _cfg(tmp_path, overrides):
    with initialize_config_dir(version_base="1.3", config_dir=str(ROOT / "conf")):
        return compose("search", overrides=[f"paths.output_dir={tmp_path}", *overrides])


def test_every_preset_is_tested():
    assert {p.stem for p in (ROOT / "conf" / "experiment").glob("*.yaml")} == set(PRESETS)


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_preset_has_the_paper_settings_and_a_reachable_target(tmp_path, name):
    cfg = _cfg(tmp_path, [f"experiment={name}", "data.root=/nonexistent"])
    space_name, size, target = PRESETS[name]
    assert (cfg.space.name, cfg.space.input_size, cfg.cost.target_mflops) == (space_name, size, target)
    assert cfg.data.num_classes_subset == 100 and cfg.distribution.switch_epoch == 80
    if name == "parsec_baseline":
        assert cfg.sampler.k == 14 and cfg.distribution.schedule == "joint"
    else:
        assert cfg.sampler.lam == 0.25 and cfg.distribution.schedule == "coarse_to_fine"
    lo, hi = ComplexityTables(build_space(cfg)).macs_range()
    assert lo / 1e6 < target < hi / 1e6


def test_a_preset_searches_end_to_end_on_a_small_image_folder(tmp_path):
    data = tmp_path / "data"
    for split, count in (("train", 8), ("val", 2)):
        for c in range(3):
            (data / split / f"class{c}").mkdir(parents=True)
            for i in range(count):
                Image.new("RGB", (40, 36), (80 * c, 10 * i, 128)).save(data / split / f"class{c}" / f"{i}.png")
    out = tmp_path / "run"
    summary = run_search(_cfg(out, [
        "experiment=fpnas_s1pp", f"data.root={data}", "data.num_classes_subset=2", "data.batch_size=4",
        "data.num_workers=0", "trainer.max_epochs=1", "search.warmup_epochs=0", "trainer.enable_progress_bar=false"]))
    assert summary["space"] == "fbnetv2_f_pp" and summary["steps"] == 2  # 8 ω images / batch 4
    assert summary["k_initial"] == 27  # floor(0.25 * H0) of FBNetV2-F++ (per-block widths: H0 = 108.2 nats)
    names = (out / "classes.txt").read_text().split()
    assert len(names) == 2 and set(names) < {"class0", "class1", "class2"}
    assert (out / "arch.yaml").is_file()
