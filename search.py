"""FP-NAS search entry point: ``python search.py [hydra overrides]`` (see README)."""

import hydra
from omegaconf import DictConfig

from fpnas.runtime.launch import adopt_job_argv_if_ddp_child
from fpnas.runtime.resume import adopt_run_overrides


@hydra.main(version_base="1.3", config_path="conf", config_name="search")
def main(cfg: DictConfig) -> float:
    from fpnas.runtime.launch import adopt_submitit_local_task

    adopt_submitit_local_task(cfg.trainer)  # hydra/launcher=local_ddp: this task is one of the job's (before Lightning)
    from fpnas.runtime.cli import run_reporting_user_errors

    summary = run_reporting_user_errors(search, cfg, skipped={"val_acc": float("nan")})  # skipped: a bad sweep job
    # the value a Hydra sweeper would optimise; a search for several targets: their mean
    return summary["val_acc"] if "val_acc" in summary else summary["val_acc_mean"]


def search(cfg: DictConfig) -> dict:
    from fpnas.search.options import check_search_config

    check_search_config(cfg)  # the plain options, before torch and Lightning are imported: a typo fails at once
    from fpnas.report.console import quiet_third_party
    from fpnas.search.run import run_search

    quiet_third_party()  # Lightning's tips and internal deprecations: noise a user cannot act on
    return run_search(cfg)


if __name__ == "__main__":
    adopt_job_argv_if_ddp_child()  # a DDP child of a sweep job runs that job only
    adopt_run_overrides()  # ckpt_path=last in a run directory: the run's own settings first
    main()
