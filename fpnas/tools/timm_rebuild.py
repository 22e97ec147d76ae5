# Rebuild a model exported by `python -m fpnas.export` with timm, torch and safetensors only (no fpnas).
import json
from functools import partial
from pathlib import Path

from safetensors.torch import load_file
from timm.layers import create_conv2d
from timm.models._efficientnet_blocks import SqueezeExcite
from timm.models._efficientnet_builder import decode_arch_def
from timm.models.efficientnet import EfficientNet


def load_timm_model(directory):
    """timm's EfficientNet with the exported weights (config.json + model.safetensors), in eval mode."""
    cfg = json.loads((Path(directory) / "config.json").read_text())
    if not cfg["timm_rebuildable"]:
        raise ValueError(f"{directory} is not a timm model ({cfg['timm_reason']}); use {cfg['fpnas_loader']}")
    kw = cfg["timm_kwargs"]  # widths as given (round_chs_fn=int, fix_stem), no dilation (output_stride)
    se_layer = partial(SqueezeExcite, gate_layer=cfg["se_gate"])
    model = EfficientNet(decode_arch_def(cfg["arch_def"]), se_layer=se_layer, round_chs_fn=int, **kw)
    if cfg["stem_stride"] != 2:  # timm's EfficientNet always strides its stem by 2
        stem = (kw["in_chans"], kw["stem_size"], kw["stem_kernel_size"])
        model.conv_stem = create_conv2d(*stem, stride=cfg["stem_stride"])
    model.load_state_dict(load_file(Path(directory) / "model.safetensors"), strict=True)
    return model.eval()
