"""train.py's body: an architecture file becomes a trained plain model with a test accuracy."""

import json
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir

from fpnas.errors import ConfigError
from fpnas.space.arch import architecture_from_indices
from fpnas.space.spec import SearchSpace
from fpnas.train.run import run_train
from tests.helpers import QUICK_TRAIN, compose_config

ROOT = Path(__file__).resolve().parents[1]


def _cfg(tmp_path, overrides):
    return compose_config("train", tmp_path, *QUICK_TRAIN, *overrides)


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


# ----------------------------------------------------------------------------- recipe, resume, references
import torch  # noqa: E402

from fpnas.space.arch import load_architecture  # noqa: E402
from fpnas.train.distill import distillation_loss, load_teacher, warm_start_from_search  # noqa: E402


def _micro_arch(tmp_path):
    space = SearchSpace.load("micro")
    arch = architecture_from_indices(space, [1] * space.num_decisions)
    return arch, arch.save(tmp_path / "arch.yaml")


def test_recipe_reports_raw_and_ema_accuracy_and_resumes(tmp_path):
    _, path = _micro_arch(tmp_path)
    first = run_train(
        _cfg(
            tmp_path,
            [
                f"arch={path}",
                "data=digits",
                "trainer.max_epochs=2",
                "recipe.opt=adamw",
                "recipe.lr=0.01",
                "recipe.ema_decay=0.9",
            ],
        )
    )
    for key in (
        "test_acc",
        "test_acc_ema",
        "test_acc5",
        "test_acc5_ema",
        "mflops",
        "params_m",
        "epochs",
        "wall_time_s",
    ):
        assert key in first
    assert first["test_acc"] != first["test_acc_ema"] or first["test_acc5"] != first["test_acc5_ema"]
    assert first["test_acc5"] >= first["test_acc"] > 0.2
    ckpt = torch.load(tmp_path / "checkpoints" / "last.ckpt", weights_only=False)
    assert any(k.startswith("ema.module.") for k in ckpt["state_dict"]) and ckpt["hyper_parameters"]["arch"]
    lrs = [
        float(r.split(",")[-1])
        for r in (tmp_path / "csv" / "metrics.csv").read_text().splitlines()[1:]
        if r.split(",")[-1]
    ]
    assert lrs  # the learning rate is logged every step
    resumed = run_train(
        _cfg(
            tmp_path,
            [
                f"arch={path}",
                "data=digits",
                "trainer.max_epochs=3",
                "recipe.opt=adamw",
                "recipe.lr=0.01",
                "recipe.ema_decay=0.9",
                "ckpt_path=last",
            ],
        )
    )
    assert resumed["epochs"] == 3 and resumed["steps"] == first["steps"] * 3 // 2


def test_a_registered_reference_trains_on_other_data(tmp_path):
    summary = run_train(
        _cfg(
            tmp_path,
            [
                "arch=mobilenetv2_100",
                "data=digits",
                "input_size=16",
                "trainer.max_epochs=1",
                "+trainer.limit_train_batches=2",
            ],
        )
    )
    arch = load_architecture(tmp_path / "arch.yaml")  # the adapted architecture is written to the run
    assert (arch.space.name, arch.space.input_size, arch.space.num_classes, arch.space.in_chans) == (
        "mobilenetv2_100",
        16,
        10,
        1,
    )
    assert summary["params_m"] == arch.complexity()[1] / 1e6 and 2.2 < summary["params_m"] < 2.3


def test_distillation_term_depends_on_the_teacher():
    torch.manual_seed(0)
    student = torch.nn.Linear(6, 4)
    x, y = torch.randn(8, 6), torch.randint(0, 4, (8,))
    grads = []
    for teacher_logits, w in [(torch.randn(8, 4), 0.7), (torch.randn(8, 4), 0.7), (torch.randn(8, 4), 0.0)]:
        student.zero_grad()
        logits = student(x)
        loss, kd = distillation_loss(logits, teacher_logits, torch.nn.functional.cross_entropy(logits, y), w, 2.0)
        loss.backward()
        grads.append(student.weight.grad.clone())
        # (1 - w) CE + w T^2 KL(teacher || student)
        p_t = torch.softmax(teacher_logits / 2, 1)
        kl = (p_t * (p_t.log() - torch.log_softmax(logits.detach() / 2, 1))).sum(1).mean() * 4
        assert torch.isclose(kd.detach(), kl, atol=1e-6)
    assert not torch.allclose(grads[0], grads[1])  # another teacher, other gradients
    ce_only = torch.autograd.grad(torch.nn.functional.cross_entropy(student(x), y), student.weight)[0]
    assert torch.allclose(grads[2], ce_only, atol=1e-7)  # w = 0 is plain cross-entropy


