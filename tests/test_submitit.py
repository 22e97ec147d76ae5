"""hydra/launcher=local_ddp, for real: a sweep of 2-process DDP jobs through submitit's local executor.

submitit starts every job's processes itself (one task per device), as srun does on SLURM; each
task must join its job's process group, and no task may start processes of its own. The sweep runs
in a subprocess: never DDP inside the pytest process.
"""

import csv
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from fpnas.runtime.launch import adopt_submitit_local_task
from tests.helpers import clean_env, quick_search

ROOT = Path(__file__).resolve().parents[1]
SHORT = [
    "data=digits",
    "space=micro",
    "trainer.max_epochs=1",
    *quick_search(switch_epoch=None),
    "distribution.schedule=factorized",
    "data.batch_size=16",
]
CLEAN_ENV = clean_env()


@pytest.mark.slow
def test_local_submitit_sweep_runs_each_ddp_job_once_with_both_ranks(tmp_path):
    sweep_dir = tmp_path / "sweep"
    proc = subprocess.run(
        [
            sys.executable,
            str(ROOT / "search.py"),
            "-m",
            "hydra/launcher=local_ddp",
            "trainer=ddp_cpu",
            *SHORT,
            "cost.target_mflops=0.05,0.1",
            f"hydra.sweep.dir={sweep_dir}",
        ],
        capture_output=True,
        text=True,
        env=CLEAN_ENV,
        cwd=tmp_path,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert sorted(p.name for p in sweep_dir.iterdir() if p.is_dir() and not p.name.startswith(".")) == ["0", "1"]
    assert not (tmp_path / "outputs").exists() and not (tmp_path / "multirun").exists()
    for job, target in (("0", 0.05), ("1", 0.1)):
        summary = json.loads((sweep_dir / job / "search_summary.json").read_text())
        assert (summary["target_mflops"], summary["processes"], summary["steps"]) == (target, 2, 2)
        assert (sweep_dir / job / "arch.yaml").is_file()
        assert (sweep_dir / job / "search.log").read_text().count("] - found ") == 1  # rank 0's end, once

    # one submitit job per sweep job, each with exactly two tasks: rank 0 and rank 1 of one process group
    jobs = sorted(p for p in (sweep_dir / ".submitit").iterdir() if p.name.isdigit())
    assert len(jobs) == 2
    run_dirs = []
    for job in jobs:
        assert sorted(p.name.split("_", 1)[1] for p in job.glob("*_log.out")) == ["0_log.out", "1_log.out"]
        for rank in (0, 1):
            log = (job / f"{job.name}_{rank}_log.out").read_text()
            assert log.count("Starting with JobEnvironment") == 1 and "Job completed successfully" in log
            assert re.findall(r"Initializing distributed: GLOBAL_RANK: \d+, MEMBER: \d/\d", log) == [
                f"Initializing distributed: GLOBAL_RANK: {rank}, MEMBER: {rank + 1}/2"
            ]
            assert "Child process" not in log  # Lightning launched nothing itself
        run_dirs += re.findall(r"\] found .* -> (\S+)", (job / f"{job.name}_0_log.out").read_text())
    assert sorted(run_dirs) == [str(sweep_dir / "0"), str(sweep_dir / "1")]  # no job ran twice

    with open(sweep_dir / "sweep_summary.csv") as f:
        rows = list(csv.DictReader(f))
    assert [(float(r["target_mflops"]), r["run_dir"]) for r in rows] == [
        (0.05, str(sweep_dir / "0")),
        (0.1, str(sweep_dir / "1")),
    ]


def _submitit_task_environment(monkeypatch, rank: int, tasks: int) -> dict:
    env = {k: v for k, v in CLEAN_ENV.items()}
    env.update(
        SUBMITIT_EXECUTOR="local",
        SUBMITIT_LOCAL_JOB_ID="1234",
        SUBMITIT_LOCAL_NTASKS=str(tasks),
        SUBMITIT_LOCAL_JOB_NUM_NODES="1",
        SUBMITIT_LOCAL_NODEID="0",
        SUBMITIT_LOCAL_GLOBALID=str(rank),
        SUBMITIT_LOCAL_LOCALID=str(rank),
    )
    monkeypatch.setattr(os, "environ", env)  # a copy: the pytest process's environment stays as it was
    return env


def test_a_local_submitit_task_gets_the_variables_of_an_externally_launched_rank(monkeypatch):
    env = _submitit_task_environment(monkeypatch, rank=1, tasks=2)
    adopt_submitit_local_task({"devices": 2, "num_nodes": 1})
    assert (env["LOCAL_RANK"], env["WORLD_SIZE"], env["NODE_RANK"], env["MASTER_ADDR"]) == ("1", "2", "0", "127.0.0.1")
    port = env["MASTER_PORT"]
    _submitit_task_environment(monkeypatch, rank=0, tasks=2)
    adopt_submitit_local_task({"devices": 2, "num_nodes": 1})
    assert os.environ["MASTER_PORT"] == port  # every task of the job meets on the same port


def test_tasks_that_do_not_match_the_trainer_stop_with_one_line(monkeypatch, capsys):
    _submitit_task_environment(monkeypatch, rank=0, tasks=1)
    with pytest.raises(SystemExit) as exc:
        adopt_submitit_local_task({"devices": 2, "num_nodes": 1})
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "set trainer.devices=1" in err
