"""Data loaders on tiny data sets written in the real on-disk formats.

* ImageNet layout: ``train/<class>/*.png`` and ``val/<class>/*.png`` written with Pillow.
* CIFAR-10/100: the python-pickle batches (Python-2 style ``str`` keys, as in the official
  archives, so ``pickle.load(encoding="bytes")`` shows ``b'data'`` and torchvision's
  ``encoding="latin1"`` shows ``'data'``).
* MNIST / Fashion-MNIST: big-endian idx files (magic 2051 images, 2049 labels).

Everything is read back through the real loaders (torchvision's readers, ImageFolder, timm
transforms); nothing is downloaded.
"""

from __future__ import annotations

import hashlib
import pickle
import struct
from pathlib import Path

import hydra
import numpy as np
import pytest
import torch
import torchvision
from omegaconf import OmegaConf
from omegaconf.errors import MissingMandatoryValue
from PIL import Image
from pytorch_lightning.utilities import CombinedLoader, rank_zero_only

from fpnas.data import (
    DATAMODULES,
    CIFAR10DataModule,
    CIFAR100DataModule,
    FashionMNISTDataModule,
    ImageFolderDataModule,
    MNISTDataModule,
)
from fpnas.errors import ConfigError
from tests.helpers import data_module

CONF = Path(__file__).resolve().parents[1] / "conf" / "data"
CLASSES = ["ant", "bee", "cat", "dog", "eel"]
N_TRAIN, N_VAL = 6, 2


# --------------------------------------------------------------------------- writers
def write_imagenet_layout(root: Path, classes=CLASSES, n_train=N_TRAIN, n_val=N_VAL) -> Path:
    rng = np.random.default_rng(0)
    for split, n in (("train", n_train), ("val", n_val)):
        for c in classes:
            d = root / split / c
            d.mkdir(parents=True)
            for i in range(n):
                pixels = rng.integers(0, 256, size=(30, 40, 3), dtype=np.uint8)  # H=30, W=40
                Image.fromarray(pixels, "RGB").save(d / f"{c}_{i}.png")
    return root


class Py2Str(bytes):
    """A byte string pickled as a Python-2 ``str`` (SHORT_BINSTRING), like the CIFAR archives."""


class Py2Pickler(pickle._Pickler):  # the pure-Python pickler lets us add an opcode writer
    dispatch = dict(pickle._Pickler.dispatch)

    def save_py2str(self, obj):
        assert len(obj) < 256
        self.write(pickle.SHORT_BINSTRING + bytes([len(obj)]) + bytes(obj))
        self.memoize(obj)

    dispatch[Py2Str] = save_py2str


def dump_py2(obj, path: Path) -> str:
    with open(path, "wb") as f:
        Py2Pickler(f, protocol=2).dump(obj)
    return hashlib.md5(path.read_bytes()).hexdigest()


def cifar_images(n: int, seed: int) -> np.ndarray:
    """``n`` images as CIFAR rows: uint8 n×3072 (1024 R, 1024 G, 1024 B; row-major 32×32)."""
    return np.random.default_rng(seed).integers(0, 256, size=(n, 3072), dtype=np.uint8)


def write_cifar10(root: Path, per_batch: int = 4, n_test: int = 6) -> dict:
    """Writes ``root/cifar-10-batches-py``; returns data, labels and the md5 of every file."""
    d = root / "cifar-10-batches-py"
    d.mkdir(parents=True)
    md5, data, labels = {}, {}, {}
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    for k, name in enumerate(names):
        n = n_test if name == "test_batch" else per_batch
        x = cifar_images(n, seed=k)
        y = [(k * 3 + i) % 10 for i in range(n)]
        batch = {
            Py2Str(b"batch_label"): Py2Str(f"batch {k}".encode()),
            Py2Str(b"labels"): y,
            Py2Str(b"data"): x,
            Py2Str(b"filenames"): [Py2Str(f"img_{k}_{i}.png".encode()) for i in range(n)],
        }
        md5[name] = dump_py2(batch, d / name)
        data[name], labels[name] = x, y
    label_names = [
        Py2Str(s.encode())
        for s in ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
    ]
    meta = {Py2Str(b"label_names"): label_names, Py2Str(b"num_cases_per_batch"): per_batch, Py2Str(b"num_vis"): 3072}
    md5["batches.meta"] = dump_py2(meta, d / "batches.meta")
    return {"md5": md5, "data": data, "labels": labels}


