"""Retraining an architecture from scratch: the LightningModule, distillation and ``run`` (what ``train.py`` does)."""
