"""Retraining a found architecture from scratch as a plain model (minimal recipe).

The search splits the training images into an omega and an alpha half; retraining uses both:
each step trains on the omega batch and the alpha batch together. The held-out test split is
used only for the final evaluation. (Recipe extensions — EMA, label smoothing, distillation —
belong to the retraining issue.)
"""
from __future__ import annotations

import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from torchmetrics.classification import MulticlassAccuracy


class TrainModule(pl.LightningModule):
    """Cross-entropy training of one standalone model; SGD (Nesterov) with cosine decay."""

    def __init__(self, model: torch.nn.Module, num_classes: int, lr: float = 0.05, momentum: float = 0.9,
                 weight_decay: float = 4e-5, label_smoothing: float = 0.0):
        super().__init__()
        self.save_hyperparameters(ignore=["model"])
        self.model = model
        self.test_acc = MulticlassAccuracy(num_classes=num_classes, average="micro")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)

    def training_step(self, batch, batch_idx):
        parts = list(batch.values()) if isinstance(batch, dict) else [batch]
        x = torch.cat([p[0] for p in parts])
        y = torch.cat([p[1] for p in parts])
        loss = F.cross_entropy(self.model(x), y, label_smoothing=self.hparams.label_smoothing)
        self.log("train/loss", loss, prog_bar=True, on_step=True, on_epoch=True, batch_size=y.numel())
        return loss

    def test_step(self, batch, batch_idx):
        x, y = batch
        self.test_acc(self.model(x), y)
        self.log("test/acc", self.test_acc, on_step=False, on_epoch=True)

    def configure_optimizers(self):
        h = self.hparams
        opt = torch.optim.SGD(self.model.parameters(), lr=h.lr, momentum=h.momentum, nesterov=h.momentum > 0,
                              weight_decay=h.weight_decay)
        epochs = max(1, self.trainer.max_epochs or 1)
        return {"optimizer": opt, "lr_scheduler": torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=epochs)}
