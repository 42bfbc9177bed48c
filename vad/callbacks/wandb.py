"""Weights & Biases: the mode and group of a run, the evaluation uploads, the closing.

Everything W&B-specific lives here; `wandb` itself is imported only when a W&B run exists.

* `mode`: ``WANDB_MODE`` (``online``, ``offline``, ``disabled``) when set; otherwise ``online``
  with an API key (``WANDB_API_KEY`` or ``wandb login``'s netrc entry) and ``offline`` without,
  so that ``logger=wandb`` works with no account and no network.
* `group`: the sweep folder's name for the jobs of a multirun, else the experiment, else the task.
* `log_evaluation`: called by `vad.evaluation.evaluator.FrameEvaluator` when a ``WandbLogger`` is
  attached; uploads what the evaluation wrote (plots, per-frame scores, per-video AUC).
* `finish`: called by `vad.utils.task_wrapper` in its ``finally``: one W&B run per job.
"""

from __future__ import annotations

import logging
import netrc
import os
import sys
from pathlib import Path
from urllib.parse import urlparse

import numpy as np

MODES = ("online", "offline", "disabled")

log = logging.getLogger(__name__)


def has_api_key() -> bool:
    """An API key in the environment or in the netrc file ``wandb login`` writes."""
    if os.environ.get("WANDB_API_KEY"):
        return True
    host = urlparse(os.environ.get("WANDB_BASE_URL", "https://api.wandb.ai")).hostname
    try:
        return netrc.netrc().authenticators(host) is not None
    except (OSError, netrc.NetrcParseError):
        return False


def mode() -> str:
    """The W&B mode of a run (resolver ``${wandb_mode:}`` in ``conf/logger/wandb.yaml``)."""
    chosen = os.environ.get("WANDB_MODE", "").strip().lower()
    if chosen == "dryrun":  # W&B's older name for offline
        return "offline"
    if chosen:
        if chosen not in MODES:
            raise ValueError(f"WANDB_MODE={chosen!r}: expected one of {MODES}")
        return chosen
    return "online" if has_api_key() else "offline"


def group(run_mode, sweep_dir: str, experiment: str | None, task_name: str) -> str:
    """Resolver ``${wandb_group:...}``: the sweep, the experiment or the task of a run."""
    if str(run_mode).endswith("MULTIRUN"):
        return Path(str(sweep_dir)).name
    return str(experiment) if experiment else str(task_name)


def flatten(params: dict, prefix: str = "") -> dict:
    """``{"model": {"clusters": 8}}`` → ``{"model.clusters": 8}``: dashboard filters and
    parallel-coordinate plots then see every config leaf by its command-line name."""
    flat = {}
    for key, value in params.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            flat.update(flatten(value, f"{name}."))
        else:
            flat[name] = value
    return flat


def log_evaluation(run, metrics: dict, table, plot_dir: Path | None) -> None:
    """Upload one test evaluation to the W&B ``run``.

    Logs the score plots and ROC written by `vad.evaluation.report` as images (when plots were
    written), every scored frame as a ``wandb.Table`` (``test/scores``), one line plot per video
    of the shown score against ground truth (``test/score_curve/<video>``) and the per-video AUC
    (``test/per_video_auc``). The ``test/*`` metrics themselves reach W&B through Lightning.
    """
    import wandb

    direction = metrics.get("score_direction", "regularity")
    data = {}
    if plot_dir is not None and plot_dir.is_dir():
        curves = sorted(plot_dir.glob(f"{direction}_*.png"))
        if curves:
            data[f"test/plots/{direction}"] = [wandb.Image(str(p), caption=p.stem) for p in curves]
        if (plot_dir / "roc.png").exists():
            data["test/plots/roc"] = wandb.Image(str(plot_dir / "roc.png"))
    rows = []
    for video, frames, raw, normalized, labels in zip(table.video, table.frame, table.score,
                                                      table.normalized, table.label):
        shown = 1 - normalized if direction == "regularity" else normalized
        rows += [[video, int(f), float(s), float(n), int(y)]
                 for f, s, n, y in zip(frames, raw, normalized, labels)]
        data[f"test/score_curve/{video}"] = wandb.plot.line_series(
            xs=np.asarray(frames).tolist(), ys=[shown.tolist(), labels.astype(float).tolist()],
            keys=[f"{direction} score", "ground truth (1 = anomalous)"], title=f"video {video}",
            xname="frame")
    data["test/scores"] = wandb.Table(
        columns=["video", "frame", "score", "score_normalized", "label"], data=rows)
    columns = ["video", "frames", "anomalous_frames", "anomalous_share", "auc", "auc_padded"]
    data["test/per_video_auc"] = wandb.Table(
        columns=columns, data=[[v[c] for c in columns] for v in metrics.get("per_video", [])])
    run.log(data)


def finish(failed: bool) -> None:
    """Close the W&B run of this job, if one was started; say how to upload an offline one."""
    wandb = sys.modules.get("wandb")
    if wandb is None or wandb.run is None:
        return
    run = wandb.run
    offline, run_dir = run.offline, Path(run.dir).parent
    wandb.finish(exit_code=1 if failed else 0)
    if offline:
        log.info("W&B run saved offline: upload it with `wandb sync %s`", run_dir)
