"""``python -m vad.evaluate``: re-test a trained checkpoint with the shared evaluation.

Model, data and evaluation options come from the checkpoint's recipe (`vad.checkpoint`: every
checkpoint carries them, so a lone ``.ckpt`` copied anywhere is enough; older checkpoints fall
back to ``<run>/.hydra/config.yaml`` next to ``checkpoints/``) unless ``use_run_config=false``;
``eval.*``, ``model.*`` and ``data.*`` given on the command line override the recipe's, so the
same checkpoint can be re-scored with other options (normalisation, smoothing, θ, a method's
score variant) or on data found elsewhere (``data.root=``). ``model=<another method>`` fails.
``scores_csv=<run>/scores.csv`` re-scores saved scores without any model: the cross-check path.
"""

from __future__ import annotations

import logging
from pathlib import Path

import hydra
import lightning as L
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf, open_dict

import vad  # noqa: F401  (registers OmegaConf resolvers)
from vad.checkpoint import check_method, read_checkpoint, recipe_of
from vad.evaluation import report
from vad.evaluation.evaluator import evaluation_policy, score_videos
from vad.train import CONFIG_DIR, build
from vad.utils import exit_after_failure, format_metrics, task_wrapper

log = logging.getLogger(__name__)


def rescore(cfg: DictConfig) -> dict:
    """Metrics of a saved ``scores.csv`` under the ``eval`` options of ``cfg``."""
    names, scores, labels = report.read_scores(Path(cfg.scores_csv))
    ev = cfg.eval
    metrics, table, detections = score_videos(
        names, scores, labels, ev.normalization, ev.smoothing_sigma, ev.threshold, ev.score_direction,
        ev.normalization_window)
    policy = evaluation_policy(ev.normalization, ev.smoothing_sigma, ev.window_aggregation,
                               ev.threshold, ev.score_direction, ev.normalization_window)
    metrics = {**metrics, **policy, "rescored_from": str(cfg.scores_csv)}
    report.write_all(Path(cfg.paths.output_dir), metrics, table, detections, cfg.eval.plots)
    return {f"test/{k}": float(v) for k, v in metrics.items() if isinstance(v, (int, float))}


@task_wrapper
def evaluate(cfg: DictConfig) -> dict:
    if cfg.get("scores_csv"):
        return rescore(cfg)
    ckpt_path = Path(cfg.ckpt_path)
    checkpoint = read_checkpoint(ckpt_path)
    overrides = HydraConfig.get().overrides.task
    if any(o.startswith("model=") for o in overrides):
        check_method(checkpoint, cfg.model._target_, ckpt_path)
    if cfg.use_run_config:
        trained = recipe_of(checkpoint, ckpt_path).config
        # The recipe's options, with those given on this command line on top (e.g. another
        # score of the same weights: model.score.kind=r_mse).
        given = OmegaConf.from_dotlist([o for o in overrides
                                        if o.startswith(("eval.", "model.", "data."))])
        with open_dict(cfg):
            for section in ("model", "data", "eval"):
                cfg[section] = OmegaConf.merge(trained[section], given.get(section, {}))
    del checkpoint  # trainer.test reads it again, with Lightning's own hooks
    if cfg.get("seed") is not None:
        L.seed_everything(cfg.seed, workers=True)
    datamodule, model, trainer, _ = build(cfg)
    trainer.test(model=model, datamodule=datamodule, ckpt_path=str(ckpt_path), verbose=False)
    return {k: float(v) for k, v in trainer.callback_metrics.items()}


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="eval.yaml")
def main(cfg: DictConfig) -> None:
    try:
        metrics = evaluate(cfg)
    except Exception:
        exit_after_failure()
        raise
    log.info("test metrics:\n%s", format_metrics(metrics))


if __name__ == "__main__":
    main()
