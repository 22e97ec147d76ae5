"""Experiment presets (conf/experiment): the paper's settings compose from their shared base, are feasible,
and run; the debug preset is a search of a few steps."""

from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf
from PIL import Image

from fpnas.runtime.config import check_required
from fpnas.search.run import build_space, run_search
from fpnas.space.arch import load_architecture
from fpnas.space.complexity import ComplexityTables

ROOT = Path(__file__).resolve().parents[1]
PRESETS = {  # name: (space, input size, target MFLOPs) as in FP-NAS Tables 2-3
    "fpnas_s1": ("fbnetv2_f", 128, 58),
    "fpnas_s2": ("fbnetv2_f", 160, 88),
    "fpnas_s3": ("fbnetv2_f", 192, 131),
    "fpnas_s4": ("fbnetv2_f", 256, 240),
    "fpnas_s1pp": ("fbnetv2_f_pp", 128, 66),
    "fpnas_s4pp": ("fbnetv2_f_pp", 256, 268),
    "fpnas_l0": ("fpnas_l0", 224, 399),
    "fpnas_l1": ("fpnas_l1", 240, 728),
    "fpnas_l2": ("fpnas_l2", 256, 1045),
    "parsec_baseline": ("fbnetv2_f", 128, 58),
}
BASE = "fpnas_base"  # the nine paper presets' shared settings, included first by each of them
PAPER = sorted(set(PRESETS) - {"parsec_baseline"})  # parsec_baseline builds on fpnas_s1
EXPERIMENTS = ROOT / "conf" / "experiment"


def _cfg(tmp_path, overrides):
    with initialize_config_dir(version_base="1.3", config_dir=str(ROOT / "conf")):
        return compose("search", overrides=[f"paths.output_dir={tmp_path}", *overrides])


def test_every_preset_is_tested():
    assert {p.stem for p in EXPERIMENTS.glob("*.yaml")} == set(PRESETS) | {BASE, "debug"}


def _leaves(node, prefix=""):
    """dotted key -> value of a config file's mapping, its defaults list left out."""
    out = {}
    for key, value in node.items():
        if key != "defaults":
            out |= _leaves(value, f"{prefix}{key}.") if isinstance(value, dict) and value else {f"{prefix}{key}": value}
    return out


def _groups(defaults):
    """group -> option of a defaults list's ``override /group: option`` entries."""
    return {
        k.split()[-1].lstrip("/"): v
        for e in defaults
        if isinstance(e, dict)
        for k, v in e.items()
        if k.startswith("override ")
    }


@pytest.mark.parametrize("name", PAPER)
def test_paper_preset_is_the_shared_base_plus_what_differs(tmp_path, name):
    """Each paper preset includes the base first and states only what differs: the composed config has
    the base's value of every base key the preset does not set, and the preset's own value of the others."""
    base, own = (OmegaConf.to_container(OmegaConf.load(EXPERIMENTS / f"{n}.yaml")) for n in (BASE, name))
    assert own["defaults"][0] == BASE, f"{name}.yaml must include {BASE} first"
    base_keys, own_keys = _leaves(base), _leaves(own)
    repeated = sorted(k for k, v in own_keys.items() if k in base_keys and base_keys[k] == v)
    assert not repeated, f"{name}.yaml repeats the base's values of {repeated}: state only what differs"
    unset = sorted(k for k, v in base_keys.items() if v == "???" and k not in own_keys)
    assert not unset, f"{name}.yaml must set the base's required {unset}"
    with initialize_config_dir(version_base="1.3", config_dir=str(ROOT / "conf")):
        cfg = compose(
            "search",
            overrides=[f"paths.output_dir={tmp_path}", f"experiment={name}", "data.root=/data"],
            return_hydra_config=True,
        )
    for key, value in base_keys.items():
        assert OmegaConf.select(cfg, key) == own_keys.get(key, value), key
    choices = cfg.hydra.runtime.choices
    for group, option in (_groups(base["defaults"]) | _groups(own["defaults"])).items():
        assert choices[group] == option, group
    check_required(OmegaConf.masked_copy(cfg, [k for k in cfg if k != "hydra"]))  # no ??? left: what search.py checks


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


@pytest.mark.slow  # a longer end-to-end run: CI runs it (`pytest -m slow`); the default run stays short
def test_a_preset_searches_end_to_end_on_a_small_image_folder(tmp_path):
    data = tmp_path / "data"
    for split, count in (("train", 8), ("val", 2)):
        for c in range(3):
            (data / split / f"class{c}").mkdir(parents=True)
            for i in range(count):
                Image.new("RGB", (40, 36), (80 * c, 10 * i, 128)).save(data / split / f"class{c}" / f"{i}.png")
    out = tmp_path / "run"
    cfg = _cfg(
        out,
        [
            "experiment=fpnas_s1pp",
            f"data.root={data}",
            "data.num_classes_subset=2",
            "data.batch_size=4",
            "data.num_workers=0",
            "trainer.max_epochs=1",
            "search.warmup_epochs=0",
            "trainer.enable_progress_bar=false",
        ],
    )
    # the preset's coarse-to-fine switch (epoch 80 of 100) is beyond a one-epoch run, and the run says so
    with pytest.warns(UserWarning, match=r"distribution.switch_epoch=80 >= trainer.max_epochs=1: the search never"):
        summary = run_search(cfg)
    assert summary["space"] == "fbnetv2_f_pp" and summary["steps"] == 2  # 8 ω images / batch 4
    assert summary["k_initial"] == 27  # floor(0.25 * H0) of FBNetV2-F++ (per-block widths: H0 = 108.2 nats)
    names = (out / "classes.txt").read_text().split()
    assert len(names) == 2 and set(names) < {"class0", "class1", "class2"}
    assert (out / "arch.yaml").is_file()


def test_debug_preset_is_a_search_of_a_few_steps_within_its_target(tmp_path):
    """`python search.py experiment=debug`: 3 epochs of 4 steps (warm-up, factorized, joint) on the digits."""
    cfg = _cfg(tmp_path, ["experiment=debug"])
    summary = run_search(cfg)
    assert (summary["space"], summary["epochs"], summary["steps"], summary["phase_final"]) == ("micro", 3, 12, "joint")
    arch = load_architecture(tmp_path / "arch.yaml")
    macs, _ = arch.complexity()
    assert arch.space.name == "micro" and 0 < macs / 1e6 <= cfg.cost.target_mflops == 0.08
    assert summary["arch_mflops"] == pytest.approx(macs / 1e6)
