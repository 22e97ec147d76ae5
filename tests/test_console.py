"""What a user sees: a search's console in an 80-column terminal, without Lightning's zero-FLOPs model
summary, its tips or its internal deprecations; and the MLflow logger (an optional extra)."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from tests.helpers import MICRO, ROOT, clean_env


def _search(tmp_path, *overrides, columns: int = 80):
    """search.py as a user runs it (the progress bar on), in a terminal ``columns`` wide."""
    return subprocess.run(
        [
            sys.executable,
            str(ROOT / "search.py"),
            f"hydra.run.dir={tmp_path / 'run'}",
            *MICRO,
            "trainer.max_epochs=2",
            "+trainer.limit_train_batches=6",
            "+trainer.limit_val_batches=2",
            "search.warmup_epochs=0",
            "distribution.switch_epoch=1",
            "progress=bar",  # a terminal's display (stdout is a pipe here)
            *overrides,
        ],
        capture_output=True,
        text=True,
        env=clean_env(COLUMNS=str(columns), LINES="24"),
        cwd=tmp_path,
        timeout=300,
    )


def test_a_search_console_fits_80_columns_and_has_no_zero_flops_tips_or_deprecations(tmp_path):
    proc = _search(tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    console = proc.stdout + proc.stderr
    for noise in ("Total FLOPs", "Tip:", "litlogger", "deprecated", "LeafSpec", "in eval mode"):
        assert noise not in console, noise
    # the progress bar: every redraw (tqdm separates them with \r) fits 80 columns and shows the short metrics
    parts = [part for line in console.split("\n") for part in line.split("\r") if part.startswith("Epoch ")]
    bars = [re.split(r"\[\d\d:\d\d:\d\d\] ", part)[0] for part in parts]  # a log line may follow a finished bar
    assert bars and max(len(b) for b in bars) <= 80, max(bars, key=len)
    last = bars[-1]
    assert re.search(r"H=[\d.]+, K=\d+, MFLOPs=[\d.]+, loss=[\d.]+\]$", last), last
    # the analytic numbers are there instead of Lightning's table: the space line and the found line
    assert "space 'micro'" in console and "target 0.08 MFLOPs (space range" in console
    # log lines are the time and the message (the logger and the date are in search.log)
    assert re.search(r"^\[\d\d:\d\d:\d\d\] space 'micro'", proc.stdout, re.M), proc.stdout[:2000]
    assert "pytorch_lightning.utilities" not in console and "[INFO]" not in console
    log = (tmp_path / "run" / "search.log").read_text()
    assert "[fpnas][INFO] - space 'micro'" in log
    assert "[pytorch_lightning.utilities.rank_zero][INFO] - GPU available" in log  # Lightning's lines too


def test_warnings_are_one_line_each_without_file_or_source(tmp_path):
    """A warning the user can act on is one ``warning: ...`` line, not Python's file:line form followed by
    the source line of the call."""
    proc = _search(tmp_path, "trainer.max_epochs=1", "distribution.switch_epoch=8")
    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    switch = [line for line in lines if "switch_epoch" in line]
    assert switch == [
        "warning: distribution.switch_epoch=8 >= trainer.max_epochs=1: the search never reaches the joint "
        "distribution (use distribution.schedule=factorized to say so)"
    ]
    assert not any("Warning:" in line or ".py:" in line or "warn_about_epochs" in line for line in lines), lines


def test_a_search_into_a_file_logs_one_line_per_epoch_instead_of_bar_redraws(tmp_path):
    """`python search.py > log 2>&1` (SLURM, nohup): no progress-bar redraws, one readable line per epoch."""
    proc = _search(tmp_path, "progress=auto", "trainer.max_epochs=3")
    assert proc.returncode == 0, proc.stderr[-2000:]
    console = proc.stdout + proc.stderr
    assert "\r" not in console and "Epoch " not in console and "Validation" not in console
    lines = [line for line in proc.stdout.splitlines() if re.search(r"\] epoch \d/3 done", line)]
    assert len(lines) == 3, proc.stdout[-3000:]
    last = lines[-1]
    for part in (
        "epoch 3/3 done | step 18 | loss ",
        "| val acc 0.",
        "| H ",
        "| K ",
        "| MFLOPs ",
        "| elapsed ",
        "| ETA 0:00",
    ):
        assert part in last, last
    assert len(console.splitlines()) < 120


def test_the_log_handler_imports_nothing_heavy():
    """Hydra imports it while configuring logging; Lightning imported then would keep its lines from
    Hydra's handlers (and search.log)."""
    code = "import sys, fpnas.report.log_handler\nassert not {'torch', 'pytorch_lightning'} & set(sys.modules)\n"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT, env=clean_env(), timeout=120)


