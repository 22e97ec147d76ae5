"""Test helpers: the short-run overrides every test shares, a clean environment for subprocesses, and test-only
callbacks, importable by the entry points' subprocesses (``+callbacks.x._target_=tests.helpers.X``)."""

from __future__ import annotations

import copy
import functools
import os
import signal
import time
from pathlib import Path

import pytorch_lightning as pl
import torch

ROOT = Path(__file__).resolve().parents[1]

# Short runs, from one place (as lightning-hydra-template's tests/conftest.py limits every test's epochs and
# batches). A test appends its own overrides after these; a later override of the same key wins.
MICRO = ["data=digits", "space=micro", "cost.target_mflops=0.08"]  # small space, bundled 8x8 digits, feasible target


def quick_search(train_batches: int = 2, val_batches: int = 1, switch_epoch: int | None = 1) -> list[str]:
    """search.py overrides of a run of a few steps: ``train_batches`` training and ``val_batches`` α-split
    batches per epoch, no warm-up, the joint distribution from epoch ``switch_epoch`` (None: the config's),
    no progress bar. The epochs are the test's (``trainer.max_epochs=N``)."""
    joint = [] if switch_epoch is None else [f"distribution.switch_epoch={switch_epoch}"]
    return [
        f"+trainer.limit_train_batches={train_batches}",
        f"+trainer.limit_val_batches={val_batches}",
        "search.warmup_epochs=0",
        *joint,
        "trainer.enable_progress_bar=false",
    ]


QUICK_SEARCH = quick_search()
QUICK_TRAIN = ["trainer.enable_progress_bar=false"]  # train.py: no progress bar; epochs and batches are the test's


def compose_config(name: str, out, *overrides: str):
    """``conf/<name>.yaml`` ("search" or "train") composed with the run directory ``out`` and ``overrides``."""
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(version_base="1.3", config_dir=str(ROOT / "conf")):
        return compose(name, overrides=[f"paths.output_dir={out}", *overrides])


@functools.cache
def _composed(name: str, *overrides: str):
    """``compose_config(name, "unused", *overrides)``, composed once (callers copy it before changing it)."""
    return compose_config(name, "unused", *overrides)


def _instantiate(node, arguments: dict):
    """``hydra.utils.instantiate(node, **arguments)``, raising the constructor's own error (as library use meets it)."""
    from hydra.errors import InstantiationException
    from hydra.utils import instantiate

    try:
        return instantiate(node, **arguments)
    except InstantiationException as exc:
        raise exc.__cause__ from None


def data_module(name: str, **arguments):
    """The data module of conf/data/<name>.yaml (the one home of every ``data.*`` default) built as ``search.py``
    builds it, with ``arguments`` in place of the file's values, e.g. ``data_module("digits", batch_size=32)``.
    Outside a search there is no space and no run directory: ``image_size`` is the data's native size and
    ``classes_file`` (imagefolder) is null, unless given."""
    node = copy.deepcopy(_composed("search", f"data={name}").data)
    node.image_size = None  # the file's ${space.input_size}
    if "classes_file" in node:
        node.classes_file = None  # the file's ${paths.output_dir}/classes.txt
    return _instantiate(node, arguments)


def callback(name: str, config: str = "search", **arguments):
    """The callback ``callbacks.<name>`` of conf/<config>.yaml (search: conf/callbacks/default.yaml, the one home
    of its defaults) built as that entry point builds it, with ``arguments`` in place of the file's values, e.g.
    ``callback("search_plots", dirpath=tmp_path, max_points=10)``."""
    return _instantiate(copy.deepcopy(_composed(config).callbacks[name]), arguments)


# SearchModule unit tests written for the plainest search: no warm-up, the factorized distribution throughout,
# the most probable architecture exported, Adam at lr 0.01 for α, β = 1
PLAIN_SEARCH = {
    "warmup_epochs": 0,
    "switch_epoch": 80,
    "export_candidates": 1,
    "export_fill": False,
    "export_significance": 0.0,
    "alpha_optimizer": functools.partial(torch.optim.Adam, lr=0.01),
}


def search_module(space, sampler, target_mflops=None, beta=None, beta_lr=None, **arguments):
    """A :class:`~fpnas.search.module.SearchModule` built as ``search.py`` builds it, from conf/search.yaml (the
    one home of every default) with ``cost.target_mflops`` / ``beta`` / ``beta_lr`` where given. ``arguments``
    replace the config's: ``schedule`` and ``switch_epoch`` go to the ``distribution`` group, ``export_<key>``
    to ``export.<key>``, the ``search`` group's keys to it, anything else (``constraints=[...]``, optimizers,
    ``seed``, ``tables``) to the module directly."""
    from hydra.errors import InstantiationException

    from fpnas.search.run import build_search_module

    budget = [
        f"cost.{k}={v}"
        for k, v in (("target_mflops", target_mflops), ("beta", beta), ("beta_lr", beta_lr))
        if v is not None
    ]
    cfg = compose_config("search", "unused", *budget)
    direct = {}
    for key, value in arguments.items():
        if key in ("schedule", "switch_epoch"):
            cfg.distribution[key] = value
        elif key.startswith("export_"):
            cfg.export[key.removeprefix("export_")] = value
        elif key in cfg.search:
            cfg.search[key] = value
        else:
            direct[key] = value
    try:
        return build_search_module(cfg, space, sampler, **direct)
    except InstantiationException as exc:  # the module's own error, as library use meets it
        raise exc.__cause__ from None


