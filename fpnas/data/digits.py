"""scikit-learn's bundled 8×8 handwritten digits (1,797 images, no download)."""

from __future__ import annotations

import numpy as np

from fpnas.data.arrays import SearchDataModule, bundled_arrays


def parse_digits() -> dict[str, np.ndarray]:
    """Read sklearn's CSV (``sklearn.datasets.load_digits``): ``x`` N×8×8 floats in 0..16, ``y`` int64."""
    from sklearn.datasets import load_digits

    d = load_digits()
    return {"x": np.asarray(d.images), "y": np.asarray(d.target, dtype=np.int64)}


class DigitsDataModule(SearchDataModule):
    """``sklearn.datasets.load_digits``: 1797 images, 1×8×8, 10 classes, pixel values 0..16."""

    name = "digits"
    num_classes = 10
    in_chans = 1
    native_size = 8
    pixel_max = 16.0

    def load_arrays(self) -> tuple[np.ndarray, np.ndarray]:
        """Return X as N×8×8 floats in 0..16 and y as int64 labels (parsed once: fpnas.data.cache)."""
        return bundled_arrays("digits", "scikit-learn", parse_digits)
