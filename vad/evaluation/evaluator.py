"""`FrameEvaluator`: the Lightning callback that turns test-step `FrameScores` into metrics.

It only collects, gathers across processes (dropping duplicates that distributed samplers pad
in) and calls the pure functions of `vad.evaluation.scores` and `vad.evaluation.metrics`; the
files are written by `vad.evaluation.report`. Methods never compute metrics themselves.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import lightning as L
import numpy as np
import torch
from lightning.pytorch.loggers import WandbLogger

from vad.callbacks import wandb as wandb_run
from vad.evaluation import report
from vad.evaluation.metrics import frame_metrics, has_both_classes
from vad.evaluation.scores import NORMALIZATIONS, aggregate_window_scores, postprocess, segments

SCORE_DIRECTIONS = ("regularity", "anomaly")

log = logging.getLogger(__name__)


@dataclass
class FrameTable:
    """One row per scorable test frame, in video then frame order."""

    video: list[str] = field(default_factory=list)
    frame: list[np.ndarray] = field(default_factory=list)
    score: list[np.ndarray] = field(default_factory=list)  # aggregated raw anomaly score
    normalized: list[np.ndarray] = field(default_factory=list)  # after normalisation + smoothing
    label: list[np.ndarray | None] = field(default_factory=list)  # None: unlabelled footage


def score_videos(
    names: list[str],
    raw_scores: list[np.ndarray],
    labels: list[np.ndarray],
    normalization: str = "minmax",
    smoothing_sigma: float = 0.0,
    threshold: float | None = None,
    score_direction: str = "regularity",
    normalization_window: int = 0,
    macro_auc: str = "skip",
) -> tuple[dict, FrameTable, dict[str, list[tuple[int, int]]]]:
    """Metrics of per-video frame scores.

    Args:
        names: Video ids.
        raw_scores: Per video, one anomaly score per frame, NaN where no clip scores the frame.
        labels: Per video, ``bool[num_frames]``; None for every video when the test footage
            has no labels (`data=folder` without ``data.labels``): scores, plots and detections
            are still produced, the label-based metrics (AUC, EER, precision) are skipped.
        normalization: ``minmax``, ``min_over_max``, ``window_minmax`` or ``none`` (per video).
        smoothing_sigma: Gaussian temporal smoothing σ (frames), after normalisation.
        threshold: Optional θ; with ``score_direction="regularity"`` frames whose regularity
            1 − normalised score falls below θ are detections (paper 002, §III-C), with
            ``"anomaly"`` frames whose normalised anomaly score exceeds θ.
        score_direction: Which score thresholds and plots show (metrics always rank the
            anomaly score, higher = more anomalous).
        normalization_window: Frames of the ``window_minmax`` window.
        macro_auc: ``skip`` (single-class videos left out) or ``padded`` (every video, padded
            with a normal and an anomalous frame): which one ``auc_macro`` is; both are given.

    Returns:
        ``(metrics, table, detections)``: the metrics dict, the per-frame table and, if a
        threshold is given, the detected anomalous segments per video as ``(first, last)`` frame
        indices (0-based, inclusive, as in ``scores.csv``).
    """
    unlabelled = [name for name, y in zip(names, labels) if y is None]
    if unlabelled and len(unlabelled) < len(names):
        raise ValueError(f"test videos {unlabelled} have no labels but the others do: give "
                         f"labels for every test video or for none")
    has_labels = not unlabelled
    table = FrameTable()
    excluded = 0
    for name, raw, y in zip(names, raw_scores, labels):
        if y is not None and len(raw) != len(y):
            raise ValueError(f"video {name!r}: {len(raw)} scored frame slots, {len(y)} labels")
        scorable = ~np.isnan(raw)
        excluded += int((~scorable).sum())
        if not scorable.any():
            log.warning("video %s: no frame was scored (shorter than a clip, or not tested)", name)
            continue
        table.video.append(name)
        table.frame.append(np.flatnonzero(scorable))
        table.score.append(raw[scorable])
        table.normalized.append(postprocess(raw[scorable], normalization, smoothing_sigma,
                                            normalization_window))
        table.label.append(np.asarray(y, bool)[scorable] if has_labels else None)
    metrics = {"labelled": has_labels}
    if has_labels:
        smoothed_raw = [postprocess(s, "none", smoothing_sigma) for s in table.score]
        metrics.update(frame_metrics(table.normalized, smoothed_raw, table.label, macro_auc))
        if np.isnan(metrics["auc_micro"]):
            log.warning("the scored frames hold a single class: AUC and EER are undefined (NaN)")
        single_class = [v for v, y in zip(table.video, table.label) if not has_both_classes(y)]
        if single_class:
            log.info("auc_macro_skip leaves out %d video(s) with a single class: %s",
                     len(single_class), ", ".join(single_class))
        metrics["per_video"] = [
            {"video": name, "frames": len(y), "anomalous_frames": int(y.sum()),
             "anomalous_share": float(y.mean()), **aucs}
            for name, y, aucs in zip(table.video, table.label, metrics["per_video"])]
        metrics.update({"num_anomalous_frames": int(sum(y.sum() for y in table.label)),
                        "macro_skipped_videos": single_class})
    else:
        log.info("the test videos have no labels: scores.csv and plots are written, AUC, EER "
                 "and detection precision/recall are skipped (give data.labels=<file> for them)")
    metrics.update({
        "num_videos": len(table.video),
        "num_frames": int(sum(len(f) for f in table.frame)),
        "excluded_frames": excluded,
    })
    detections = {}
    if threshold is not None:
        flags = [(1 - s < threshold) if score_direction == "regularity" else (s > threshold)
                 for s in table.normalized]
        # Runs of detected scorable frames, reported as frame indices (first scorable = T - 1).
        detections = {v: [(int(frames[a]), int(frames[b])) for a, b in segments(f)]
                      for v, frames, f in zip(table.video, table.frame, flags)}
        metrics["threshold"] = threshold
        if has_labels:
            pred, truth = np.concatenate(flags), np.concatenate(table.label)
            tp = float((pred & truth).sum())
            precision = tp / max(pred.sum(), 1)
            recall = tp / max(truth.sum(), 1)
            metrics.update({
                "detection_precision": precision,
                "detection_recall": recall,
                "detection_f1": 2 * precision * recall / max(precision + recall, 1e-12),
            })
    return metrics, table, detections


def evaluation_policy(normalization: str, smoothing_sigma: float, window_aggregation: str,
                      threshold: float | None, score_direction: str,
                      normalization_window: int = 0, macro_auc: str = "skip") -> dict:
    """The evaluation options a run used, as recorded in ``metrics.json``."""
    return {"normalization": normalization, "normalization_window": int(normalization_window),
            "macro_auc": macro_auc,
            "smoothing_sigma": float(smoothing_sigma),
            "window_aggregation": window_aggregation, "threshold": threshold,
            "score_direction": score_direction,
            "metric_direction": "AUC/EER rank the anomaly score (higher = more anomalous)"}


def tested_checkpoint(trainer) -> dict:
    """Which weights a test ran on, as recorded in ``metrics.json``: the checkpoint's path and
    ``best`` (chosen on the checkpoint callback's monitor), ``last`` or ``given`` (any other)."""
    path = getattr(trainer, "ckpt_path", None)
    if not path:
        return {"checkpoint": None, "checkpoint_kind": "current weights"}
    callback = getattr(trainer, "checkpoint_callback", None)
    chosen = callback is not None and str(path) == str(callback.best_model_path)
    if Path(path).stem == "last" or (chosen and callback.monitor is None):
        kind = "last"
    else:
        kind = f"best ({callback.monitor})" if chosen else "given"
    return {"checkpoint": str(path), "checkpoint_kind": kind}


def data_policy(datamodule) -> dict:
    """How the test windows were cut, as recorded in ``metrics.json``."""
    spec = getattr(datamodule, "spec", None)
    return {"label_source": datamodule.label_source,
            "clip": dataclasses.asdict(spec) if spec is not None else None,
            "test_window_step": getattr(datamodule, "test_window_step", None)}


class FrameEvaluator(L.Callback):
    """Collects test scores keyed by (video, frame), computes and logs ``test/*`` metrics and
    writes ``metrics.json``, ``scores.csv``, plots and detections to ``output_dir``.

    Args:
        normalization: Per-video normalisation (`vad.evaluation.scores`).
        smoothing_sigma: Gaussian temporal smoothing σ in frames (0: none), after normalisation.
        window_aggregation: How several clips' scores of one frame combine (mean/max/min).
        threshold: Optional θ for frame/segment detections (see `score_videos`).
        score_direction: ``regularity`` (1 − normalised score, as papers plot) or ``anomaly``:
            the score plots show and ``threshold`` applies to.
        output_dir: Run directory for the files; ``None`` writes nothing.
        plots: Write a regularity plot per test video and a ROC plot.
        normalization_window: Frames of the ``window_minmax`` normalisation window.
        macro_auc: Which macro AUC ``test/auc_macro`` is: ``skip`` or ``padded`` (`score_videos`).
    """

    def __init__(
        self,
        normalization: str = "minmax",
        smoothing_sigma: float = 0.0,
        window_aggregation: str = "mean",
        threshold: float | None = None,
        score_direction: str = "regularity",
        output_dir: str | None = None,
        plots: bool = True,
        normalization_window: int = 0,
        macro_auc: str = "skip",
    ) -> None:
        if normalization not in NORMALIZATIONS:
            raise ValueError(f"eval.normalization must be one of {NORMALIZATIONS}")
        if score_direction not in SCORE_DIRECTIONS:
            raise ValueError(f"eval.score_direction must be one of {SCORE_DIRECTIONS}")
        self.score_direction = score_direction
        self.normalization = normalization
        self.normalization_window = int(normalization_window)
        self.macro_auc = macro_auc
        self.smoothing_sigma = float(smoothing_sigma)
        self.window_aggregation = window_aggregation
        self.threshold = threshold
        self.output_dir = Path(output_dir) if output_dir else None
        self.plots = plots
        self._rows: list[torch.Tensor] = []
        self._started = 0.0
        self.metrics: dict = {}

    def on_test_epoch_start(self, trainer, pl_module) -> None:
        self._rows = []
        self._started = time.perf_counter()

    def on_test_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0):
        n_targets = outputs.frames.shape[1]
        self._rows.append(torch.stack([
            outputs.index.repeat_interleave(n_targets).double(),
            outputs.video.repeat_interleave(n_targets).double(),
            outputs.frames.reshape(-1).double(),
            outputs.score.reshape(-1).double(),
        ], dim=1).detach())

    def _gather(self, pl_module) -> np.ndarray:
        rows = torch.cat(self._rows) if self._rows else torch.zeros(0, 4, dtype=torch.float64)
        if pl_module.trainer.world_size > 1:
            rows = pl_module.all_gather(rows.to(pl_module.device)).reshape(-1, 4)
        rows = rows.cpu().numpy()
        _, first = np.unique(rows[:, [0, 2]], axis=0, return_index=True)
        return rows[np.sort(first)]

    def on_test_epoch_end(self, trainer, pl_module) -> None:
        rows = self._gather(pl_module)  # waits for the device, so the timing below is complete
        seconds = time.perf_counter() - self._started
        records = trainer.datamodule.test_records
        bad = ~np.isfinite(rows[:, 3])
        if bad.any():  # NaN would otherwise read as "no clip scored this frame"
            video, frame = rows[np.argmax(bad), 1:3].astype(int)
            raise FloatingPointError(
                f"{int(bad.sum())} non-finite test score(s), the first for video "
                f"{records[video].name!r} frame {frame}: the model diverged or its score divides "
                f"by zero; check the training losses (train/loss) and the checkpoint tested")
        raw = aggregate_window_scores(rows[:, 1].astype(int), rows[:, 2].astype(int), rows[:, 3],
                                      [r.num_frames for r in records], self.window_aggregation)
        metrics, table, detections = score_videos(
            [r.name for r in records], raw, [r.labels for r in records],
            self.normalization, self.smoothing_sigma, self.threshold, self.score_direction,
            self.normalization_window, self.macro_auc)
        log.info("excluded %d unscorable frames of %d", metrics["excluded_frames"],
                 sum(r.num_frames for r in records))
        if "per_video" in metrics:
            log.info("per video (auc: videos with both classes; padded: every video):\n%s",
                     report.per_video_lines(metrics["per_video"]))
        # Batched inference speed: scored frames per second of the whole test loop (loading,
        # forward passes and scoring; every window counted once however many frames it scores).
        metrics["inference_fps"] = metrics["num_frames"] / max(seconds, 1e-9)
        numeric = {k: float(v) for k, v in metrics.items()
                   if isinstance(v, (int, float)) and not isinstance(v, bool)}
        pl_module.log_dict({f"test/{k}": v for k, v in numeric.items()}, sync_dist=False,
                           rank_zero_only=True)
        policy = evaluation_policy(self.normalization, self.smoothing_sigma,
                                   self.window_aggregation, self.threshold, self.score_direction,
                                   self.normalization_window, self.macro_auc)
        self.metrics = {**metrics, **policy, **data_policy(trainer.datamodule),
                        **tested_checkpoint(trainer)}
        if not trainer.is_global_zero:
            return
        if self.output_dir is not None:
            report.write_all(self.output_dir, self.metrics, table, detections, plots=self.plots)
        plot_dir = self.output_dir / "plots" if self.output_dir is not None and self.plots else None
        for experiment_logger in getattr(trainer, "loggers", []):
            if isinstance(experiment_logger, WandbLogger):
                wandb_run.log_evaluation(experiment_logger.experiment, self.metrics, table,
                                         plot_dir)
