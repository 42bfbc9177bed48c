"""Small helpers for the entry points (after lightning-hydra-template's ``src/utils``)."""

from __future__ import annotations

import logging
import os
import sys
import traceback
from collections.abc import Callable
from functools import wraps
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from lightning import Callback
from lightning.pytorch.loggers import Logger, WandbLogger
from omegaconf import DictConfig, OmegaConf

from vad.callbacks import wandb as wandb_run
from vad.results import RunRecord

log = logging.getLogger(__name__)


def task_wrapper(task: Callable) -> Callable:
    """Run ``task(cfg)``, recording it in ``<run dir>/run.json`` (`vad.results.RunRecord`: command,
    commit, machine, wall time, status); on failure write the traceback into the run dir; always
    close W&B."""

    @wraps(task)
    def wrapped(cfg: DictConfig):
        record = RunRecord(cfg.paths.output_dir, _task_overrides(), task.__name__)
        record.start()
        status = "failed"
        try:
            result = task(cfg)
            status = "ok"
            return result
        except Exception as error:
            output_dir = Path(cfg.paths.output_dir)
            output_dir.mkdir(parents=True, exist_ok=True)
            (output_dir / "error.txt").write_text(traceback.format_exc())
            log.error("%s: %s\n(full traceback in %s; HYDRA_FULL_ERROR=1 prints it here)",
                      type(error).__name__, error, output_dir / "error.txt")
            raise
        except BaseException:
            status = "interrupted"
            raise
        finally:
            record.finish(status)
            wandb_run.finish(failed=status != "ok")

    return wrapped


def exit_after_failure() -> None:
    """End a failed single run with exit status 1 and only the one-line message `task_wrapper`
    logged; with ``HYDRA_FULL_ERROR=1`` the caller re-raises instead (full traceback)."""
    if os.environ.get("HYDRA_FULL_ERROR") == "1":
        return
    sys.exit(1)


def _task_overrides() -> list[str]:
    """The command line's overrides (empty outside a Hydra app)."""
    if not HydraConfig.initialized():
        return []
    return list(HydraConfig.get().overrides.task)


def instantiate_callbacks(cfg: DictConfig | None) -> list[Callback]:
    """Every ``_target_`` entry of the ``callbacks`` group; ``null`` gives none."""
    if not cfg:
        return []
    return [hydra.utils.instantiate(c) for c in cfg.values() if c and "_target_" in c]


def instantiate_loggers(cfg: DictConfig | None) -> list[Logger]:
    if not cfg:
        return []
    return [hydra.utils.instantiate(c) for c in cfg.values() if c and "_target_" in c]


def log_hyperparameters(cfg: DictConfig, model, trainer) -> None:
    """Send the composed config and parameter counts to every logger (flattened for W&B)."""
    if not trainer.loggers:
        return
    params = OmegaConf.to_container(cfg, resolve=True)
    params["model/params/total"] = sum(p.numel() for p in model.parameters())
    for logger in trainer.loggers:
        logger.log_hyperparams(wandb_run.flatten(params) if isinstance(logger, WandbLogger)
                               else params)


def format_metrics(metrics: dict) -> str:
    """The ``test/*`` metrics as aligned lines: counts as integers, the rest to 4 decimals."""
    lines = []
    for key, value in sorted(metrics.items()):
        if key.startswith("test/"):
            text = f"{int(value)}" if float(value).is_integer() and "auc" not in key else f"{value:.4f}"
            lines.append(f"  {key:<28} {text}")
    return "\n".join(lines)


def get_metric_value(metrics: dict, name: str | None) -> float | None:
    """The optimised metric for a sweeper; fails loudly, naming the key, if it was never logged."""
    if not name:
        return None
    if name not in metrics:
        raise KeyError(
            f"optimized_metric {name!r} was not logged; logged metrics: {sorted(metrics)}. "
            "Set optimized_metric to one of them."
        )
    return float(metrics[name])
