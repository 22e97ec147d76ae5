"""Data modules for small in-memory image data sets (the bundled digits and MNIST-5k).

FP-NAS alternates two updates: network weights on the omega (ω) split and
architecture probabilities on the alpha (α) split. Keeping the two splits
disjoint prevents the architecture from being chosen on data the weights were
fit on. A third, held-out test split is never touched during search.

Everything lives in memory as tensors (the bundled data sets are tiny), so
subclasses only implement :meth:`SearchDataModule.load_arrays`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import TensorDataset

from fpnas.data.base import ThreeSplitDataModule
from fpnas.data.cache import cached_arrays
from fpnas.errors import ConfigError

SPLITS = ("omega", "alpha", "test")


def bundled_arrays(
    name: str, package: str, parse: Callable[[], Mapping[str, np.ndarray]]
) -> tuple[np.ndarray, np.ndarray]:
    """``(x, y)`` of a data set bundled with ``package``: what ``parse()`` returns as ``x`` and ``y``, parsed
    once and then read from :mod:`fpnas.data.cache` (file ``<name>-...-<package><version>.npz``)."""
    arrays = cached_arrays(name, [package], ["x", "y"], parse)
    return arrays["x"], arrays["y"]


def stratified_split(labels: torch.Tensor, test_fraction: float, generator: torch.Generator) -> dict[str, torch.Tensor]:
    """Split indices into test / omega / alpha, stratified by class.

    The test part gets ``round(N * test_fraction)`` samples, allotted to classes
    proportionally (largest-remainder rounding). The remainder of every class is
    halved between omega and alpha; odd leftovers alternate between the two so
    the halves differ by at most one sample overall. Returns sorted index tensors.
    """
    labels = labels.long()
    n = labels.numel()
    classes = torch.unique(labels)
    counts = torch.stack([(labels == c).sum() for c in classes]).double()
    n_test = int(round(n * test_fraction))
    ideal = counts * n_test / n
    per_class = ideal.floor().long()
    short = n_test - int(per_class.sum())
    if short > 0:
        order = torch.argsort(ideal - per_class.double(), descending=True)
        per_class[order[:short]] += 1

    parts = {k: [] for k in SPLITS}
    extra_to_omega = True
    for c, k in zip(classes.tolist(), per_class.tolist()):
        idx = torch.nonzero(labels == c, as_tuple=False).flatten()
        idx = idx[torch.randperm(idx.numel(), generator=generator)]
        parts["test"].append(idx[:k])
        rest = idx[k:]
        half = rest.numel() // 2
        if rest.numel() % 2 == 1:
            half += int(extra_to_omega)
            extra_to_omega = not extra_to_omega
        parts["omega"].append(rest[:half])
        parts["alpha"].append(rest[half:])
    return {k: torch.sort(torch.cat(v)).values for k, v in parts.items()}


class SearchDataModule(ThreeSplitDataModule):
    """In-memory ω / α / test splits for differentiable architecture search.

    Args (all required; conf/data/<name>.yaml is the one home of their values):
        batch_size: images per ω and per α batch in ``train_dataloader``.
        val_batch_size: batch size for ``val_dataloader`` / ``test_dataloader``
            (``None`` = ``batch_size``).
        num_workers: DataLoader worker processes (0 = load in the main process).
        image_size: resize images to ``image_size``×``image_size`` with bilinear
            interpolation (antialiased when shrinking); ``None`` keeps the native size.
        split_seed: seed of the ``torch.Generator`` that draws the splits.
        test_fraction: fraction of the data held out as the test split, in (0, 1);
            the rest is halved into ω (weights) and α (architecture).
        normalize: standardize every channel with the mean/std of the ω split
            (computed after resizing), so only training data informs the statistics.

    Subclasses set ``name``, ``num_classes``, ``in_chans``, ``native_size`` (and
    ``pixel_max`` when not 255) and implement :meth:`load_arrays`. After :meth:`setup`, ``split_indices`` maps
    ``"omega"/"alpha"/"test"`` to indices into the full data set, and ``mean``
    / ``std`` hold the per-channel normalization constants (0 / 1 if disabled).
    """

    name: str = "base"
    num_classes: int = 0
    in_chans: int = 1
    native_size: int = 0
    pixel_max: float = 255.0  # raw pixel values range over 0..pixel_max (8-bit data by default)

    def __init__(
        self,
        *,
        batch_size: int,
        val_batch_size: int | None,
        num_workers: int,
        image_size: int | None,
        split_seed: int,
        test_fraction: float,
        normalize: bool,
    ) -> None:
        super().__init__(
            batch_size=batch_size,
            val_batch_size=val_batch_size,
            num_workers=num_workers,
            image_size=image_size,
            split_seed=split_seed,
        )
        if (
            isinstance(test_fraction, bool)
            or not isinstance(test_fraction, (int, float))
            or not 0.0 < float(test_fraction) < 1.0
        ):
            raise ConfigError(
                f"test_fraction must be a number strictly between 0 and 1, got {test_fraction!r}; "
                "set data.test_fraction to e.g. 0.2"
            )
        self.test_fraction = float(test_fraction)
        self.normalize = bool(normalize)
        self.save_hyperparameters()

        self.split_indices: dict[str, torch.Tensor] = {}
        self.datasets: dict[str, TensorDataset] = {}
        self.mean: torch.Tensor | None = None
        self.std: torch.Tensor | None = None
        self.num_samples: int = 0

    # ------------------------------------------------------------------ data
    def load_arrays(self) -> tuple[np.ndarray, np.ndarray]:
        """Return ``(X, y)``: images N×H×W or N×C×H×W (values in native range) and int labels."""
        raise NotImplementedError

    def _scale(self, x: np.ndarray) -> np.ndarray:
        """Map raw pixel values (0..``pixel_max``) to [0, 1]."""
        return x / self.pixel_max

    @property
    def input_size(self) -> int:
        """Side length of the images the loaders produce."""
        return self.image_size if self.image_size is not None else self.native_size

    def setup(self, stage: str | None = None) -> None:
        """Load, scale, resize, split and normalize once; later calls are no-ops."""
        if self.datasets:
            return
        x_np, y_np = self.load_arrays()
        x = torch.as_tensor(self._scale(np.asarray(x_np, dtype=np.float64)), dtype=torch.float32)
        if x.dim() == 3:
            x = x.unsqueeze(1)
        if x.dim() != 4 or x.shape[1] != self.in_chans:
            raise ValueError(
                f"{type(self).__name__}.load_arrays returned images of shape {tuple(x.shape)}; "
                f"expected N×{self.in_chans}×H×W"
            )
        y = torch.as_tensor(np.asarray(y_np), dtype=torch.long).flatten()
        if y.numel() != x.shape[0]:
            raise ValueError(f"{type(self).__name__}.load_arrays returned {x.shape[0]} images but {y.numel()} labels")

        gen = torch.Generator().manual_seed(self.split_seed)
        indices = stratified_split(y, self.test_fraction, gen)
        sizes = {k: int(v.numel()) for k, v in indices.items()}
        if min(sizes.values()) == 0:
            raise ConfigError(
                f"test_fraction={self.test_fraction} leaves an empty split {sizes}; choose a value nearer 0.2"
            )
        smallest_search = min(sizes["omega"], sizes["alpha"])
        if self.batch_size > smallest_search:
            raise ConfigError(
                f"batch_size={self.batch_size} exceeds the smaller of the ω/α splits ({smallest_search} images) "
                "and drop_last would yield no batches; lower data.batch_size or data.test_fraction"
            )

        parts = {k: self.split_images(x, y, idx, k) for k, idx in indices.items()}
        parts = {k: (self._resize(px), py) for k, (px, py) in parts.items()}
        if self.normalize:
            omega = parts["omega"][0]
            self.mean = omega.mean(dim=(0, 2, 3))
            self.std = omega.std(dim=(0, 2, 3)).clamp_min(1e-6)
        else:
            self.mean = torch.zeros(x.shape[1])
            self.std = torch.ones(x.shape[1])
        mean, std = self.mean.view(1, -1, 1, 1), self.std.view(1, -1, 1, 1)

        self.num_samples = int(x.shape[0])
        self.split_indices = indices
        # Each split is stored in a fixed random order (not sorted by class): unshuffled val/test
        # batches then mix classes, which matters when architectures are scored with
        # batch-norm batch statistics (search.eval_batch_stats).
        order = torch.Generator().manual_seed(self.split_seed + 1)
        self.datasets = {}
        for k, (px, py) in parts.items():
            perm = torch.randperm(py.numel(), generator=order)
            self.datasets[k] = TensorDataset(((px[perm] - mean) / std).contiguous(), py[perm].contiguous())

    def split_images(
        self, x: torch.Tensor, y: torch.Tensor, idx: torch.Tensor, split: str
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The images and labels of one split (``idx`` into the scaled native-size data): the indexed
        images here; a subclass may compose new images from them (e.g. digits on a cluttered canvas)."""
        return x[idx], y[idx]

    def _resize(self, x: torch.Tensor) -> torch.Tensor:
        """Bilinear resize to ``image_size`` (antialiased when shrinking); a no-op at that size already."""
        if self.image_size is None or self.image_size == x.shape[-1]:
            return x
        return F.interpolate(
            x,
            size=(self.image_size, self.image_size),
            mode="bilinear",
            align_corners=False,
            antialias=self.image_size < x.shape[-1],
        )

    # ------------------------------------------------------------ reporting
    def split_sizes(self) -> dict[str, int]:
        """Number of samples per split (sets the module up if needed)."""
        if not self.datasets:
            self.setup()
        return {k: int(v.numel()) for k, v in self.split_indices.items()}

    def describe(self) -> str:
        """One-line human-readable summary of the data set and splits."""
        size = f"{self.in_chans}x{self.native_size}x{self.native_size}"
        if self.input_size != self.native_size:
            size += f"->{self.input_size}x{self.input_size}"
        if not self.datasets:
            return f"{self.name}: {size}, {self.num_classes} classes (not set up)"
        s = self.split_sizes()
        return (
            f"{self.name}: {self.num_samples} images {size}, {self.num_classes} classes, "
            f"omega={s['omega']} alpha={s['alpha']} test={s['test']} (seed {self.split_seed}), "
            f"batch {self.batch_size}, normalize={self.normalize}"
        )