def write_cifar100(root: Path, n_train: int = 12, n_test: int = 4) -> dict:
    d = root / "cifar-100-python"
    d.mkdir(parents=True)
    md5, data, labels = {}, {}, {}
    for k, (name, n) in enumerate((("train", n_train), ("test", n_test))):
        x = cifar_images(n, seed=10 + k)
        fine = [(7 * i + k) % 100 for i in range(n)]
        batch = {
            Py2Str(b"filenames"): [Py2Str(f"f{i}.png".encode()) for i in range(n)],
            Py2Str(b"batch_label"): Py2Str(name.encode()),
            Py2Str(b"fine_labels"): fine,
            Py2Str(b"coarse_labels"): [f // 5 for f in fine],
            Py2Str(b"data"): x,
        }
        md5[name] = dump_py2(batch, d / name)
        data[name], labels[name] = x, fine
    meta = {
        Py2Str(b"fine_label_names"): [Py2Str(f"fine{i}".encode()) for i in range(100)],
        Py2Str(b"coarse_label_names"): [Py2Str(f"coarse{i}".encode()) for i in range(20)],
    }
    md5["meta"] = dump_py2(meta, d / "meta")
    return {"md5": md5, "data": data, "labels": labels}


def write_idx(path: Path, array: np.ndarray) -> None:
    """Big-endian idx file: magic 2051 for N×28×28 uint8 images, 2049 for N uint8 labels."""
    magic = 2051 if array.ndim == 3 else 2049
    with open(path, "wb") as f:
        f.write(struct.pack(">i", magic))
        for dim in array.shape:
            f.write(struct.pack(">i", dim))
        f.write(array.astype(np.uint8).tobytes())


def write_mnist(root: Path, folder: str, n_train: int = 8, n_test: int = 4) -> dict:
    raw = root / folder / "raw"
    raw.mkdir(parents=True)
    rng = np.random.default_rng(len(folder))
    out = {}
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        x = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
        y = (np.arange(n) * 3 % 10).astype(np.uint8)
        write_idx(raw / f"{prefix}-images-idx3-ubyte", x)
        write_idx(raw / f"{prefix}-labels-idx1-ubyte", y)
        out[prefix] = (x, y)
    return out


# -------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def imagenet(tmp_path_factory) -> Path:
    return write_imagenet_layout(tmp_path_factory.mktemp("imagenet"))


@pytest.fixture(scope="module")
def tv_root(tmp_path_factory) -> dict:
    """One torchvision root holding all four sets, as with ``root: ${oc.env:FPNAS_DATA,data}``."""
    root = tmp_path_factory.mktemp("tv")
    return {
        "root": root,
        "cifar10": write_cifar10(root),
        "cifar100": write_cifar100(root),
        "mnist": write_mnist(root, "MNIST"),
        "fashion_mnist": write_mnist(root, "FashionMNIST"),
    }


@pytest.fixture
def cifar_md5(tv_root, monkeypatch):
    """Point torchvision's CIFAR checksum tables at the files we wrote.

    torchvision verifies the MD5 of every CIFAR file (``_check_integrity`` and ``_load_meta``)
    against the official archives, which our tiny files cannot match; replacing the expected
    checksums keeps torchvision's real integrity check and reader in the loop.
    """
    m10, m100 = tv_root["cifar10"]["md5"], tv_root["cifar100"]["md5"]
    c10, c100 = torchvision.datasets.CIFAR10, torchvision.datasets.CIFAR100
    monkeypatch.setattr(c10, "train_list", [[f, m10[f]] for f, _ in c10.train_list])
    monkeypatch.setattr(c10, "test_list", [[f, m10[f]] for f, _ in c10.test_list])
    monkeypatch.setattr(c10, "meta", {**c10.meta, "md5": m10["batches.meta"]})
    monkeypatch.setattr(c100, "train_list", [[f, m100[f]] for f, _ in c100.train_list])
    monkeypatch.setattr(c100, "test_list", [[f, m100[f]] for f, _ in c100.test_list])
    monkeypatch.setattr(c100, "meta", {**c100.meta, "md5": m100["meta"]})


def test_registry_has_new_sets():
    assert DATAMODULES["imagefolder"] is ImageFolderDataModule
    assert DATAMODULES["cifar10"] is CIFAR10DataModule and DATAMODULES["cifar100"] is CIFAR100DataModule
    assert DATAMODULES["mnist"] is MNISTDataModule and DATAMODULES["fashion_mnist"] is FashionMNISTDataModule
    assert (CIFAR10DataModule.num_classes, CIFAR10DataModule.in_chans) == (10, 3)
    assert (CIFAR100DataModule.num_classes, CIFAR100DataModule.in_chans) == (100, 3)
    assert (MNISTDataModule.num_classes, MNISTDataModule.in_chans) == (10, 1)
    assert (FashionMNISTDataModule.num_classes, FashionMNISTDataModule.in_chans) == (10, 1)


# ------------------------------------------------------------------------ imagefolder
def test_imagefolder_classes_known_before_setup(imagenet):
    dm = data_module("imagefolder", root=imagenet, image_size=32, num_workers=0)
    assert dm.num_classes == 5 and dm.in_chans == 3 and dm.classes == CLASSES
    assert dm.datasets == {} and dm.describe().endswith("(not set up)")


def test_imagefolder_splits(imagenet):
    dm = data_module("imagefolder", root=imagenet, image_size=32, batch_size=4, num_workers=0, split_seed=1)
    dm.setup()
    n_train = len(CLASSES) * N_TRAIN
    idx = dm.split_indices
    assert idx["omega"].numel() == idx["alpha"].numel() == n_train // 2
    both = torch.cat([idx["omega"], idx["alpha"]])
    assert torch.equal(torch.sort(both).values, torch.arange(n_train))  # disjoint and covering
    # ω and α are views of train/, test is exactly the official val/
    train_files = {Path(p) for p, _ in dm.datasets["omega"].dataset.samples}
    assert train_files == set((imagenet / "train").rglob("*.png"))
    test = dm.datasets["test"]
    test_files = [Path(test.dataset.samples[int(i)][0]) for i in test.indices]
    assert sorted(test_files) == sorted((imagenet / "val").rglob("*.png"))
    assert all(
        test.dataset.samples[int(i)][1] == CLASSES.index(Path(p).parent.name) for i, p in zip(test.indices, test_files)
    )
    assert dm.split_sizes() == {"omega": 15, "alpha": 15, "test": len(CLASSES) * N_VAL}
    # same seed, same halves; another seed, other halves
    again = data_module("imagefolder", root=imagenet, image_size=32, batch_size=4, num_workers=0, split_seed=1)
    again.setup()
    assert torch.equal(again.split_indices["omega"], idx["omega"])
    other = data_module("imagefolder", root=imagenet, image_size=32, batch_size=4, num_workers=0, split_seed=2)
    other.setup()
    assert not torch.equal(other.split_indices["omega"], idx["omega"])
    assert "omega=15 alpha=15 test=10" in dm.describe()


def test_imagefolder_batches(imagenet):
    dm = data_module("imagefolder", root=imagenet, image_size=32, batch_size=4, num_workers=0)
    loaders = dm.train_dataloader()
    assert set(loaders) == {"train", "val"}
    for key in ("train", "val"):
        x, y = next(iter(loaders[key]))
        assert x.shape == (4, 3, 32, 32) and x.dtype == torch.float32
        assert y.shape == (4,) and y.dtype == torch.int64
        assert len(loaders[key]) == 15 // 4  # drop_last
    xv, yv = next(iter(dm.val_dataloader()))
    assert xv.shape == (4, 3, 32, 32) and yv.dtype == torch.int64
    ys = torch.cat([y for _, y in dm.test_dataloader()])
    assert sorted(ys.tolist()) == sorted(list(range(5)) * N_VAL)
    # α and test use the deterministic eval transform (resize + center crop)
    a0, t0 = dm.datasets["alpha"][0][0], dm.datasets["test"][0][0]
    assert torch.equal(a0, dm.datasets["alpha"][0][0]) and torch.equal(t0, dm.datasets["test"][0][0])
    combined = CombinedLoader(dm.train_dataloader(), mode="max_size_cycle")
    assert sum(1 for _ in combined) == 3


def test_imagefolder_workers(imagenet):
    dm = data_module("imagefolder", root=imagenet, image_size=24, batch_size=5, num_workers=2, alpha_augment=True)
    loader = dm.train_dataloader()["val"]
    assert loader.persistent_workers and loader.num_workers == 2
    batches = list(loader)
    assert len(batches) == 3 and all(x.shape == (5, 3, 24, 24) for x, _ in batches)
    assert dm.datasets["alpha"].transform is not None and "RandomResized" in repr(dm.datasets["alpha"].transform)


def test_imagefolder_subset(imagenet, tmp_path):
    out = tmp_path / "run" / "classes.txt"
    dm = data_module(
        "imagefolder",
        root=imagenet,
        image_size=32,
        batch_size=2,
        num_workers=0,
        num_classes_subset=3,
        subset_seed=7,
        classes_file=str(out),
    )
    perm = torch.randperm(5, generator=torch.Generator().manual_seed(7))[:3]
    expected = sorted(CLASSES[i] for i in perm.tolist())
    assert dm.classes == expected and dm.num_classes == 3
    assert not out.exists()  # written in setup, not in the constructor
    dm.setup()
    assert out.read_text().splitlines() == expected
    again = data_module("imagefolder", root=imagenet, image_size=32, num_workers=0, num_classes_subset=3, subset_seed=7)
    assert again.classes == expected
    assert (
        data_module("imagefolder", root=imagenet, image_size=32, num_classes_subset=3, subset_seed=8).classes
        != expected
    )

    labels = {k: sorted({int(ds.dataset.targets[int(i)]) for i in ds.indices}) for k, ds in dm.datasets.items()}
    assert labels == {"omega": [0, 1, 2], "alpha": [0, 1, 2], "test": [0, 1, 2]}
    test = dm.datasets["test"]
    assert len(test) == 3 * N_VAL  # val images of the other classes are dropped
    for path, label in test.dataset.samples:
        assert Path(path).parent.name == expected[label]
    assert len(dm.datasets["omega"]) + len(dm.datasets["alpha"]) == 3 * N_TRAIN
    ys = torch.cat([y for _, y in dm.test_dataloader()])
    assert set(ys.tolist()) == {0, 1, 2}
    assert "3 of 5 classes" in dm.describe()


def test_imagefolder_classes_file_only_on_rank_zero(imagenet, tmp_path, monkeypatch):
    out = tmp_path / "classes.txt"
    monkeypatch.setattr(rank_zero_only, "rank", 1)
    data_module("imagefolder", root=imagenet, image_size=32, batch_size=2, num_workers=0, classes_file=str(out)).setup()
    assert not out.exists()
    monkeypatch.setattr(rank_zero_only, "rank", 0)
    data_module("imagefolder", root=imagenet, image_size=32, batch_size=2, num_workers=0, classes_file=str(out)).setup()
    assert out.read_text().splitlines() == CLASSES


def test_imagefolder_errors(imagenet, tmp_path):
    with pytest.raises(ConfigError, match=r"not a directory.*train/<class>"):
        data_module("imagefolder", root=tmp_path / "nope", image_size=32)
    no_val = tmp_path / "no_val"
    (no_val / "train" / "a").mkdir(parents=True)
    with pytest.raises(ConfigError, match=r"val is missing"):
        data_module("imagefolder", root=no_val, image_size=32)
    with pytest.raises(ConfigError, match=r"num_classes_subset=6 but .* has only 5 classes"):
        data_module("imagefolder", root=imagenet, image_size=32, num_classes_subset=6)
    with pytest.raises(ConfigError, match="num_classes_subset"):
        data_module("imagefolder", root=imagenet, image_size=32, num_classes_subset=0)
    empty = write_imagenet_layout(tmp_path / "empty", classes=["a", "b"], n_train=2, n_val=1)
    (empty / "train" / "c").mkdir()
    (empty / "val" / "c").mkdir()
    (empty / "train" / "c" / "notes.txt").write_text("no images here")
    with pytest.raises(ConfigError, match=r"no images under .*train: \['c'\]"):
        data_module("imagefolder", root=empty, image_size=32)
    no_classes = tmp_path / "no_classes"
    (no_classes / "train").mkdir(parents=True)
    (no_classes / "val").mkdir()
    with pytest.raises(ConfigError, match="no class sub-directories"):
        data_module("imagefolder", root=no_classes, image_size=32)
    with pytest.raises(ConfigError, match="image_size is required"):
        data_module("imagefolder", root=imagenet, image_size=None)
    with pytest.raises(ConfigError, match="crop_pct"):
        data_module("imagefolder", root=imagenet, image_size=32, crop_pct=0.0)
    with pytest.raises(ConfigError, match="batch_size"):
        data_module("imagefolder", root=imagenet, image_size=32, batch_size=16, num_workers=0).setup()


# ----------------------------------------------------------------------------- CIFAR
def test_cifar10_real_pickles(tv_root, cifar_md5):
    written = tv_root["cifar10"]
    with open(tv_root["root"] / "cifar-10-batches-py" / "data_batch_1", "rb") as f:
        assert {b"data", b"labels"} <= set(pickle.load(f, encoding="bytes"))  # the archive's keys
    dm = data_module("cifar10", root=tv_root["root"], batch_size=4, normalize=False)
    assert dm.num_classes == 10 and dm.in_chans == 3 and dm.input_size == 32
    dm.setup()
    assert dm.split_sizes() == {"omega": 10, "alpha": 10, "test": 6}
    train = dm.datasets["omega"].dataset
    assert train.classes[1] == "automobile"
    assert train.targets == sum((written["labels"][f"data_batch_{i}"] for i in range(1, 6)), [])
    # test split: pixels and labels round-trip (eval transform at native size = ToTensor only)
    test = dm.datasets["test"]
    for i in range(len(test)):
        x, y = test[i]
        j = int(test.indices[i])
        expected = written["data"]["test_batch"][j].reshape(3, 32, 32)
        assert x.dtype == torch.float32 and x.shape == (3, 32, 32)
        assert torch.equal((x * 255).round().to(torch.uint8), torch.from_numpy(expected))
        assert y == written["labels"]["test_batch"][j]
    for loader in dm.train_dataloader().values():
        x, y = next(iter(loader))
        assert x.shape == (4, 3, 32, 32) and y.dtype == torch.int64
    x, _ = next(iter(data_module("cifar10", root=tv_root["root"], batch_size=2, image_size=16).test_dataloader()))
    assert x.shape == (2, 3, 16, 16)


def test_cifar100_real_pickles(tv_root, cifar_md5):
    written = tv_root["cifar100"]
    dm = data_module("cifar100", root=tv_root["root"], batch_size=3, num_workers=1)
    assert dm.num_classes == 100
    x, y = next(iter(dm.train_dataloader()["train"]))
    assert x.shape == (3, 3, 32, 32) and y.dtype == torch.int64
    assert dm.datasets["omega"].dataset.targets == written["labels"]["train"]
    ys = sorted(torch.cat([y for _, y in dm.test_dataloader()]).tolist())
    assert ys == sorted(written["labels"]["test"])
    xs = torch.cat([x for x, _ in dm.test_dataloader()])
    assert abs(xs.mean().item()) < 1.0  # normalized with the published CIFAR-100 statistics


def test_cifar_checksum_mismatch_is_config_error(tv_root):
    # Without the checksum patch torchvision rejects our files (they are not the official
    # archives): the names are there, so the constructor passes and setup reports it.
    dm = data_module("cifar10", root=tv_root["root"], batch_size=2)
    with pytest.raises(ConfigError, match=r"cifar-10-batches-py.*data\.download=true"):
        dm.setup()


# ----------------------------------------------------------------------------- MNIST
@pytest.mark.parametrize(
    "name,cls,folder", [("mnist", MNISTDataModule, "MNIST"), ("fashion_mnist", FashionMNISTDataModule, "FashionMNIST")]
)
def test_mnist_idx_files(tv_root, name, cls, folder):
    with open(tv_root["root"] / folder / "raw" / "train-images-idx3-ubyte", "rb") as f:
        assert struct.unpack(">iiii", f.read(16)) == (2051, 8, 28, 28)
    x_train, y_train = tv_root[name]["train"]
    x_test, y_test = tv_root[name]["t10k"]
    dm = data_module(name, root=tv_root["root"], batch_size=4, normalize=False)
    assert dm.num_classes == 10 and dm.in_chans == 1
    dm.setup()
    assert dm.split_sizes() == {"omega": 4, "alpha": 4, "test": 4}
    for split, (xs, ys) in (("omega", (x_train, y_train)), ("alpha", (x_train, y_train)), ("test", (x_test, y_test))):
        ds = dm.datasets[split]
        for i in range(len(ds)):
            x, y = ds[i]
            j = int(ds.indices[i])
            assert x.shape == (1, 28, 28) and x.dtype == torch.float32
            assert torch.equal((x[0] * 255).round().to(torch.uint8), torch.from_numpy(xs[j]))  # pixel round trip
            assert y == int(ys[j])
    x, y = next(iter(dm.train_dataloader()["train"]))
    assert x.shape == (4, 1, 28, 28) and y.dtype == torch.int64
    resized = data_module(name, root=tv_root["root"], batch_size=4, image_size=16)
    x, _ = next(iter(resized.train_dataloader()["val"]))
    assert x.shape == (4, 1, 16, 16)
    normed = data_module(name, root=tv_root["root"], batch_size=4)
    normed.setup()
    x, _ = normed.datasets["test"][0]
    j = int(normed.datasets["test"].indices[0])
    expected = (torch.from_numpy(x_test[j]).float() / 255 - cls.mean[0]) / cls.std[0]
    assert torch.allclose(x[0], expected, atol=1e-5)


# ----------------------------------------------------------------------- missing data
@pytest.mark.parametrize(
    "name,cls,expected",
    [
        ("cifar10", CIFAR10DataModule, "cifar-10-batches-py"),
        ("cifar100", CIFAR100DataModule, "cifar-100-python"),
        ("mnist", MNISTDataModule, "MNIST/raw"),
        ("fashion_mnist", FashionMNISTDataModule, "FashionMNIST/raw"),
    ],
)
def test_missing_torchvision_data(tmp_path, name, cls, expected):
    with pytest.raises(ConfigError) as err:
        data_module(name, root=tmp_path / "empty")
    msg = str(err.value)
    assert str(tmp_path / "empty" / expected) in msg
    assert "set data.download=true on a machine with internet, or put the files there" in msg
    dm = data_module(name, root=tmp_path / "empty", download=True)  # constructing never downloads
    assert not (tmp_path / "empty").exists() and dm.num_classes == cls.num_classes


def test_bad_args(tv_root):
    for kwargs in ({"batch_size": 0}, {"num_workers": -1}, {"image_size": 0}, {"split_seed": -1}):
        with pytest.raises(ConfigError, match=next(iter(kwargs))):
            data_module("mnist", root=tv_root["root"], **kwargs)


# ------------------------------------------------------------------------------ hydra
@pytest.mark.parametrize(
    "name,cls",
    [
        ("imagefolder", ImageFolderDataModule),
        ("cifar10", CIFAR10DataModule),
        ("cifar100", CIFAR100DataModule),
        ("mnist", MNISTDataModule),
        ("fashion_mnist", FashionMNISTDataModule),
    ],
)
def test_hydra_config_instantiates(name, cls, tv_root, imagenet, tmp_path, monkeypatch):
    monkeypatch.setenv("FPNAS_DATA", str(tv_root["root"]))
    data_cfg = OmegaConf.load(CONF / f"{name}.yaml")
    cfg = OmegaConf.create({"space": {"input_size": 32}, "paths": {"output_dir": str(tmp_path)}, "data": data_cfg})
    if name == "imagefolder":
        with pytest.raises(MissingMandatoryValue):
            hydra.utils.instantiate(cfg.data)
        cfg.data.root = str(imagenet)
    dm = hydra.utils.instantiate(cfg.data)
    assert type(dm) is cls and dm.image_size == 32 and dm.batch_size == 64
    assert dm.num_classes == (5 if name == "imagefolder" else cls.num_classes)
    if name == "imagefolder":
        assert dm.classes_file == tmp_path / "classes.txt" and dm.num_workers == 4
    else:
        assert dm.root == tv_root["root"] and dm.download is False