# what a launcher (Lightning, torchrun, SLURM, submitit) sets: a subprocess must not inherit it
LAUNCHER_VARIABLES = (
    "MASTER_ADDR",
    "MASTER_PORT",
    "LOCAL_RANK",
    "WORLD_SIZE",
    "NODE_RANK",
    "RANK",
    "GROUP_RANK",
    "HYDRA_FULL_ERROR",
    "PL_GLOBAL_SEED",
)


def clean_env(**extra: str) -> dict[str, str]:
    """This process's environment for a search.py subprocess, without any launcher's variables (it
    must not believe it belongs to a distributed job of this one), plus ``extra``."""
    env = {
        k: v for k, v in os.environ.items() if k not in LAUNCHER_VARIABLES and not k.startswith(("SLURM_", "SUBMITIT_"))
    }
    return env | extra


class SignalAtStep(pl.Callback):
    """Sends ``signal`` (SIGTERM, SIGINT or SIGKILL) to this process after training step ``step``: a real
    signal at a chosen point, e.g. in the middle of an epoch."""

    def __init__(self, step: int, signal: str = "SIGTERM"):
        self.step, self.signal = int(step), str(signal)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if trainer.fit_loop.epoch_loop.batch_progress.total.processed == self.step:
            os.kill(os.getpid(), getattr(signal, self.signal))


class PauseAtStep(pl.Callback):
    """After training step ``step``, writes ``<until>.paused`` and waits (at most 300 s) until the file
    ``until`` exists: holds a run in the middle of its work while a test does something beside it."""

    def __init__(self, step: int, until: str):
        self.step, self.until = int(step), Path(until)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if trainer.fit_loop.epoch_loop.batch_progress.total.processed == self.step:
            Path(f"{self.until}.paused").touch()
            deadline = time.monotonic() + 300
            while not self.until.exists() and time.monotonic() < deadline:
                time.sleep(0.05)


class ReverseWithinBatch(pl.Callback):
    """Reverses the order of the images inside every training batch: mathematically a no-op, so a search
    run with it differs from one without only by floating-point summation order (a control for how much
    rounding alone makes two runs drift apart)."""

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        for part in batch.values():
            for t in part:
                t.copy_(t.flip(0))


class StateTrace(pl.Callback):
    """Records after every training step (rank 0): the step, K, the sampled architectures, α and the
    super-net's weights; saved to ``path`` at the end of the fit (for drift comparisons between runs)."""

    def __init__(self, path: str):
        self.path, self.rows = path, []
        self._archs = None

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if not hasattr(pl_module, "_trace_wrapped"):
            sample = pl_module.sample_architectures

            def recording(*args, **kwargs):
                self._archs = sample(*args, **kwargs)
                return self._archs

            pl_module.sample_architectures = recording
            pl_module._trace_wrapped = True

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        weights = {
            k: v.detach().clone()
            for k, v in pl_module.supernet.state_dict().items()
            if "running" not in k and "num_batches" not in k
        }
        self.rows.append(
            {
                "step": int(pl_module.steps_done),
                "archs": self._archs.tolist(),
                "alpha": pl_module.distribution.alpha.detach().clone(),
                "weights": weights,
                "phase": pl_module.phase,
            }
        )

    def on_train_end(self, trainer, pl_module) -> None:
        import torch

        if trainer.is_global_zero:
            torch.save(self.rows, self.path)


class AlphaGradTrace(pl.Callback):
    """Records α's gradient as α's optimizer receives it (after Lightning's precision plugin, e.g.
    the fp16 GradScaler's unscaling); saved to ``path`` at the end of the fit."""

    def __init__(self, path: str):
        self.path, self.grads = path, []

    def on_before_optimizer_step(self, trainer, pl_module, optimizer) -> None:
        alpha = pl_module.distribution.alpha
        if optimizer.param_groups[0]["params"][0] is alpha and alpha.grad is not None:
            self.grads.append(alpha.grad.detach().cpu().clone())

    def on_train_end(self, trainer, pl_module) -> None:
        import torch

        torch.save(self.grads, self.path)


def search_on_two_loopback_nodes(overrides: list[str], cwd, timeout: int) -> None:
    """``search.py`` as two single-process nodes of one torchrun job on 127.0.0.1 (what two machines
    of a cluster do); both must exit 0."""
    import socket
    import subprocess
    import sys

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    launcher = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nnodes=2",
        "--nproc_per_node=1",
        "--master_addr=127.0.0.1",
        f"--master_port={port}",
    ]
    procs = [
        subprocess.Popen(
            [*launcher, f"--node_rank={node}", str(ROOT / "search.py"), *overrides],
            env=clean_env(),
            cwd=cwd,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for node in (0, 1)
    ]
    for p in procs:
        _, err = p.communicate(timeout=timeout)
        assert p.returncode == 0, err[-3000:]