def test_distillation_from_a_trained_checkpoint(tmp_path):
    _, path = _micro_arch(tmp_path)
    run_train(_cfg(tmp_path / "teacher", [f"arch={path}", "data=digits", "trainer.max_epochs=2"]))
    teacher_ckpt = tmp_path / "teacher" / "checkpoints" / "last.ckpt"
    teacher = load_teacher(str(teacher_ckpt), 10, 1)
    assert not teacher.training and not any(p.requires_grad for p in teacher.parameters())
    summary = run_train(
        _cfg(
            tmp_path / "student",
            [
                f"arch={path}",
                "data=digits",
                "trainer.max_epochs=2",
                f"distill.teacher={teacher_ckpt}",
                "distill.weight=0.5",
                "distill.temperature=2",
            ],
        )
    )
    assert summary["distill_teacher"] == str(teacher_ckpt) and summary["test_acc"] > 0.1  # chance: 0.1
    import csv

    rows = list(csv.DictReader(open(tmp_path / "student" / "csv" / "metrics.csv")))
    kd = [float(r["train/kd_step"]) for r in rows if r.get("train/kd_step")]
    loss = [float(r["train/loss_epoch"]) for r in rows if r.get("train/loss_epoch")]
    assert kd and all(v >= 0 for v in kd) and len(loss) == 2 and loss[1] < loss[0]  # it trains
    with pytest.raises(ConfigError, match="neither a checkpoint file nor a timm model"):
        load_teacher("no_such_model_xyz", 10, 1)
    with pytest.raises(ConfigError, match="teacher_checkpoint"):
        load_teacher("timm:resnet18", 10, 1)


def test_warm_start_copies_the_supernet_path(tmp_path):
    from fpnas.space.supernet import SuperNet

    space = SearchSpace.load("micro").with_num_classes(10, 1)
    torch.manual_seed(3)
    net = SuperNet(space, eval_batch_stats=False)
    ckpt = tmp_path / "search.ckpt"
    torch.save(
        {
            "fpnas": {"space": dict(space.spec, name="micro")},
            "state_dict": {f"supernet.{k}": v for k, v in net.state_dict().items()},
        },
        ckpt,
    )
    arch = architecture_from_indices(space, [1] * space.num_decisions)
    model = arch.build()
    assert warm_start_from_search(model, arch, str(ckpt)) > 10
    x = torch.randn(4, 1, 8, 8)
    with torch.no_grad():
        assert torch.allclose(net.eval()(x, arch.indices), model.eval()(x), atol=1e-5)
    other = architecture_from_indices(SearchSpace.load("tiny"), [0] * SearchSpace.load("tiny").num_decisions)
    with pytest.raises(ConfigError, match="not the architecture's space"):
        warm_start_from_search(other.build(), other, str(ckpt))


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda t: t.replace("g1.channels:", "g7.channels:"), r"unknown decision\(s\) \['g7.channels'\]"),
        (lambda t: t.replace("g1.b0.kernel: 5", "g1.b0.kernel: 7"), r"g1.b0.kernel=7 is not a choice"),
        (lambda t: t.replace("  g2.b1:", "  g2.b5: x\n  g2.b1:"), r"block\(s\) not in the space: \['g2.b5'\]"),
        (
            lambda t: "\n".join(line for line in t.splitlines() if not line.startswith("  g2.b1:")),
            r"missing block\(s\): \['g2.b1'\]",
        ),
    ],
)
def test_architecture_not_matching_its_space_names_the_entry(tmp_path, edit, message):
    from fpnas.space.reference import resolve_architecture

    space = SearchSpace.load("tiny")
    text = architecture_from_indices(space, [1] * space.num_decisions).save(tmp_path / "a.yaml").read_text()
    (tmp_path / "bad.yaml").write_text(edit(text))
    with pytest.raises(ConfigError, match=message):
        resolve_architecture(tmp_path / "bad.yaml")


def test_imagenet_preset_composes():
    with initialize_config_dir(version_base="1.3", config_dir=str(ROOT / "conf")):
        cfg = compose("train", overrides=["train_experiment=imagenet", "arch=efficientnet_b0", "paths.output_dir=x"])
    assert cfg.recipe.opt == "rmsproptf" and cfg.recipe.ema_decay == 0.9999 and cfg.recipe.label_smoothing == 0.1
    assert cfg.data._target_.endswith("ImageFolderDataModule") and cfg.data.auto_augment == "rand-m9-mstd0.5"
    assert cfg.model.drop_path_rate == 0.2