def test_the_library_itself_filters_nothing():
    """Importing fpnas leaves a program's warnings alone; only the entry points filter."""
    code = (
        "import warnings, fpnas.report.console, fpnas.search.run, fpnas.search.module\n"
        "assert not [f for f in warnings.filters if 'LeafSpec' in str(f[1])], warnings.filters\n"
        "fpnas.report.console.quiet_third_party()\n"
        "assert [f for f in warnings.filters if 'LeafSpec' in str(f[1].pattern if f[1] else '')]\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT, env=clean_env(), timeout=120)


def test_logger_mlflow_without_the_extra_is_one_clear_line(tmp_path, monkeypatch):
    import builtins

    from fpnas.errors import ConfigError
    from fpnas.runtime.loggers import MLFlowLogger

    real_import = builtins.__import__

    def no_mlflow(name, *args, **kwargs):
        if name == "mlflow" or name.startswith("mlflow."):
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_mlflow)
    with pytest.raises(
        ConfigError, match=r'logger=mlflow needs mlflow, which is not installed: pip install -e ".\[mlflow\]"'
    ):
        MLFlowLogger(experiment_name="x", tracking_uri=f"file:{tmp_path}/mlruns")


@pytest.mark.slow  # a longer end-to-end run: CI runs it (`pytest -m slow`); the default run stays short
def test_a_sweep_logs_every_job_to_one_mlflow_store(tmp_path, monkeypatch):
    pytest.importorskip("mlflow")
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")  # for this test's own client
    proc = subprocess.run(
        [
            sys.executable,
            str(ROOT / "search.py"),
            "-m",
            f"hydra.sweep.dir={tmp_path / 'sweep'}",
            *MICRO[:2],
            "cost.target_mflops=0.06,0.1",
            "logger=mlflow",
            "trainer.max_epochs=1",
            "+trainer.limit_train_batches=2",
            "+trainer.limit_val_batches=1",
            "search.warmup_epochs=0",
            "trainer.enable_progress_bar=false",
        ],
        capture_output=True,
        text=True,
        env=clean_env(),
        cwd=tmp_path,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=f"file:{tmp_path}/mlruns")
    (experiment,) = [e for e in client.search_experiments() if e.name == "fpnas"]
    runs = client.search_runs([experiment.experiment_id])
    assert sorted(r.info.run_name for r in runs) == ["search-0", "search-1"]
    assert all({"train/loss_epoch", "val/acc"} <= set(r.data.metrics) for r in runs)
    assert sorted(float(r.data.params["constraints/0/target"]) for r in runs) == [0.06, 0.1]
    assert not any("beta" in r.data.params for r in runs)  # the constraint's β, not the shorthand's default


def test_progress_lines_show_every_members_value_of_a_family_search():
    from fpnas.report.console import _member_values

    metrics = {"val/acc/target_0": 0.5, "val/acc/target_1": 0.75, "search/target_0/K": 3.0, "search/target_1/K": 4.0}
    assert _member_values(metrics, "val/acc") == [0.5, 0.75]
    assert _member_values(metrics, "search/K") == [3.0, 4.0]
    assert _member_values({"val/acc": 0.5, **metrics}, "val/acc") == [0.5]  # a single target's own key
    assert _member_values(metrics, "search/entropy") == []
