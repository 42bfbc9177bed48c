"""Frame scores from reconstruction or prediction errors, shared by every method.

Each function takes images ``(..., C, H, W)`` and returns one score per frame (``...``).
Higher means more anomalous.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def frame_error_sum(target: torch.Tensor, output: torch.Tensor, p: int = 1) -> torch.Tensor:
    """``e(t) = Σ_{x,y} |I - Î|^p`` summed over pixels and channels (paper 002, Eq. 10-11, p=1)."""
    return (target - output).abs().pow(p).flatten(-3).sum(-1)


def patch_max_error(error_map: torch.Tensor, patch_size: int, stride: int | None = None) -> torch.Tensor:
    """Largest mean error over square patches (DESDnet's score: paper 000, Eq. 5 per patch and
    the max over patches in its text).

    Args:
        error_map: ``(..., C, H, W)`` per-pixel errors (e.g. squared differences).
        patch_size: Patch side in pixels.
        stride: Patch step; defaults to ``patch_size`` (non-overlapping patches).

    Returns:
        ``(...)`` the mean error of the worst patch of each frame.
    """
    lead = error_map.shape[:-3]
    maps = error_map.reshape(-1, *error_map.shape[-3:]).mean(-3, keepdim=True)
    pooled = F.avg_pool2d(maps, patch_size, stride or patch_size)
    return pooled.flatten(1).amax(1).reshape(lead)


POOLINGS = ("mean", "patch_max")


def check_pooling(power: int, pooling: str, patch_size: int) -> None:
    """The options of `pooled_error` with a per-pixel exponent, checked before any data."""
    if power < 1:
        raise ValueError(f"model.power must be >= 1, got {power}")
    pooled_error(torch.zeros(1, 1, patch_size, patch_size), pooling, patch_size)


def pooled_error(error_map: torch.Tensor, pooling: str = "mean", patch_size: int = 16,
                 stride: int | None = None) -> torch.Tensor:
    """One score per frame of ``(..., C, H, W)`` per-pixel errors: their ``mean`` over pixels and
    channels, or the mean of the worst square patch (``patch_max``, as DESDnet's Eq. 5 score)."""
    if pooling == "mean":
        return error_map.flatten(-3).mean(-1)
    if pooling == "patch_max":
        return patch_max_error(error_map, patch_size, stride)
    raise ValueError(f"pooling must be one of {POOLINGS}, got {pooling!r}")
