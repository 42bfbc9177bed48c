"""Frame-level metrics as pure functions on score/label arrays (torchmetrics underneath).

* ``auc_micro``: AUC of all test videos concatenated after per-video normalisation (and
  smoothing) — the number papers report;
* ``auc_micro_raw``: the same without per-video normalisation (smoothing kept) — what a
  deployment that cannot see a whole video first gets;
* ``auc_macro_skip``: mean of per-video AUCs over the videos that contain both classes;
* ``auc_macro_padded``: mean of per-video AUCs over *every* video, each padded with one normal
  frame scored at its minimum and one anomalous frame scored at its maximum, the protocol of
  the papers that report a macro AUC (SSMTL; the public ``evaluate.py`` of
  Accurate-Interpretable-VAD), so that all-anomalous videos (Ped2 08–11) count;
* ``auc_macro``: one of the two, as ``eval.macro_auc`` says (``skip`` by default);
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


MACRO_AUCS = ("skip", "padded")


def padded_auc(scores: np.ndarray, labels: np.ndarray) -> float:
    """One video's AUC with a normal frame scored at its minimum and an anomalous frame scored
    at its maximum added: defined for single-class videos too (``auc_macro_padded``)."""
    scores = np.asarray(scores, np.float64)
    padded = np.concatenate([[scores.min()], scores, [scores.max()]])
    return auc(padded, np.concatenate([[False], np.asarray(labels, bool), [True]]))


def per_video_aucs(normalized: list[np.ndarray], labels: list[np.ndarray]
                   ) -> list[dict[str, float | None]]:
    """Per video: ``auc`` (None for a video with one class) and ``auc_padded``."""
    return [{"auc": auc(s, y) if has_both_classes(y) else None, "auc_padded": padded_auc(s, y)}
            for s, y in zip(normalized, labels)]


def frame_metrics(
    normalized: list[np.ndarray], raw: list[np.ndarray], labels: list[np.ndarray],
    macro_auc: str = "skip",
) -> dict[str, float]:
    """All frame-level metrics from per-video score and label arrays (scorable frames only).

    Pooled metrics are NaN when the scored frames hold one class only (e.g. a ``fast_dev_run``
    that scores a few normal frames). ``macro_auc`` chooses which macro AUC is ``auc_macro``;
    ``per_video`` holds `per_video_aucs`, in the order of the inputs.
    """
    if macro_auc not in MACRO_AUCS:
        raise ValueError(f"eval.macro_auc must be one of {MACRO_AUCS}, got {macro_auc!r}")
    pooled_labels = np.concatenate(labels) if labels else np.zeros(0, bool)
    pooled = np.concatenate(normalized) if normalized else np.zeros(0)
    videos = per_video_aucs(normalized, labels)
    two_class = [v["auc"] for v in videos if v["auc"] is not None]
    nan = float("nan")
    macro = {"auc_macro_skip": float(np.mean(two_class)) if two_class else nan,
             "auc_macro_padded": float(np.mean([v["auc_padded"] for v in videos])) if videos
             else nan}
    macro["auc_macro"] = macro[f"auc_macro_{macro_auc}"]
    counts = {"macro_num_videos": len(two_class) if macro_auc == "skip" else len(videos),
              "per_video": videos}
    if not has_both_classes(pooled_labels):
        return {"auc_micro": nan, "auc_micro_raw": nan, **macro, "eer": nan, **counts}
    return {
        "auc_micro": auc(pooled, pooled_labels),
        "auc_micro_raw": auc(np.concatenate(raw), pooled_labels),
        **macro,
        "eer": eer(pooled, pooled_labels),
        **counts,
    }
