"""Hydra x Lightning DDP: child processes run this job, not the whole sweep.

Lightning's DDP launcher starts ranks > 0 by re-running ``sys.argv`` with ``hydra.run.dir=``
appended; under ``-m`` that argv is the whole sweep, so every child would run every job again
(Lightning #11300, Hydra #2070). Before fitting, rank 0 records this job's own overrides and
output directory in the environment the children inherit; a child started by Lightning
replaces its argv with them before Hydra parses it: a single run in the job's directory.
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
    if os.environ.get("LOCAL_RANK", "0") != "0" and CHILD_ARGV in os.environ and "TORCHELASTIC_RUN_ID" not in os.environ:
        sys.argv = [sys.argv[0], *json.loads(os.environ[CHILD_ARGV])]


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
