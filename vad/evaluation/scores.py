"""From per-clip target scores to one post-processed score per labelled frame.

Order of operations (each step recorded in ``metrics.json``):

1. *window aggregation*: a frame targeted by several clips (window autoencoders) gets the
   ``mean``/``max``/``min`` of its scores;
2. *alignment*: frames no clip targets are unscorable, excluded from scores and labels alike;
3. *per-video normalisation* of the scorable frames: ``minmax`` (e − min)/(max − min), the
   protocol of most papers; ``min_over_max`` (e − e_min)/e_max, paper 002 Eq. 12;
   ``window_minmax``, min–max over the ``window`` frames centred on each frame (cut off at the
   video's ends), as paper 003 does for ShanghaiTech; or ``none``;
4. optional *Gaussian temporal smoothing* (σ in frames), after normalisation.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy.ndimage import gaussian_filter1d, maximum_filter1d, minimum_filter1d

NORMALIZATIONS = ("minmax", "min_over_max", "window_minmax", "none")
AGGREGATIONS = ("mean", "max", "min")


def aggregate_window_scores(
    video: np.ndarray, frame: np.ndarray, score: np.ndarray, num_frames: Sequence[int],
    how: str = "mean",
) -> list[np.ndarray]:
    """One score per frame and video; NaN where no clip targets the frame.

    Args:
        video, frame, score: Flat arrays, one entry per (clip, target frame).
        num_frames: Frame count of each video, indexed by ``video``.
        how: ``mean``, ``max`` or ``min`` over the clips that target a frame.
    """
    if how not in AGGREGATIONS:
        raise ValueError(f"window aggregation must be one of {AGGREGATIONS}, got {how!r}")
    out = []
    for v, n in enumerate(num_frames):
        sel = video == v
        f, s = frame[sel].astype(np.int64), score[sel].astype(np.float64)
        if len(f) and (f.min() < 0 or f.max() >= n):
            raise ValueError(f"video {v}: scored frame index outside [0, {n})")
        counts = np.bincount(f, minlength=n)
        if how == "mean":
            agg = np.bincount(f, weights=s, minlength=n) / np.maximum(counts, 1)
        else:
            agg = np.full(n, -np.inf if how == "max" else np.inf)
            (np.maximum if how == "max" else np.minimum).at(agg, f, s)
        agg[counts == 0] = np.nan
        out.append(agg)
    return out


def normalize(scores: np.ndarray, method: str, window: int = 0) -> np.ndarray:
    """Per-video normalisation of one video's scores (see module docstring); ``window`` (frames)
    is used by ``window_minmax`` only."""
    if method == "none":
        return scores.astype(np.float64)
    if method == "window_minmax":
        if window < 2:
            raise ValueError(f"window_minmax normalisation needs eval.normalization_window >= 2, "
                             f"got {window}")
        scores = scores.astype(np.float64)
        low = minimum_filter1d(scores, window, mode="nearest")
        high = maximum_filter1d(scores, window, mode="nearest")
        span = high - low
        return np.divide(scores - low, span, out=np.zeros_like(scores), where=span > 0)
    low, high = float(np.min(scores)), float(np.max(scores))
    if method == "minmax":
        return (scores - low) / (high - low) if high > low else np.zeros_like(scores, np.float64)
    if method == "min_over_max":
        if low < 0:  # (e - e_min) / e_max reverses the ranking when e_max < 0
            raise ValueError(f"min_over_max normalisation (paper 002, Eq. 12) needs scores >= 0, "
                             f"got a minimum of {low:.4g}; use eval.normalization=minmax")
        return (scores - low) / high if high != 0 else np.zeros_like(scores, np.float64)
    raise ValueError(f"normalization must be one of {NORMALIZATIONS}, got {method!r}")


def smooth(scores: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian temporal smoothing with σ frames; σ = 0 leaves the scores unchanged."""
    return gaussian_filter1d(scores, sigma, mode="nearest") if sigma > 0 else scores


def postprocess(scores: np.ndarray, normalization: str, sigma: float, window: int = 0
                ) -> np.ndarray:
    """Normalise, then smooth, one video's scorable-frame scores."""
    return smooth(normalize(scores, normalization, window), sigma)


def segments(flags: np.ndarray) -> list[tuple[int, int]]:
    """Contiguous runs of True as ``(first, last)`` inclusive frame indices."""
    padded = np.concatenate([[False], flags.astype(bool), [False]])
    edges = np.flatnonzero(np.diff(padded.astype(np.int8)))
    return [(int(a), int(b) - 1) for a, b in zip(edges[::2], edges[1::2])]
