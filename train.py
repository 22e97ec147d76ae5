"""Retrain a searched architecture from scratch: ``python train.py arch=<run dir>/arch.yaml``."""

import hydra
from omegaconf import DictConfig

from fpnas.runtime.resume import adopt_run_overrides


@hydra.main(version_base="1.3", config_path="conf", config_name="train")
def main(cfg: DictConfig) -> float:
    from fpnas.report.console import quiet_third_party
    from fpnas.runtime.cli import run_reporting_user_errors
    from fpnas.train.run import run_train

    quiet_third_party()  # Lightning's tips and internal deprecations: noise a user cannot act on
    return run_reporting_user_errors(run_train, cfg)["test_acc"]


if __name__ == "__main__":
    adopt_run_overrides()  # ckpt_path=last in a run directory: the run's own settings first
    main()
