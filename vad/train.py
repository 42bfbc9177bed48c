"""``python -m vad.train``: fit a method on a dataset, test the best checkpoint, return the metric.

Everything is instantiated from the Hydra config (``conf/train.yaml``); this file never
branches on a model or dataset name.
"""

from __future__ import annotations

import logging
from pathlib import Path

import hydra
import lightning as L
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from lightning.pytorch.callbacks import ModelCheckpoint
from omegaconf import DictConfig

import vad  # noqa: F401  (registers OmegaConf resolvers)
from vad.checkpoint import RecipeCallback
from vad.evaluation.evaluator import FrameEvaluator
from vad.resume import checkpoint_file
from vad.utils import (
    exit_after_failure,
    format_metrics,
    get_metric_value,
    instantiate_callbacks,
    instantiate_loggers,
    log_hyperparameters,
    task_wrapper,
)
from vad.utils.validate import check_config, check_image_size

log = logging.getLogger(__name__)
CONFIG_DIR = str(Path(__file__).resolve().parents[1] / "conf")


def build(cfg: DictConfig):
    """Datamodule, model, trainer (with the evaluator and the checkpoint recipe appended
    unconditionally) from ``cfg``, after the config checks (`vad.utils.validate`), before any
    callback or logger exists."""
    check_config(cfg)
    # Plain dicts/lists, so that checkpoints hold no OmegaConf objects (weights-only loading).
    datamodule: L.LightningDataModule = hydra.utils.instantiate(cfg.data, _convert_="object")
    model: L.LightningModule = hydra.utils.instantiate(cfg.model, _convert_="object")
    check_image_size(model, datamodule)
    evaluator = FrameEvaluator(**cfg.eval, output_dir=cfg.paths.output_dir)
    recipe = RecipeCallback(cfg, cfg.get("false_alarm_rate"))  # every checkpoint carries its recipe
    callbacks = [*instantiate_callbacks(cfg.get("callbacks")), evaluator, recipe]
    loggers = instantiate_loggers(cfg.get("logger"))
    trainer: L.Trainer = hydra.utils.instantiate(cfg.trainer, callbacks=callbacks, logger=loggers)
    return datamodule, model, trainer, evaluator


@task_wrapper
def train(cfg: DictConfig) -> tuple[dict, dict]:
    if cfg.get("seed") is not None:
        L.seed_everything(cfg.seed, workers=True)
    datamodule, model, trainer, evaluator = build(cfg)
    log_hyperparameters(cfg, model, trainer)

    if cfg.get("train", True):
        trainer.fit(model=model, datamodule=datamodule,
                    ckpt_path=checkpoint_file(cfg.get("ckpt_path"), cfg.paths.output_dir))
    metrics = {k: float(v) for k, v in trainer.callback_metrics.items()}

    if cfg.get("test", True):
        # The first ModelCheckpoint (callbacks.model_checkpoint) chooses; its path is passed
        # explicitly, since "best" makes Lightning warn about the second one (last.ckpt).
        best = next((c.best_model_path for c in trainer.checkpoint_callbacks
                     if isinstance(c, ModelCheckpoint)), "")
        if not model.learns:
            log.info("%s has no trainable parameters: nothing was trained, it is tested as it is",
                     type(model).__name__)
        elif not best:
            log.warning("no best checkpoint (fast_dev_run or no checkpoint callback): testing the last weights")
        trainer.test(model=model, datamodule=datamodule, ckpt_path=best or None,
                     verbose=False)
        metrics.update({k: float(v) for k, v in trainer.callback_metrics.items()})
        log.info("test metrics (written to %s/metrics.json):\n%s", cfg.paths.output_dir,
                 format_metrics(metrics))
    return metrics, {"datamodule": datamodule, "model": model, "trainer": trainer,
                     "evaluator": evaluator}


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="train.yaml")
def main(cfg: DictConfig) -> float | None:
    try:
        metrics, objects = train(cfg)
    except Exception:
        if HydraConfig.get().mode != RunMode.MULTIRUN:
            exit_after_failure()
            raise
        # One failing job must not stop its siblings: its traceback is in its run dir.
        log.error("job %s failed (see %s/error.txt); the sweep goes on",
                  HydraConfig.get().job.num, cfg.paths.output_dir)
        return float("nan")
    name = cfg.get("optimized_metric")
    if name and name.startswith("test/") and not cfg.get("test", True):
        log.warning("test=false: %s was not computed; nothing is returned to the sweeper", name)
        return None
    if name and name not in metrics and not objects["evaluator"].metrics.get("labelled", True):
        log.warning("the test videos have no labels: %s was not computed; nothing is returned "
                    "to the sweeper", name)
        return None
    return get_metric_value(metrics, name)


if __name__ == "__main__":
    main()
