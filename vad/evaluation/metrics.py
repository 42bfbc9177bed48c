"""Frame-level metrics as pure functions on score/label arrays (torchmetrics underneath).

* ``auc_micro``: AUC of all test videos concatenated after per-video normalisation (and
  smoothing) — the number papers report;
* ``auc_micro_raw``: the same without per-video normalisation (smoothing kept) — what a
  deployment that cannot see a whole video first gets;
* ``auc_macro``: mean of per-video AUCs over the videos that contain both classes;
* ``eer``: equal error rate of the pooled, normalised scores (FPR = FNR on the ROC).
"""

from __future__ import annotations

import numpy as np
import torch
from torchmetrics.functional.classification import binary_auroc, binary_roc


def _tensors(scores: np.ndarray, labels: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    scores, labels = np.asarray(scores, np.float64), np.asarray(labels, bool)
    if scores.shape != labels.shape:
        raise ValueError(f"{scores.shape[0]} scores but {labels.shape[0]} labels")
    if labels.all() or not labels.any():
        raise ValueError("AUC/EER need both normal and anomalous frames")
    # torchmetrics reads scores outside [0, 1] as logits and squashes them with a sigmoid, which
    # saturates raw errors; an increasing affine map into [0, 1] leaves the ROC unchanged.
    span = scores.max() - scores.min()
    scores = (scores - scores.min()) / span if span > 0 else np.zeros_like(scores)
    return torch.from_numpy(scores), torch.from_numpy(labels.astype(np.int64))


def auc(scores: np.ndarray, labels: np.ndarray) -> float:
    """Area under the ROC curve; higher scores must mean anomalous."""
    return float(binary_auroc(*_tensors(scores, labels), thresholds=None))


def roc(scores: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(fpr, tpr)`` at every distinct threshold."""
    fpr, tpr, _ = binary_roc(*_tensors(scores, labels), thresholds=None)
    return fpr.numpy(), tpr.numpy()


def eer(scores: np.ndarray, labels: np.ndarray) -> float:
    """Equal error rate: the point of the ROC where FPR = FNR = 1 − TPR, linearly interpolated."""
    fpr, tpr = roc(scores, labels)
    gap = fpr - (1 - tpr)  # rises from -1 (everything negative) to +1
    i = int(np.searchsorted(gap, 0.0))
    if i == 0:
        return float(fpr[0])
    if i >= len(gap):
        return float(fpr[-1])
    w = -gap[i - 1] / (gap[i] - gap[i - 1])
    return float(fpr[i - 1] + w * (fpr[i] - fpr[i - 1]))


def has_both_classes(labels: np.ndarray) -> bool:
    return bool(0 < np.sum(labels) < len(labels))


def frame_metrics(
    normalized: list[np.ndarray], raw: list[np.ndarray], labels: list[np.ndarray]
) -> dict[str, float]:
    """All frame-level metrics from per-video score and label arrays (scorable frames only).

    Pooled metrics are NaN when the scored frames hold one class only (e.g. a ``fast_dev_run``
    that scores a few normal frames); the macro AUC skips single-class videos.
    """
    pooled_labels = np.concatenate(labels) if labels else np.zeros(0, bool)
    pooled = np.concatenate(normalized) if normalized else np.zeros(0)
    per_video = [auc(s, y) for s, y in zip(normalized, labels) if has_both_classes(y)]
    macro = float(np.mean(per_video)) if per_video else float("nan")
    if not has_both_classes(pooled_labels):
        nan = float("nan")
        return {"auc_micro": nan, "auc_micro_raw": nan, "auc_macro": macro, "eer": nan,
                "macro_num_videos": len(per_video)}
    return {
        "auc_micro": auc(pooled, pooled_labels),
        "auc_micro_raw": auc(np.concatenate(raw), pooled_labels),
        "auc_macro": macro,
        "eer": eer(pooled, pooled_labels),
        "macro_num_videos": len(per_video),
    }
