"""Files a test run leaves in its run directory: the run dir holds the truth.

``metrics.json`` (every metric and the policy used), ``scores.csv`` (video, frame, score,
score_normalized, label; the label empty for unlabelled footage), ``detections.csv`` (segments
under the regularity threshold, if one is set), ``plots/regularity_<video>.png`` (like the
papers' figures, anomalous frames shaded; or ``anomaly_<video>.png`` with
``eval.score_direction=anomaly``) and ``plots/roc.png`` (with labels only).
"""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np

from vad.evaluation.metrics import roc
from vad.evaluation.scores import segments


def _jsonable(value):
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    return value


def write_metrics(path: Path, metrics: dict) -> None:
    path.write_text(json.dumps({k: _jsonable(v) for k, v in metrics.items()}, indent=2) + "\n")


def write_scores(path: Path, table) -> None:
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["video", "frame", "score", "score_normalized", "label"])
        for video, frames, raw, norm, labels in zip(table.video, table.frame, table.score,
                                                     table.normalized, table.label):
            marks = labels if labels is not None else [None] * len(frames)  # unlabelled: empty
            for frame, score, normalized, label in zip(frames, raw, norm, marks):
                writer.writerow([video, int(frame), f"{score:.8g}", f"{normalized:.8g}",
                                 "" if label is None else int(label)])


def format_auc(value: float | None) -> str:
    return "—" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.3f}"


def per_video_lines(per_video: list[dict]) -> str:
    """``metrics.json``'s per-video diagnostics as aligned text: frames, share of anomalous
    frames, AUC (— for a video with one class) and the padded AUC."""
    lines = [f"  {'video':<14} {'frames':>6} {'anomalous':>9} {'auc':>6} {'padded':>6}"]
    lines += [f"  {v['video']:<14} {v['frames']:>6} {v['anomalous_share']:>9.0%} "
              f"{format_auc(v['auc']):>6} {format_auc(v['auc_padded']):>6}" for v in per_video]
    return "\n".join(lines)


def write_detections(path: Path, detections: dict[str, list[tuple[int, int]]]) -> None:
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["video", "first_frame", "last_frame", "num_frames"])
        for video, spans in detections.items():
            for first, last in spans:
                writer.writerow([video, first, last, last - first + 1])


def plot_scores(path: Path, video: str, frames, normalized, labels, threshold=None,
                score_direction: str = "regularity") -> None:
    """Regularity score 1 − s (or the normalised anomaly score s) over time, ground truth shaded."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 2.6))
    for first, last in segments(np.asarray(labels)) if labels is not None else ():
        ax.axvspan(frames[first] - 0.5, frames[last] + 0.5, color="tab:red", alpha=0.2, lw=0)
    shown = 1 - np.asarray(normalized) if score_direction == "regularity" else normalized
    ax.plot(frames, shown, color="tab:blue", lw=1.2, label=score_direction)
    if threshold is not None:
        ax.axhline(threshold, color="k", ls="--", lw=0.8, label=f"θ = {threshold}")
    ax.set(xlabel="frame", ylabel=f"{score_direction} score",
           title=f"video {video}" + ("  (red: anomalous)" if labels is not None else ""))
    ax.legend(loc="lower left", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def plot_roc(path: Path, scores: np.ndarray, labels: np.ndarray, auc_value: float) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fpr, tpr = roc(scores, labels)
    fig, ax = plt.subplots(figsize=(4, 4))
    ax.plot(fpr, tpr, lw=1.5, label=f"AUC {auc_value:.3f}")
    ax.plot([0, 1], [0, 1], color="grey", ls=":", lw=1)
    ax.plot([0, 1], [1, 0], color="grey", ls="--", lw=0.8, label="EER line")
    ax.set(xlabel="false positive rate", ylabel="true positive rate", title="frame-level ROC")
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def write_all(output_dir: Path, metrics: dict, table, detections: dict, plots: bool = True) -> None:
    output_dir.mkdir(parents=True, exist_ok=True)
    write_metrics(output_dir / "metrics.json", metrics)
    write_scores(output_dir / "scores.csv", table)
    if detections:
        write_detections(output_dir / "detections.csv", detections)
    if plots:
        plot_dir = output_dir / "plots"
        plot_dir.mkdir(exist_ok=True)
        direction = metrics.get("score_direction", "regularity")
        for video, frames, norm, labels in zip(table.video, table.frame, table.normalized,
                                                table.label):
            file_name = video.replace("/", "_")  # combined datasets: <dataset>/<video>
            plot_scores(plot_dir / f"{direction}_{file_name}.png", video, frames, norm, labels,
                        metrics.get("threshold"), direction)
        if not math.isnan(metrics.get("auc_micro", math.nan)):  # absent without labels
            plot_roc(plot_dir / "roc.png", np.concatenate(table.normalized),
                     np.concatenate(table.label), metrics["auc_micro"])


def read_scores(path: Path) -> tuple[list[str], list[np.ndarray], list[np.ndarray | None]]:
    """Read a ``scores.csv`` back as per-video raw scores (NaN where unscored) and labels (None
    for a video whose label column is empty: unlabelled footage)."""
    rows: dict[str, list[tuple[int, float, str]]] = {}
    with Path(path).open(newline="") as handle:
        for row in csv.DictReader(handle):
            rows.setdefault(row["video"], []).append(
                (int(row["frame"]), float(row["score"]), row["label"]))
    names, scores, labels = [], [], []
    for video, entries in rows.items():
        n = max(f for f, _, _ in entries) + 1
        s, y = np.full(n, np.nan), np.zeros(n, bool)
        for f, value, label in entries:
            s[f], y[f] = value, label != "" and bool(int(label))
        names.append(video)
        scores.append(s)
        labels.append(None if all(label == "" for _, _, label in entries) else y)
    return names, scores, labels
