"""Export a model to ONNX (checked with onnxruntime) and to weights + a config that timm alone rebuilds.

``python -m fpnas.export <arch.yaml | reference name | train run dir | train checkpoint .ckpt>
[--format onnx|timm] [--out DIR] [--batch N | --dynamic-batch] [--opset N] [--raw-weights]``

Every export writes, into one directory: ``model.safetensors`` (the standalone model's state dict),
``config.json`` (timm's block strings and the ``EfficientNet`` arguments that rebuild it without fpnas:
:mod:`fpnas.tools.timm_rebuild`; or ``timm_rebuildable: false`` and why), ``arch.yaml`` (for
:func:`load_exported`) and ``export_summary.json``. ``--format onnx`` (the default) adds ``model.onnx``,
run with onnxruntime on random inputs and compared with the PyTorch model (max |difference| <= 1e-4),
and its latency per image on this machine. A train checkpoint gives its EMA weights when it has them;
an architecture file or a reference name gives freshly initialised weights (with a warning).
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import sys
import time
import warnings
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from fpnas.errors import ConfigError, require_extra
from fpnas.runtime.checkpoint import check_checkpoint
from fpnas.runtime.cli import unwritable_reason
from fpnas.runtime.run_dir import RunDir
from fpnas.space.arch import architecture_from_dict, load_architecture
from fpnas.space.blocks.parts import TIMM_ACT_LAYER
from fpnas.space.builder import timm_arch_def
from fpnas.space.reference import available_references, resolve_architecture
from fpnas.tools.timm_rebuild import load_timm_model

log = logging.getLogger("fpnas")

FORMATS = ("onnx", "timm")
DEFAULT_OPSET = 17
ONNX_TOLERANCE = 1e-4  # max |onnxruntime - PyTorch| accepted, float32
TIMM_TOLERANCE = 1e-6  # max |timm rebuild - fpnas model|
CHECK_BATCHES = 3  # random input batches the ONNX check runs
OUTPUT_ROOT = Path("outputs") / "export"  # default --out of an architecture file or a reference name
FILES = {
    "onnx": "model.onnx",
    "weights": "model.safetensors",
    "config": "config.json",
    "arch": "arch.yaml",
    "summary": "export_summary.json",
}


WEIGHTS = {"ema": "EMA weights", "raw": "raw weights (not the EMA)", "init": "freshly initialised (no checkpoint)"}


class ExportCheckError(RuntimeError):
    """The exported file does not compute what the PyTorch model computes (a bug, not a user error)."""


@dataclass
class Source:
    """What is exported: the architecture, its model (eval mode) and where the weights came from."""

    arch: Any  # fpnas.space.arch.Architecture
    model: nn.Module
    weights: str  # "ema" | "raw" | "init"
    checkpoint: Path | None = None
    default_out: Path | None = None


# ----------------------------------------------------------------------------- what is exported
def _strip(state: dict, prefix: str) -> dict:
    return {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}


def _known_inputs() -> str:

    return (
        "give an arch.yaml, a reference name "
        f"({', '.join(available_references())}), a train.py run directory or its checkpoints/last.ckpt"
    )


def load_checkpoint(path: str | Path, use_ema: bool = True) -> Source:
    """The model of a ``train.py`` checkpoint: its architecture (kept in the checkpoint's hyper-parameters)
    with the EMA weights (``ema.module.*``) when it has them and ``use_ema``, else the raw ones (``model.*``)."""

    path = Path(path)
    check_checkpoint("checkpoint", path)  # missing or damaged: one line
    ckpt = torch.load(path, map_location="cpu", weights_only=False)
    if not isinstance(ckpt, dict):
        raise ConfigError(f"{path} holds a {type(ckpt).__name__}, not a train.py checkpoint")
    if "fpnas" in ckpt:
        raise ConfigError(
            f"{path} is a search.py checkpoint (super-net weights, not a trained model): train the architecture "
            f"first (python train.py arch=<run dir>/arch.yaml) and export that run, or export the run's arch.yaml "
            "for untrained weights"
        )
    arch_data = (ckpt.get("hyper_parameters") or {}).get("arch")
    state = ckpt.get("state_dict") or {}
    if not arch_data or not state:
        raise ConfigError(f"{path} was not written by fpnas train.py (no 'arch' hyper-parameter or no state_dict)")
    arch = architecture_from_dict(arch_data, where=path)
    model = arch.build()
    ema = _strip(state, "ema.module.")
    weights = "ema" if use_ema and ema else "raw"
    try:
        model.load_state_dict(ema if weights == "ema" else _strip(state, "model."), strict=True)
    except RuntimeError as exc:
        first = str(exc).split("\n\t")[1] if "\n\t" in str(exc) else str(exc)
        raise ConfigError(f"{path}: the weights do not fit its architecture ({first[:200]})") from None
    run_dir = path.parent.parent if path.parent.name == "checkpoints" else path.parent
    return Source(arch, model.eval(), weights, path, run_dir / "export")


def load_source(source: str | Path, use_ema: bool = True) -> Source:
    """An architecture file, a reference name, a ``train.py`` run directory or checkpoint -> its model.

    An architecture without weights (a file or a name) is built with fresh initial weights (seed 0) and a
    warning: its export checks the format before training, not a trained model."""

    text = str(source)
    path = Path(text)
    if path.is_dir():
        run = RunDir(path)
        if run.last_checkpoint.is_file():
            return load_checkpoint(run.last_checkpoint, use_ema)
        hint = f"; export its {run.arch} for untrained weights" if run.arch.is_file() else ""
        raise ConfigError(f"{path} is a directory without checkpoints/last.ckpt (not a train.py run){hint}")
    if not path.exists() and text not in available_references():
        raise ConfigError(f"{text} does not exist and is not a reference name: {_known_inputs()}")
    if path.suffix == ".ckpt" or (path.is_file() and zipfile.is_zipfile(path)):  # torch.save writes zip files
        return load_checkpoint(path, use_ema)
    arch, _ = resolve_architecture(text)
    with torch.random.fork_rng(devices=[]):  # fresh weights, the same on every export; the caller's RNG untouched
        torch.manual_seed(0)
        model = arch.build().eval()
    warnings.warn(
        f"{text} holds no weights: exporting freshly initialised weights (to check the format before "
        "training); give a train.py run directory or checkpoint for the trained model",
        UserWarning,
        stacklevel=2,
    )
    return Source(arch, model, "init", None, OUTPUT_ROOT / (path.stem if path.suffix else text))


# ----------------------------------------------------------------------------- timm: config.json + weights
def timm_config(arch) -> dict:
    """``config.json``: timm's architecture definition and the ``EfficientNet`` arguments that rebuild the
    standalone model exactly (:func:`fpnas.tools.timm_rebuild.load_timm_model`), or why timm cannot."""

    sp = arch.space
    configs = sp.resolve(arch.indices)
    own = [  # blocks whose kind builds its own module instead of timm's (split attention)
        (slot, cfg)
        for slot, cfg in zip(sp.blocks, configs)
        if not cfg.identity and cfg.kind.standalone_block(sp, cfg, 0.0) is not None
    ]
    reasons = []
    if own:
        slot, cfg = own[0]
        cells = cfg.kind.table_cells(cfg)
        reasons.append(
            f"{len(own)} block(s) are fpnas modules that timm has no block for, e.g. g{slot.group}.b{slot.position} "
            f"({cells['op']} k{cells['kernel']} {cfg.in_chs}->{cfg.out_chs}, {cells['attn']})"
        )
    if not sp.head_channels:
        reasons.append("its head is MobileNetV3's (no conv before pooling, conv_head after it), not EfficientNet's")
    elif sp.head_pool_channels:
        reasons.append("its head has a linear layer after pooling (FBNet IRPool head), which EfficientNet lacks")
    if sp.se_round == "round_channels":
        reasons.append(f"SE widths are rounded with timm's round_channels (se_divisor {sp.se_divisor}), not round()")
    elif sp.se_divisor > 1:
        reasons.append(f"SE widths are rounded with mobile-vision's rule (se_divisor {sp.se_divisor}), not timm's")
    if sp.se_act != "block":
        reasons.append(f"its SE has its own nonlinearity (se_act {sp.se_act}), not the block's")
    macs, params = arch.complexity()
    return {
        "format": "fpnas-export/1",
        "space": sp.name,
        "input_size": sp.input_size,
        "in_chans": sp.in_chans,
        "num_classes": sp.num_classes,
        "mflops": round(macs / 1e6, 4),
        "params": params,
        "timm_rebuildable": not reasons,
        "timm_reason": "; ".join(reasons) or None,
        "timm_class": "timm.models.efficientnet.EfficientNet",
        "fpnas_loader": "fpnas.tools.export.load_exported(<this directory>)",
        "arch_def": timm_arch_def(sp, arch.indices),
        "timm_kwargs": {
            "num_classes": sp.num_classes,
            "num_features": sp.head_channels,
            "in_chans": sp.in_chans,
            "stem_size": sp.stem_channels,
            "stem_kernel_size": sp.stem_kernel,
            "fix_stem": True,
            "output_stride": 1 << 20,
            "act_layer": TIMM_ACT_LAYER[sp.act],
        },
        "stem_stride": sp.stem_stride,
        "se_gate": sp.se_gate,
    }


def state_for_file(model: nn.Module) -> dict[str, torch.Tensor]:
    """The model's state dict as safetensors stores it: contiguous (train.py trains channels-last), detached."""
    return {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}


def write_weights(source: Source, out: Path) -> dict:
    """``model.safetensors``, ``config.json`` and ``arch.yaml``; a timm-rebuildable config is rebuilt at once
    with the README's snippet and compared with the model."""
    from safetensors.torch import save

    out.mkdir(parents=True, exist_ok=True)
    config = timm_config(source.arch)
    config["weights"] = source.weights
    config["checkpoint"] = str(source.checkpoint) if source.checkpoint else None
    # bytes, then an ordinary file (safetensors' save_file creates it readable by its owner only)
    (out / FILES["weights"]).write_bytes(save(state_for_file(source.model), metadata={"format": "pt"}))
    (out / FILES["config"]).write_text(json.dumps(config, indent=2) + "\n")
    source.arch.save(out / FILES["arch"])
    result = {"timm_rebuildable": config["timm_rebuildable"], "timm_reason": config["timm_reason"]}
    if config["timm_rebuildable"]:
        result["timm_max_abs_diff"] = check_timm_rebuild(source, out)
    return result


def check_timm_rebuild(source: Source, out: Path) -> float:
    """Rebuild ``out`` with :func:`fpnas.tools.timm_rebuild.load_timm_model` and compare it with the model: the
    same parameter names and outputs within :data:`TIMM_TOLERANCE`."""

    rebuilt = load_timm_model(out)
    mine, theirs = list(source.model.state_dict()), list(rebuilt.state_dict())
    if mine != theirs:
        raise ExportCheckError(
            f"{out}: timm's rebuild has other tensors than the model: {sorted(set(mine) ^ set(theirs))[:3]}"
        )
    x = random_inputs(source.arch, [2])[0]
    with torch.no_grad():
        diff = float((rebuilt(x) - source.model(x)).abs().max())
    if not diff <= TIMM_TOLERANCE:
        raise ExportCheckError(f"{out}: timm's rebuild differs from the model by {diff:.3g} (> {TIMM_TOLERANCE:g})")
    return diff


def load_exported(directory: str | Path) -> nn.Module:
    """The fpnas model of an export directory (``arch.yaml`` + ``model.safetensors``), in eval mode: for
    every architecture, including those timm cannot build (split attention)."""
    from safetensors.torch import load_file

    directory = Path(directory)
    model = load_architecture(directory / FILES["arch"]).build()
    model.load_state_dict(load_file(str(directory / FILES["weights"])), strict=True)
    return model.eval()


# ----------------------------------------------------------------------------- ONNX
def random_inputs(arch, batches: list[int], seed: int = 0) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    sp = arch.space
    return [torch.randn(b, sp.in_chans, sp.input_size, sp.input_size, generator=g) for b in batches]


def max_opset() -> int:
    """The highest opset torch's TorchScript exporter writes."""
    from torch.onnx import _constants

    return int(getattr(_constants, "ONNX_TORCHSCRIPT_EXPORTER_MAX_OPSET", 20))


def export_onnx(source: Source, path: Path, batch: int = 1, dynamic_batch: bool = False, opset: int = DEFAULT_OPSET):
    """``torch.onnx.export`` with the TorchScript exporter (``dynamo=False``: the torch.export-based one needs
    onnxscript, not a dependency); input ``input`` (N, C, H, W), output ``logits``; returns the file's opset."""
    import onnx

    x = random_inputs(source.arch, [batch])[0]
    axes = {"input": {0: "batch"}, "logits": {0: "batch"}} if dynamic_batch else None
    with warnings.catch_warnings(), torch.no_grad():
        warnings.filterwarnings("ignore", message=".*legacy TorchScript-based ONNX export.*")
        warnings.filterwarnings("ignore", message=".*The feature will be removed.*")
        torch.onnx.export(
            source.model,
            (x,),
            str(path),
            dynamo=False,
            opset_version=opset,
            input_names=["input"],
            output_names=["logits"],
            dynamic_axes=axes,
            do_constant_folding=True,
        )
    proto = onnx.load(str(path))
    onnx.checker.check_model(proto)
    return next(o.version for o in proto.opset_import if o.domain in ("", "ai.onnx"))


def ort_session(path: Path):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3  # errors only
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def check_onnx(
    source: Source, path: Path, batches: list[int], tolerance: float = ONNX_TOLERANCE
) -> tuple[float, float]:
    """``(max |onnxruntime - PyTorch (eval)|, max |PyTorch|)`` over random input batches (N(0, 1) images of the
    given batch sizes); a difference above ``tolerance`` is an error."""
    session = ort_session(path)
    diff = scale = 0.0
    for x in random_inputs(source.arch, batches, seed=1):
        (got,) = session.run(None, {"input": x.numpy()})
        with torch.no_grad():
            want = source.model(x)
        if tuple(got.shape) != tuple(want.shape):
            raise ExportCheckError(f"{path}: onnxruntime gives shape {list(got.shape)}, PyTorch {list(want.shape)}")
        diff = max(diff, float((torch.from_numpy(got) - want).abs().max()))
        scale = max(scale, float(want.abs().max()))
    if not diff <= tolerance:
        raise ExportCheckError(
            f"{path}: onnxruntime's output differs from PyTorch's by {diff:.3g} (> {tolerance:g}, float32; logits "
            f"up to {scale:.3g}) on {len(batches)} random batches; the file is kept for inspection"
        )
    return diff, scale


def onnx_latency(source: Source, path: Path, batch: int, warmup: int = 5, repeats: int = 50, budget_s: float = 3.0):
    """Median seconds per image of onnxruntime (CPU, its default threads) on one batch of ``batch``, after
    ``warmup`` runs; ``repeats`` runs, fewer (at least 5) when they take longer than ``budget_s``."""
    session = ort_session(path)
    feed = {"input": random_inputs(source.arch, [batch], seed=2)[0].numpy()}
    for _ in range(warmup):
        session.run(None, feed)
    times: list[float] = []
    end = time.perf_counter() + budget_s
    while len(times) < repeats and (len(times) < 5 or time.perf_counter() < end):
        start = time.perf_counter()
        session.run(None, feed)
        times.append(time.perf_counter() - start)
    return statistics.median(times) / batch, len(times)


# ----------------------------------------------------------------------------- the export
def check_arguments(fmt: str, batch: int, dynamic_batch: bool, opset: int, tolerance: float) -> None:
    if fmt not in FORMATS:
        raise ConfigError(f"--format {fmt!r} is not a known format: use one of {', '.join(FORMATS)}")
    if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
        raise ConfigError(f"--batch {batch!r} is invalid: it must be an integer >= 1, e.g. --batch 1")
    if dynamic_batch and batch != 1:
        raise ConfigError("--batch and --dynamic-batch exclude each other: a dynamic batch has no fixed size")
    if isinstance(tolerance, bool) or not isinstance(tolerance, (int, float)) or not tolerance > 0:
        raise ConfigError(f"--tolerance {tolerance!r} is invalid: it must be a number > 0, e.g. --tolerance 1e-4")
    top = max_opset()
    if isinstance(opset, bool) or not isinstance(opset, int) or not 9 <= opset <= top:
        raise ConfigError(
            f"--opset {opset!r} is invalid: torch's TorchScript ONNX exporter writes opsets 9 to {top}, "
            f"e.g. --opset {DEFAULT_OPSET}"
        )


def export_model(
    source: str | Path | Source,
    out: str | Path | None = None,
    format: str = "onnx",
    batch: int = 1,
    dynamic_batch: bool = False,
    opset: int = DEFAULT_OPSET,
    use_ema: bool = True,
    tolerance: float = ONNX_TOLERANCE,
) -> dict:
    """Export ``source`` into ``out`` and check it; returns the summary written to ``export_summary.json``.

    Args:
        source: an ``arch.yaml``, a reference name, a ``train.py`` run directory or checkpoint (see
            :func:`load_source`), or a :class:`Source`.
        out: the output directory (default: ``<run dir>/export`` of a checkpoint, else
            ``outputs/export/<name>``); files there are replaced.
        format: ``onnx`` (``model.onnx`` checked with onnxruntime, and the timm files) or ``timm``
            (``model.safetensors`` + ``config.json`` + ``arch.yaml`` only).
        batch: the ONNX file's fixed batch size; ``dynamic_batch``: a variable batch dimension instead.
        opset: ONNX opset (TorchScript exporter: 9 to 20).
        use_ema: a checkpoint's EMA weights when it has them (False: the raw weights).
        tolerance: the largest max |onnxruntime - PyTorch| accepted (float32 logits).

    Raises:
        ConfigError: bad input (a missing path, an unknown format, a missing extra: ``pip install -e ".[export]"``).
        ExportCheckError: the ONNX file or the timm rebuild does not compute what the model computes.
    """
    check_arguments(format, batch, dynamic_batch, opset, tolerance)
    if format == "onnx":
        require_extra("export", ("onnx", "onnxruntime"), "--format onnx")
    require_extra("export", ("safetensors",), "the export")
    src = source if isinstance(source, Source) else load_source(source, use_ema)
    out = Path(out) if out is not None else (src.default_out or OUTPUT_ROOT / src.arch.space.name)

    reason = unwritable_reason(out)
    if reason is not None:
        raise ConfigError(f"--out {out} cannot be created: {reason}; choose a writable directory")
    sp = src.arch.space
    macs, params = src.arch.complexity()
    summary: dict[str, Any] = {
        "source": str(src.checkpoint or src.arch.space.name) if isinstance(source, Source) else str(source),
        "weights": src.weights,
        "checkpoint": str(src.checkpoint) if src.checkpoint else None,
        "space": sp.name,
        "input": [sp.in_chans, sp.input_size, sp.input_size],
        "num_classes": sp.num_classes,
        "mflops": round(macs / 1e6, 4),
        "params": params,
        "format": format,
        "out": str(out),
    }
    summary |= write_weights(src, out)
    summary["files"] = {"weights": FILES["weights"], "config": FILES["config"], "arch": FILES["arch"]}
    if format == "onnx":
        path = out / FILES["onnx"]
        summary["opset"] = export_onnx(src, path, batch, dynamic_batch, opset)
        checked = [1, 2, 4] if dynamic_batch else [batch] * CHECK_BATCHES
        diff, scale = check_onnx(src, path, checked, tolerance)
        summary |= {
            "exporter": "torch.onnx.export (TorchScript, dynamo=False)",
            "batch": "dynamic" if dynamic_batch else batch,
            "onnx_max_abs_diff": diff,
            "onnx_max_abs_output": scale,
            "onnx_checked_batches": checked,
            "onnx_tolerance": tolerance,
            "onnx_bytes": path.stat().st_size,
        }
        latency_batch = 1 if dynamic_batch else batch
        seconds, runs = onnx_latency(src, path, latency_batch)
        import onnxruntime

        summary |= {
            "latency_ms_per_image": round(seconds * 1e3, 4),
            "latency": f"onnxruntime {onnxruntime.__version__} CPUExecutionProvider, default threads "
            f"({_cpus()} CPUs), batch {latency_batch}, median of {runs} runs after 5 warm-up runs",
        }
        summary["files"]["onnx"] = FILES["onnx"]
    (out / FILES["summary"]).write_text(json.dumps(summary, indent=2) + "\n")
    return summary


def _cpus() -> int:
    import os

    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def _size(n: int) -> str:
    return f"{n / 2**20:.2f} MiB" if n >= 2**20 else f"{n / 2**10:.1f} KiB"


def format_summary(s: dict) -> str:
    """The lines the CLI prints."""
    lines = [
        f"exported {s['source']} -> {s['out']}",
        f"  model          space '{s['space']}', input {'x'.join(map(str, s['input']))}, {s['num_classes']} classes, "
        f"{s['mflops']} MFLOPs, {s['params']:,} params",
        f"  weights        {WEIGHTS[s['weights']]}" + (f" of {s['checkpoint']}" if s["checkpoint"] else ""),
    ]
    if "opset" in s:
        lines += [
            f"  model.onnx     {_size(s['onnx_bytes'])}, opset {s['opset']}, batch {s['batch']}, {s['exporter']}",
            f"  check          max |onnxruntime - PyTorch| = {s['onnx_max_abs_diff']:.3g} (limit "
            f"{s['onnx_tolerance']:g}; logits up to {s['onnx_max_abs_output']:.3g}) on random batches of "
            f"{s['onnx_checked_batches']} images",
            f"  latency        {s['latency_ms_per_image']:.4g} ms per image ({s['latency']})",
        ]
    if s["timm_rebuildable"]:
        diff = s["timm_max_abs_diff"]
        timm = f"rebuild the model with timm alone (fpnas/tools/timm_rebuild.py; max |timm - fpnas| = {diff:.3g})"
    else:
        timm = (
            f"are not a timm model ({s['timm_reason']}); load them with fpnas.tools.export.load_exported('{s['out']}')"
        )
    lines += [
        f"  timm           model.safetensors + config.json {timm}",
        "  files          " + ", ".join(s["files"].values()) + ", export_summary.json",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m fpnas.export", description=__doc__.splitlines()[0])
    parser.add_argument("source", help="arch.yaml, a reference name, a train.py run directory or a train.py .ckpt")
    parser.add_argument("--format", default="onnx", help="onnx (default: model.onnx and the timm files) | timm")
    parser.add_argument("--out", help="output directory (default: <run dir>/export, or outputs/export/<name>)")
    parser.add_argument("--batch", type=int, default=1, help="fixed batch size of the ONNX file (default 1)")
    parser.add_argument("--dynamic-batch", action="store_true", help="a variable batch dimension instead")
    parser.add_argument("--opset", type=int, default=DEFAULT_OPSET, help=f"ONNX opset (default {DEFAULT_OPSET})")
    parser.add_argument("--raw-weights", action="store_true", help="a checkpoint's raw weights instead of its EMA")
    parser.add_argument(
        "--tolerance", type=float, default=ONNX_TOLERANCE, help="largest max |onnx - torch| accepted (default 1e-4)"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    def one_line_warning(message, category, filename, lineno, file=None, line=None):
        print(f"warning: {message}", file=sys.stderr)

    warnings.showwarning = one_line_warning
    try:
        summary = export_model(
            args.source,
            args.out,
            args.format,
            args.batch,
            args.dynamic_batch,
            args.opset,
            use_ema=not args.raw_weights,
            tolerance=args.tolerance,
        )
    except (ConfigError, ExportCheckError) as exc:
        print("error: " + " ".join(str(exc).split()), file=sys.stderr)
        return 2 if isinstance(exc, ConfigError) else 1
    except OSError as exc:
        print(f"error: {exc.filename or args.source}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    print(format_summary(summary))
    return 0


def run() -> None:
    """The ``fpnas-export`` command (``python -m fpnas.export``)."""
    sys.exit(main())


if __name__ == "__main__":
    run()
