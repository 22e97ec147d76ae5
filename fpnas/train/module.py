"""Retraining a found architecture from scratch as a plain model, with a recipe made of timm pieces.

The search splits the training images into an omega and an alpha half; retraining uses both: each
step trains on the omega batch and the alpha batch together. The held-out test split is used only
for the final evaluation, of the raw weights and of their exponential moving average (EMA).

Pieces: timm's optimizer factory (``sgd``, ``rmsproptf``, ``adamw``, ...), timm's scheduler factory
(cosine with linear warm-up, stepped every update), timm's label-smoothing cross-entropy, timm's
``ModelEmaV3`` (updated after every optimizer step), torchmetrics top-1 / top-5 accuracy, optional
distillation from a frozen teacher.
"""

from __future__ import annotations

from typing import Any

import pytorch_lightning as pl
import torch
from torch import nn
from torchmetrics.classification import MulticlassAccuracy

from fpnas.train.distill import distillation_loss


class TrainModule(pl.LightningModule):
    """Training of one standalone model.

    Args:
        model: the plain network.
        num_classes: classifier size (top-5 accuracy is reported when it exceeds 5).
        arch: the architecture as plain data (stored in checkpoints, so a checkpoint can be a teacher).
        opt, lr, weight_decay, momentum, opt_eps: timm ``create_optimizer_v2`` arguments (no weight
            decay on biases and norm weights, timm's default).
        sched, warmup_epochs, warmup_lr, min_lr, decay_epochs, decay_rate: timm ``create_scheduler_v2``
            arguments; the schedule is updated every optimizer step.
        label_smoothing: timm ``LabelSmoothingCrossEntropy`` smoothing (0 = plain cross-entropy).
        ema_decay: decay of the weight EMA (0 disables it); ``ema_warmup``: timm's decay warm-up.
        teacher: a frozen teacher network for distillation (not saved in checkpoints).
        distill_weight, distill_temperature: w and T of the distillation loss.
    """

    def __init__(
        self,
        model: nn.Module,
        num_classes: int,
        arch: dict | None = None,
        opt: str = "sgd",
        lr: float = 0.05,
        weight_decay: float = 4e-5,
        momentum: float = 0.9,
        opt_eps: float | None = None,
        sched: str = "cosine",
        warmup_epochs: float = 0,
        warmup_lr: float = 1e-5,
        min_lr: float = 0.0,
        decay_epochs: float = 2.4,
        decay_rate: float = 0.97,
        label_smoothing: float = 0.0,
        ema_decay: float = 0.0,
        ema_warmup: bool = True,
        teacher: nn.Module | None = None,
        distill_weight: float = 0.5,
        distill_temperature: float = 1.0,
        channels_last: bool = False,
    ):
        super().__init__()
        self.save_hyperparameters(ignore=["model", "teacher"])
        if channels_last:  # before the EMA copy, which then keeps the same memory format
            model = model.to(memory_format=torch.channels_last)
        self.model = model
        self.ema = None
        if ema_decay > 0:
            from timm.utils import ModelEmaV3

            self.ema = ModelEmaV3(model, decay=ema_decay, use_warmup=ema_warmup)
        object.__setattr__(self, "teacher", teacher)  # not a sub-module: never saved, never trained
        from timm.loss import LabelSmoothingCrossEntropy

        self.criterion = LabelSmoothingCrossEntropy(label_smoothing) if label_smoothing > 0 else nn.CrossEntropyLoss()
        ks = [1, 5] if num_classes > 5 else [1]
        self.eval_split = "test"  # metric prefix of test_step: test, or alpha when α is scored as validation
        self.test_metrics = nn.ModuleDict(
            {
                f"{'acc' if k == 1 else 'acc5'}{sfx}": MulticlassAccuracy(
                    num_classes=num_classes, top_k=k, average="micro"
                )
                for k in ks
                for sfx in (["", "_ema"] if self.ema is not None else [""])
            }
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)

    def on_after_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        """Images in channels-last memory format when ``channels_last`` (timm's --channels-last)."""
        if not self.hparams.channels_last:
            return batch
        from lightning_utilities import apply_to_collection

        return apply_to_collection(
            batch, torch.Tensor, lambda t: t.contiguous(memory_format=torch.channels_last) if t.dim() == 4 else t
        )

    def on_fit_start(self) -> None:
        if self.teacher is not None:
            self.teacher.to(self.device).eval()

    def training_step(self, batch, batch_idx):
        parts = list(batch.values()) if isinstance(batch, dict) else [batch]
        x = torch.cat([p[0] for p in parts])
        y = torch.cat([p[1] for p in parts])
        logits = self.model(x)
        loss = ce = self.criterion(logits, y)
        if self.teacher is not None:
            with torch.no_grad():
                teacher_logits = self.teacher(x)
            loss, kd = distillation_loss(
                logits, teacher_logits, ce, self.hparams.distill_weight, self.hparams.distill_temperature
            )
            self.log("train/kd", kd, on_step=True, on_epoch=True, batch_size=y.numel())
            self.log("train/ce", ce, on_step=True, on_epoch=True, batch_size=y.numel())
        self.log("train/loss", loss, prog_bar=True, on_step=True, on_epoch=True, batch_size=y.numel())
        self.log("train/lr", self.optimizers().param_groups[0]["lr"], on_step=True, on_epoch=False)
        return loss

    def optimizer_step(self, epoch, batch_idx, optimizer, optimizer_closure=None) -> None:
        super().optimizer_step(epoch, batch_idx, optimizer, optimizer_closure)
        # The EMA follows each update here, inside the step: a checkpoint written at the end of the step
        # (callbacks' on_train_batch_end, which Lightning runs before the module's) then holds the EMA of
        # that step, and a resume from it continues the uninterrupted run's EMA. global_step counts this
        # update once the hook returns: its number is global_step + 1.
        if self.ema is not None:
            self.ema.update(self.model, step=self.global_step + 1)

    def test_step(self, batch, batch_idx):
        x, y = batch
        models = {"": self.model} | ({"_ema": self.ema.module} if self.ema is not None else {})
        for sfx, net in models.items():
            logits = net(x)
            for name, metric in self.test_metrics.items():
                if name.endswith("_ema") == (sfx == "_ema"):
                    metric(logits, y)
                    self.log(f"{self.eval_split}/{name}", metric, on_step=False, on_epoch=True)

    def configure_optimizers(self):
        from timm.optim import create_optimizer_v2
        from timm.scheduler import create_scheduler_v2

        h = self.hparams
        extra = {"eps": h.opt_eps} if h.opt_eps is not None else {}
        opt = create_optimizer_v2(
            self.model, opt=h.opt, lr=h.lr, weight_decay=h.weight_decay, momentum=h.momentum, **extra
        )
        epochs = max(1, self.trainer.max_epochs or 1)
        updates = max(1, int(self.trainer.estimated_stepping_batches) // epochs)
        sched, _ = create_scheduler_v2(
            opt,
            sched=h.sched,
            num_epochs=epochs,
            warmup_epochs=h.warmup_epochs,
            warmup_lr=h.warmup_lr,
            min_lr=h.min_lr,
            decay_epochs=h.decay_epochs,
            decay_rate=h.decay_rate,
            step_on_epochs=False,
            updates_per_epoch=updates,
        )
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}

    def lr_scheduler_step(self, scheduler, metric) -> None:
        scheduler.step_update(num_updates=self.global_step)
