"""python -m fpnas.export: ONNX files checked against PyTorch with onnxruntime, EMA weights of a real train.py
checkpoint, and the docs' timm-only rebuild (fpnas/tools/timm_rebuild.py) run in a process that cannot import
fpnas."""

import json
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import torch

from fpnas.errors import ConfigError, MissingExtraError
from fpnas.space.arch import architecture_from_indices, load_architecture
from fpnas.space.reference import load_reference
from fpnas.space.spec import SearchSpace
from fpnas.tools.export import (
    ONNX_TOLERANCE,
    Source,
    export_model,
    load_checkpoint,
    load_exported,
    load_source,
    main,
    timm_config,
)
from tests.helpers import QUICK_TRAIN, clean_env, compose_config

ROOT = Path(__file__).resolve().parents[1]
SNIPPET = ROOT / "fpnas" / "tools" / "timm_rebuild.py"


def _arch(space: str | SearchSpace, pick=lambda decision, n: 1 % len(decision.choices)):
    space = SearchSpace.load(space) if isinstance(space, str) else space
    return architecture_from_indices(space, [pick(d, n) for n, d in enumerate(space.decisions)])


def _split_attention_arch():
    """FBNetV2-F++ with every split count (4, 2, 1 and none) at 64 px: 12 split-attention blocks."""

    def pick(d, n):
        if d.name.endswith("splits"):
            return d.choices.index((4, 2, 1, 0)[n % 4])
        return d.choices.index(3) if d.name.endswith("kernel") else n % len(d.choices)

    return _arch("fbnetv2_f_pp", pick).with_data(10, 3, 64)


def _sizeable(arch) -> Source:
    """A model whose logits are ~1-10, as a trained model's, not the ~1e-4 of a fresh initialisation (a weak
    test of the numbers): random batch-norm statistics and affine parameters, a larger classifier."""
    torch.manual_seed(0)
    model = arch.build()
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.normal_(0, 0.1)
            m.running_var.uniform_(0.5, 1.5)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.normal_(0, 0.1)
    torch.nn.init.normal_(model.classifier.weight, 0, 3 / model.classifier.in_features**0.5)  # logits ~ 1-10
    return Source(arch, model.eval(), "init")


def _ort(path: Path, x: torch.Tensor) -> torch.Tensor:
    ort = pytest.importorskip("onnxruntime")
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return torch.from_numpy(session.run(None, {"input": x.numpy()})[0])


# ----------------------------------------------------------------------------- ONNX round trips
def test_onnx_round_trip_of_a_tiny_architecture(tmp_path):
    pytest.importorskip("onnxruntime")
    arch = _arch("tiny")
    summary = export_model(_sizeable(arch), tmp_path / "fixed", batch=2)
    out = tmp_path / "fixed"
    assert summary["opset"] == 17 and summary["batch"] == 2 and summary["onnx_checked_batches"] == [2, 2, 2]
    assert summary["onnx_max_abs_diff"] <= ONNX_TOLERANCE and summary["onnx_max_abs_output"] > 1  # logits O(1)
    assert summary["onnx_bytes"] == (out / "model.onnx").stat().st_size > 250_000  # 74,752 float32 params
    assert 0 < summary["latency_ms_per_image"] < 1000
    assert json.loads((out / "export_summary.json").read_text()) == summary
    # independently: onnxruntime on new inputs vs the exported weights loaded back into fpnas's model
    model = load_exported(out)
    x = torch.randn(2, 1, 28, 28, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        want = model(x)
    got = _ort(out / "model.onnx", x)
    assert got.shape == (2, 10) and (got - want).abs().max() <= ONNX_TOLERANCE
    with pytest.raises(Exception, match="(?i)dimension|shape"):  # a fixed batch is fixed
        _ort(out / "model.onnx", x[:1])

    dynamic = export_model(_sizeable(arch), tmp_path / "dynamic", dynamic_batch=True, opset=13)
    assert dynamic["batch"] == "dynamic" and dynamic["opset"] == 13 and dynamic["onnx_checked_batches"] == [1, 2, 4]
    x5 = torch.randn(5, 1, 28, 28)
    with torch.no_grad():
        assert (_ort(tmp_path / "dynamic" / "model.onnx", x5) - model(x5)).abs().max() <= ONNX_TOLERANCE


def test_onnx_round_trip_of_a_split_attention_architecture(tmp_path):
    pytest.importorskip("onnxruntime")
    arch = _split_attention_arch()
    splits = [c.splits for c in arch.space.resolve(arch.indices) if not c.identity]
    assert {4, 2, 1, 0} <= set(splits)
    summary = export_model(_sizeable(arch), tmp_path, dynamic_batch=True)
    assert summary["onnx_max_abs_diff"] <= ONNX_TOLERANCE and summary["onnx_max_abs_output"] > 1
    x = torch.randn(3, 3, 64, 64, generator=torch.Generator().manual_seed(7))
    model = load_exported(tmp_path)  # the fpnas loader: arch.yaml + model.safetensors
    assert any(type(m).__name__ == "SplitAttnMBConv" for m in model.modules())
    with torch.no_grad():
        assert (_ort(tmp_path / "model.onnx", x) - model(x)).abs().max() <= ONNX_TOLERANCE
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["timm_rebuildable"] is False and "SA r=4" in config["timm_reason"]
    assert not summary["timm_rebuildable"] and "timm_max_abs_diff" not in summary


def test_an_architecture_without_weights_exports_fresh_weights_with_a_warning(tmp_path):
    path = _arch("micro").save(tmp_path / "arch.yaml")
    with pytest.warns(UserWarning, match="no weights: exporting freshly initialised weights"):
        summary = export_model(path, tmp_path / "out", format="timm")
    assert summary["weights"] == "init" and summary["timm_rebuildable"] and summary["timm_max_abs_diff"] == 0
    assert not (tmp_path / "out" / "model.onnx").exists()  # --format timm: no ONNX, no onnx needed
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "arch.yaml",
        "config.json",
        "export_summary.json",
        "model.safetensors",
    ]
    with pytest.warns(UserWarning):  # a reference name
        assert load_source("mobilenetv2_100").default_out == Path("outputs/export/mobilenetv2_100")