def test_channels_last_keeps_the_model_and_its_outputs():
    """model.channels_last: weights and batches in channels-last format, the same function."""
    from fpnas.train.module import TrainModule

    space = SearchSpace.load("micro").with_num_classes(10, in_chans=3)  # 3 channels: not a degenerate layout
    model = architecture_from_indices(space, [1] * space.num_decisions).build()
    x = torch.randn(4, 3, 8, 8)
    with torch.no_grad():
        expected = model.eval()(x)
    module = TrainModule(model, 10, channels_last=True, ema_decay=0.9)
    conv = module.model.conv_stem.weight
    assert conv.is_contiguous(memory_format=torch.channels_last) and not conv.is_contiguous()
    assert module.ema.module.conv_stem.weight.is_contiguous(memory_format=torch.channels_last)
    batch = module.on_after_batch_transfer({"train": [x, torch.zeros(4, dtype=torch.long)]}, 0)
    xb, yb = batch["train"]
    assert xb.is_contiguous(memory_format=torch.channels_last) and not xb.is_contiguous() and yb.dim() == 1
    with torch.no_grad():
        assert torch.allclose(module.model.eval()(xb), expected, atol=1e-5)
    plain = TrainModule(architecture_from_indices(space, [1] * space.num_decisions).build(), 10)
    assert plain.on_after_batch_transfer([x], 0)[0].is_contiguous()


# ----------------------------------------------------------------------------- dry run, own references
def test_dry_run_prints_the_table_and_totals_without_training(tmp_path, capsys, monkeypatch):
    from fpnas.data.digits import DigitsDataModule

    def no_loading(self):
        raise AssertionError("a dry run loads no data")

    monkeypatch.setattr(DigitsDataModule, "load_arrays", no_loading)
    arch, path = _micro_arch(tmp_path)
    out_dir = tmp_path / "run"
    summary = run_train(_cfg(out_dir, [f"arch={path}", "data=digits", "dry_run=true", "trainer.max_epochs=0"]))
    out = capsys.readouterr().out
    macs, params = arch.complexity()
    total = next(line for line in out.splitlines() if "total" in line)  # the table's footer
    assert [c.strip() for c in total.split("│")[-4:-1]] == [f"{macs / 1e6:.4f}", "100", f"{params:,}"]
    assert f"dry run: {macs / 1e6:.4f} MFLOPs (MACs), {params:,} params ({params / 1e6:.4f} M) at 8 px" in out
    for name in ("stem", "g1.b0", "g2.b1", "head"):
        assert name in out
    assert (summary["mflops"], summary["params_m"], summary["test_acc"]) == (macs / 1e6, params / 1e6, None)
    assert not out_dir.exists()  # no checkpoint, arch.yaml or summary


def test_max_epochs_0_points_to_dry_run(tmp_path):
    _, path = _micro_arch(tmp_path)
    with pytest.raises(ConfigError, match=r"trainer.max_epochs=0 is invalid: .*use dry_run=true"):
        run_train(_cfg(tmp_path, [f"arch={path}", "data=digits", "trainer.max_epochs=0"]))


def test_auto_adapts_a_reference_given_by_path(tmp_path, capsys):
    from fpnas.space.reference import REFERENCE_DIR, load_reference

    path = tmp_path / "my_f1.yaml"  # a user's copy: a file, not a registered name
    path.write_text((REFERENCE_DIR / "fbnetv2_f1.yaml").read_text())
    summary = run_train(_cfg(tmp_path / "run", [f"arch={path}", "data=digits", "input_size=16", "dry_run=true"]))
    expected = load_reference("fbnetv2_f1").with_data(10, 1, 16)  # classifier and stem follow the data
    assert summary["num_classes"] == 10 and summary["mflops"] == expected.complexity()[0] / 1e6
    assert f"{expected.complexity()[1]:,} params" in capsys.readouterr().out


def test_own_reference_by_name_through_hydra_searchpath(tmp_path):
    """The command line: ``hydra.searchpath=[file://<dir>] arch=<name>`` finds ``<dir>/reference/<name>.yaml``."""
    import subprocess
    import sys

    from fpnas.space.reference import REFERENCE_DIR, load_reference

    from .helpers import clean_env

    (tmp_path / "mine" / "reference").mkdir(parents=True)
    (tmp_path / "mine" / "reference" / "myref.yaml").write_text((REFERENCE_DIR / "mobilenetv2_100.yaml").read_text())
    proc = subprocess.run(
        [
            sys.executable,
            str(ROOT / "train.py"),
            f"hydra.searchpath=[file://{tmp_path / 'mine'}]",
            "arch=myref",
            "data=digits",
            "input_size=16",
            "dry_run=true",
            f"hydra.run.dir={tmp_path / 'run'}",
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=clean_env(),
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    macs, params = load_reference("mobilenetv2_100").with_data(10, 1, 16).complexity()
    assert f"dry run: {macs / 1e6:.4f} MFLOPs (MACs), {params:,} params" in proc.stdout
    assert not (tmp_path / "run" / "checkpoints").exists()
