"""``python -m vad.evaluate``: re-test a trained checkpoint with the shared evaluation.

Model, data and evaluation options come from the checkpoint's recipe (`vad.checkpoint`: every
checkpoint carries them, so a lone ``.ckpt`` copied anywhere is enough; older checkpoints fall
back to ``<run>/.hydra/config.yaml`` next to ``checkpoints/``) unless ``use_run_config=false``;
``eval.*``, ``model.*`` and ``data.*`` given on the command line override the recipe's, so the
same checkpoint can be re-scored with other options (normalisation, smoothing, θ, a method's
score variant: ``model=latentpred model.score.kind=r_mse``; Hydra checks a ``model.*`` key
against the model config named on the command line, DESDnet's when none is), on data found elsewhere (``data.root=``) or on part of its data
(``data=combined data.test=[ped2]``: one dataset of a combined run). ``model=<another method>``
fails.
``scores_csv=<run>/scores.csv`` re-scores saved scores without any model: the cross-check path.
``robustness=<preset>`` (``conf/robustness/``) also tests the checkpoint on distorted test frames,
once per (distortion, level), and writes an AUC table and plot (`vad.evaluation.robustness`).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import hydra
import lightning as L
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf, open_dict

import vad  # noqa: F401  (registers OmegaConf resolvers)
from vad.checkpoint import check_method, read_checkpoint, recipe_of
from vad.evaluation import report, robustness
from vad.evaluation.evaluator import evaluation_policy, score_videos
from vad.train import CONFIG_DIR, build
from vad.utils import exit_after_failure, format_metrics, log_hyperparameters, task_wrapper

log = logging.getLogger(__name__)


# What a saved scores.csv was made with, carried over from its run's metrics.json.
SCORED_WITH = ("window_aggregation", "label_source", "clip", "test_window_step", "checkpoint",
               "checkpoint_kind")


def rescore(cfg: DictConfig) -> dict:
    """Metrics of a saved ``scores.csv`` under the ``eval`` options of ``cfg``.

    The window aggregation happened when the scores were saved: it, the labels' source, the clip
    shape and the checkpoint are taken from the ``metrics.json`` beside the csv, not from ``cfg``.
    """
    scores_csv = Path(cfg.scores_csv)
    names, scores, labels = report.read_scores(scores_csv)
    original_path = scores_csv.with_name("metrics.json")
    original = json.loads(original_path.read_text()) if original_path.exists() else {}
    if not original:
        log.warning("no metrics.json beside %s: window aggregation and label source unknown",
                    scores_csv)
    given = cfg.eval.window_aggregation
    if original.get("window_aggregation", given) != given:
        log.warning("eval.window_aggregation=%s ignored: %s holds frame scores already "
                    "aggregated with %s", given, scores_csv, original["window_aggregation"])
    scored_with = {key: original.get(key) for key in SCORED_WITH}
    scored_with["label_source"] = scored_with["label_source"] or f"labels column of {scores_csv}"
    ev = cfg.eval
    metrics, table, detections = score_videos(
        names, scores, labels, ev.normalization, ev.smoothing_sigma, ev.threshold, ev.score_direction,
        ev.normalization_window, ev.macro_auc)
    policy = evaluation_policy(ev.normalization, ev.smoothing_sigma,
                               scored_with["window_aggregation"], ev.threshold,
                               ev.score_direction, ev.normalization_window, ev.macro_auc)
    metrics = {**metrics, **policy, **scored_with, "rescored_from": str(scores_csv)}
    report.write_all(Path(cfg.paths.output_dir), metrics, table, detections, cfg.eval.plots)
    return {f"test/{k}": float(v) for k, v in metrics.items()
            if isinstance(v, (int, float)) and not isinstance(v, bool)}


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
    datamodule, model, trainer, evaluator = build(cfg)
    log_hyperparameters(cfg, model, trainer)
    if cfg.get("robustness"):
        rows = robustness.run_suite(datamodule, model, trainer, evaluator, str(ckpt_path),
                                    cfg.robustness, Path(cfg.paths.output_dir))
        return {f"test/{k}": float(v) for k, v in rows[0].items() if k in robustness.COLUMNS[2:]}
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
