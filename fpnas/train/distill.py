"""Knowledge distillation ("simple distillation" of FP-NAS-L1/L2) and warm starts from a search.

Loss (Hinton et al. 2015): ``(1 - w) * CE(student, y) + w * T^2 * KL(softmax(teacher / T) || softmax(student / T))``.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from fpnas.errors import ConfigError
from fpnas.space.arch import architecture_from_dict
from fpnas.space.spec import SearchSpace
from fpnas.space.supernet import SuperNet


def kd_term(student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """``T^2 * KL(p_teacher^T || p_student^T)``, averaged over the batch."""
    t = float(temperature)
    return (
        F.kl_div(
            F.log_softmax(student_logits / t, 1),
            F.log_softmax(teacher_logits.detach() / t, 1),
            log_target=True,
            reduction="batchmean",
        )
        * t
        * t
    )


def distillation_loss(student_logits, teacher_logits, ce: torch.Tensor, weight: float, temperature: float):
    """``(loss, kd)`` with ``loss = (1 - weight) * ce + weight * kd``."""
    kd = kd_term(student_logits, teacher_logits, temperature)
    return (1.0 - weight) * ce + weight * kd, kd


def _strip(state: dict, prefix: str) -> dict:
    return {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}


def load_teacher(
    teacher: str, num_classes: int, in_chans: int, checkpoint: str | None = None, use_ema: bool = True
) -> nn.Module:
    """The teacher, in eval mode with frozen weights.

    Args:
        teacher: a ``.ckpt`` written by this project's ``train.py`` (the architecture is stored in
            it), or a timm model name (``timm:<name>`` or just ``<name>``) whose weights come from
            ``checkpoint`` (a local file; nothing is downloaded).
        num_classes, in_chans: the data's; a train.py teacher must match them.
        checkpoint: local weights of a timm teacher.
        use_ema: take a train.py checkpoint's EMA weights when it has them.
    """
    path = Path(str(teacher))
    if path.suffix == ".ckpt" or path.is_file():
        if not path.is_file():
            raise ConfigError(f"distill.teacher={teacher}: checkpoint file does not exist")

        ckpt = torch.load(path, map_location="cpu", weights_only=False)
        arch_data = (ckpt.get("hyper_parameters") or {}).get("arch")
        if not arch_data:
            raise ConfigError(
                f"distill.teacher={teacher} was not written by fpnas train.py (no 'arch' in its "
                "hyper-parameters); for a timm model give its name and distill.teacher_checkpoint"
            )
        arch = architecture_from_dict(arch_data, where=path)
        if (arch.space.num_classes, arch.space.in_chans) != (num_classes, in_chans):
            raise ConfigError(
                f"distill.teacher={teacher} has {arch.space.num_classes} classes and "
                f"{arch.space.in_chans} input channels; the data has {num_classes} and {in_chans}"
            )
        model = arch.build()
        state = ckpt["state_dict"]
        weights = _strip(state, "ema.module.") if use_ema else {}
        model.load_state_dict(weights or _strip(state, "model."), strict=True)
    else:
        import timm

        name = str(teacher).removeprefix("timm:")
        if not timm.is_model(name):
            raise ConfigError(f"distill.teacher={teacher!r} is neither a checkpoint file nor a timm model name")
        if not checkpoint or not Path(checkpoint).is_file():
            raise ConfigError(
                f"distill.teacher={teacher!r} needs local weights: set distill.teacher_checkpoint "
                "to a file (no download: pretrained=False)"
            )
        model = timm.create_model(
            name, pretrained=False, num_classes=num_classes, in_chans=in_chans, checkpoint_path=str(checkpoint)
        )
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model


@torch.no_grad()
def warm_start_from_search(model: nn.Module, arch, search_ckpt: str) -> int:
    """Copy a search checkpoint's super-net weights for ``arch``'s path into ``model``.

    Weights are sliced exactly as the super-net uses them (leading channels, kernel centres), via
    :meth:`~fpnas.space.supernet.SuperNet.standalone_state_dict`. Returns the number of tensors copied.
    """

    path = Path(str(search_ckpt))
    if not path.is_file():
        raise ConfigError(f"init.from_search={search_ckpt}: file does not exist")
    ckpt = torch.load(path, map_location="cpu", weights_only=False)
    spec = (ckpt.get("fpnas") or {}).get("space")
    if spec is None:
        raise ConfigError(f"init.from_search={search_ckpt} is not a search checkpoint (no 'fpnas' entry)")
    space = SearchSpace(spec, name=spec.get("name"))
    mine = arch.space
    if [(d.name, d.choices) for d in space.decisions] != [(d.name, d.choices) for d in mine.decisions] or len(
        space.blocks
    ) != len(mine.blocks):
        raise ConfigError(
            f"init.from_search: the checkpoint's space '{space.name}' is not the architecture's "
            f"space '{mine.name}' (decisions or blocks differ)"
        )
    if (space.num_classes, space.in_chans) != (mine.num_classes, mine.in_chans):
        raise ConfigError(
            f"init.from_search: the search had {space.num_classes} classes / {space.in_chans} "
            f"channels, the model {mine.num_classes} / {mine.in_chans}"
        )
    net = SuperNet(space)
    net.load_state_dict(_strip(ckpt["state_dict"], "supernet."), strict=True)
    state = net.standalone_state_dict(arch.indices)
    model.load_state_dict(state, strict=True)
    return len(state)
