"""The FP-NAS search: the LightningModule, the distribution over choices, sampling, importance weights,
top-k selection, optimizers, callbacks and ``run`` (what ``search.py`` does)."""
