"""Hydra x Lightning DDP: child processes run this job, not the whole sweep.

Lightning's DDP launcher starts ranks > 0 by re-running ``sys.argv`` with ``hydra.run.dir=``
appended; under ``-m`` that argv is the whole sweep, so every child would run every job again
(Lightning #11300, Hydra #2070). Before fitting, rank 0 records this job's own overrides and
output directory in the environment the children inherit; a child started by Lightning
replaces its argv with them before Hydra parses it: a single run in the job's directory.

Under hydra-submitit-launcher the job's processes are started by submitit instead (one task per
device), so Lightning must see them as launched externally: on SLURM its ``SLURMEnvironment``
reads srun's variables; for submitit's local executor :func:`adopt_submitit_local_task` sets the
variables Lightning's own launcher would have set.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys

CHILD_ARGV = "FPNAS_HYDRA_JOB_ARGV"


def export_job_argv_for_ddp_children() -> None:
    """Called by rank 0 inside a Hydra job, before the trainer launches child processes."""
    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized() or os.environ.get("LOCAL_RANK", "0") != "0":
        return
    hc = HydraConfig.get()
    args = [*hc.overrides.task, f"hydra.run.dir={hc.runtime.output_dir}", "hydra.output_subdir=null"]
    os.environ[CHILD_ARGV] = json.dumps(args)


def adopt_job_argv_if_ddp_child() -> None:
    """Called at the top of an entry point, before Hydra parses ``sys.argv``."""
    if (
        os.environ.get("LOCAL_RANK", "0") != "0"
        and CHILD_ARGV in os.environ
        and "TORCHELASTIC_RUN_ID" not in os.environ
    ):
        sys.argv = [sys.argv[0], *json.loads(os.environ[CHILD_ARGV])]


def adopt_submitit_local_task(trainer_cfg) -> None:
    """Called at the top of a Hydra task: under ``hydra/launcher=local_ddp`` this process is one of the job's.

    submitit's local executor starts ``tasks_per_node`` processes and tells each its rank only in
    ``SUBMITIT_LOCAL_*`` variables, which Lightning does not read: each task would believe it is rank 0
    and start its own children by re-running submitit's argv. With ``LOCAL_RANK``, ``WORLD_SIZE`` and a
    job-wide ``MASTER_PORT`` set, Lightning's default environment joins the tasks into one process group.
    """
    if os.environ.get("SUBMITIT_EXECUTOR") != "local":
        return
    from submitit.helpers import TorchDistributedEnvironment

    task = TorchDistributedEnvironment()  # this task's ranks; a port derived from the job id, the same in every task
    devices, nodes = trainer_cfg.get("devices", 1), trainer_cfg.get("num_nodes", 1)
    if not isinstance(devices, int) or devices * nodes != task.world_size:
        from fpnas.runtime.cli import report

        report(
            f"submitit started {task.world_size} processes for this job (hydra.launcher.tasks_per_node) but "
            f"trainer.devices={devices} x trainer.num_nodes={nodes}: set trainer.devices={task.world_size} "
            "and trainer.num_nodes=1"
        )
    os.environ.update(
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(task.master_port),
        NODE_RANK="0",
        LOCAL_RANK=str(task.local_rank),
        WORLD_SIZE=str(task.world_size),
    )


LAUNCHER_VARIABLES = ("MASTER_ADDR", "MASTER_PORT", "NODE_RANK", "LOCAL_RANK", "WORLD_SIZE")


@contextlib.contextmanager
def restored_launcher_environment():
    """Undo the variables Lightning's launcher sets in the launching process.

    Otherwise the next job of a sweep, in the same process, would find ``LOCAL_RANK`` set,
    believe its processes were launched externally, and wait for a rank 1 that never comes.
    """
    before = {k: os.environ.get(k) for k in LAUNCHER_VARIABLES}
    try:
        yield
    finally:
        for key, value in before.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