# ----------------------------------------------------------------------------- a real train.py checkpoint
def test_a_train_checkpoint_exports_its_ema_weights(tmp_path):
    from fpnas.train.run import run_train

    path = _arch("micro").save(tmp_path / "arch.yaml")
    run = tmp_path / "run"
    overrides = [f"arch={path}", "data=digits", "trainer.max_epochs=1", "+trainer.limit_train_batches=3"]
    run_train(compose_config("train", run, *QUICK_TRAIN, *overrides, "recipe.ema_decay=0.9", "threads=1"))
    ckpt = torch.load(run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
    ema = {k.removeprefix("ema.module."): v for k, v in ckpt["state_dict"].items() if k.startswith("ema.module.")}
    raw = {k.removeprefix("model."): v for k, v in ckpt["state_dict"].items() if k.startswith("model.")}
    assert ema.keys() == raw.keys() and any(not torch.equal(ema[k], raw[k]) for k in ema)

    src = load_source(run)  # the run directory: its checkpoints/last.ckpt
    assert src.weights == "ema" and src.default_out == run / "export"
    assert all(torch.equal(v, ema[k]) for k, v in src.model.state_dict().items())
    assert load_checkpoint(run / "checkpoints" / "last.ckpt", use_ema=False).weights == "raw"
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a checkpoint has weights: no warning
        summary = export_model(run, format="timm")
    assert summary["weights"] == "ema" and summary["out"] == str(run / "export")
    from safetensors.torch import load_file

    written = load_file(run / "export" / "model.safetensors")
    assert written.keys() == ema.keys() and all(torch.equal(written[k], ema[k]) for k in ema)
    assert load_architecture(run / "export" / "arch.yaml").to_dict() == load_architecture(run / "arch.yaml").to_dict()


def test_a_checkpoint_without_ema_gives_its_raw_weights(tmp_path):
    """A checkpoint dict as Lightning writes it for ``TrainModule`` with ``ema_decay=0``."""
    arch = _arch("tiny")
    model = arch.build()
    state = {f"model.{k}": v for k, v in model.state_dict().items()}
    torch.save({"state_dict": state, "hyper_parameters": {"arch": arch.to_dict()}}, tmp_path / "last.ckpt")
    src = load_source(tmp_path / "last.ckpt")
    assert src.weights == "raw" and all(
        torch.equal(v, model.state_dict()[k]) for k, v in src.model.state_dict().items()
    )


# ----------------------------------------------------------------------------- timm alone
REBUILD = r"""
import importlib.abc, json, sys

class NoFpnas(importlib.abc.MetaPathFinder):  # the rebuild must not import fpnas, even indirectly
    def find_spec(self, name, path=None, target=None):
        if name == "fpnas" or name.startswith("fpnas."):
            raise ImportError("fpnas is blocked in this process")

sys.meta_path.insert(0, NoFpnas())
import torch
torch.set_num_threads(1)  # the parent's kernels: the same float rounding, so the outputs can be compared to 1e-6
namespace = {}
exec(compile(open(sys.argv[1]).read(), sys.argv[1], "exec"), namespace)  # exactly the docs' lines
for directory in sys.argv[2:]:
    model = namespace["load_timm_model"](directory)
    x = torch.load(directory + "/input.pt")
    with torch.no_grad():
        torch.save({"out": model(x), "names": list(model.state_dict()), "cls": type(model).__module__ + "." +
                    type(model).__name__}, directory + "/timm_out.pt")
assert not any(m == "fpnas" or m.startswith("fpnas.") for m in sys.modules)
"""


def test_the_timm_snippet_rebuilds_the_model_without_fpnas(tmp_path):
    cases = {
        "tiny": _arch("tiny"),  # ds / ir blocks, SE, stem stride 2
        "micro": _arch("micro"),  # stem stride 1
        "tiny_fused": _arch("tiny_fused"),  # Fused-MBConv (timm EdgeResidual)
        "efficientnet_b0": load_reference("efficientnet_b0").with_data(10, 3, 64),  # SE relative to the input
        "tf_efficientnetv2_b0": load_reference("tf_efficientnetv2_b0"),  # conv + fused + ir
    }
    models = {}
    for name, arch in cases.items():
        src = _sizeable(arch)
        summary = export_model(src, tmp_path / name, format="timm")
        assert summary["timm_rebuildable"] and summary["timm_max_abs_diff"] <= 1e-6
        sp = arch.space
        torch.save(torch.randn(2, sp.in_chans, 64, 64, generator=torch.Generator().manual_seed(3)),
                   tmp_path / name / "input.pt")  # fmt: skip
        models[name] = src.model
    dirs = [str(tmp_path / n) for n in cases]
    subprocess.run(
        [sys.executable, "-c", REBUILD, str(SNIPPET), *dirs], cwd=tmp_path, env=clean_env(), check=True, timeout=300
    )
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        for name, model in models.items():
            result = torch.load(tmp_path / name / "timm_out.pt")
            assert result["cls"] == "timm.models.efficientnet.EfficientNet"
            assert result["names"] == list(model.state_dict())  # the same parameter names, in the same order
            with torch.no_grad():
                want = model(torch.load(tmp_path / name / "input.pt"))
            assert want.abs().max() > 0.5 and (result["out"] - want).abs().max() <= 1e-6, name
    finally:
        torch.set_num_threads(threads)


def test_kinds_timm_lacks_are_marked_in_config_json():
    sa = timm_config(_split_attention_arch())
    assert sa["timm_rebuildable"] is False and "fpnas modules that timm has no block for" in sa["timm_reason"]
    f1 = timm_config(load_reference("fbnetv2_f1"))  # IRPool head and mobile-vision's SE rounding
    assert (
        f1["timm_rebuildable"] is False and "after pooling" in f1["timm_reason"] and "se_divisor" in f1["timm_reason"]
    )
    mnv3 = timm_config(load_reference("mobilenetv3_large_100"))  # MobileNetV3's head, SE rounding and SE act
    assert mnv3["timm_rebuildable"] is False and all(
        s in mnv3["timm_reason"] for s in ("MobileNetV3's", "round_channels", "se_act relu")
    )
    assert timm_config(_arch("tiny"))["timm_rebuildable"] is True
    assert "load_exported" in sa["fpnas_loader"]


def test_the_docs_show_the_snippet_the_test_runs():
    """The export recipe includes fpnas/tools/timm_rebuild.py itself (pymdownx.snippets, a missing file fails
    the strict build), so the page shows exactly the lines this file's test runs."""
    page = (ROOT / "docs" / "recipes" / "export.md").read_text()
    assert '--8<-- "fpnas/tools/timm_rebuild.py"' in page


# ----------------------------------------------------------------------------- bad input, missing extra
def test_a_missing_onnx_extra_is_one_line_naming_the_pip_extra(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import onnxruntime -> ImportError
    with pytest.raises(
        MissingExtraError,
        match=r'--format onnx needs onnxruntime, which is not installed: pip install -e "\.\[export\]"',
    ):
        export_model("mobilenetv2_100", tmp_path)
    assert main(["mobilenetv2_100", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: ") and 'pip install -e ".[export]"' in err
    assert not any(tmp_path.iterdir())  # checked before anything is built or written


@pytest.mark.parametrize(
    "args, message",
    [
        (["nope"], "nope does not exist and is not a reference name: give an arch.yaml, a reference name"),
        (["missing/arch.yaml"], "missing/arch.yaml does not exist"),
        (["missing.ckpt"], "missing.ckpt does not exist"),
        (["mobilenetv2_100", "--format", "tflite"], "--format 'tflite' is not a known format: use one of onnx, timm"),
        (["mobilenetv2_100", "--batch", "0"], "--batch 0 is invalid"),
        (["mobilenetv2_100", "--batch", "2", "--dynamic-batch"], "exclude each other"),
        (["mobilenetv2_100", "--opset", "30"], "opsets 9 to 20"),
        (["{tmp}"], "is a directory without checkpoints/last.ckpt"),
        (["{tmp}/search.ckpt"], "is a search.py checkpoint"),
        (["{tmp}/damaged.ckpt"], "is not a readable PyTorch checkpoint"),
    ],
)
def test_bad_input_is_one_line(tmp_path, capsys, monkeypatch, args, message):
    monkeypatch.chdir(tmp_path)
    torch.save({"fpnas": {"space": {}}, "state_dict": {}}, tmp_path / "search.ckpt")
    (tmp_path / "damaged.ckpt").write_bytes(b"not a zip")
    assert main([a.replace("{tmp}", str(tmp_path)) for a in args]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: ") and message in err, err
    if len(args) == 1:  # the Python function raises the same user error
        with pytest.raises(ConfigError, match=message.split(":")[0]):
            export_model(args[0].replace("{tmp}", str(tmp_path)))
