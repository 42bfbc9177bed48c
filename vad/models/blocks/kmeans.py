"""Deep K-means: soft-assignment distance to learnable centres, initialised by scikit-learn.

Paper 001 (STD-AE, §3.5) after Fard et al.'s deep k-means: for a representation vector r ∈ R^D
(one per feature-map location) and centres C = {c_1..c_K},

    w_k(r)  = exp(−α ‖r − c_k‖) / Σ_k' exp(−α ‖r − c_k'‖)      soft assignment (first factor)
    D(r, C) = Σ_k w_k(r) ‖r − c_k‖²                             Eq. (10)
    L_cluster = Σ_{h, w} D(r_{h,w}, C)                          Eq. (11)

α is an inverse temperature (α → ∞: the squared distance to the nearest centre, hard k-means;
α = 0: the mean squared distance to all centres). The centres start from K-means on sampled
representations (`kmeans_init`, scikit-learn, seeded), then are trained by gradient descent.
"""

from __future__ import annotations

import numpy as np
import torch
from sklearn.cluster import KMeans, MiniBatchKMeans


def soft_kmeans_distance(r: torch.Tensor, centres: torch.Tensor, alpha: float) -> torch.Tensor:
    """Eq. (10) at every location.

    Args:
        r: Representations ``(B, D, H, W)`` (or ``(N, D)``).
        centres: ``(K, D)``.
        alpha: α, the inverse temperature of the soft assignment.

    Returns:
        D(r, C): ``(B, H, W)`` (or ``(N,)``).
    """
    spatial = r.dim() == 4
    vectors = r.movedim(1, -1) if spatial else r  # (..., D)
    # ‖r − c_k‖² = ‖r‖² − 2 r·c_k + ‖c_k‖² (..., K): one matrix product, never the (..., K, D)
    # differences (K·D floats per location: at 32x32 x 512 and K = 32 a 1 GB tensor per batch of
    # 16, and phase 2 ~3x slower than phase 1 on the CPU); clamped against float cancellation
    sq = (vectors.pow(2).sum(-1, keepdim=True) - 2 * vectors @ centres.T
          + centres.pow(2).sum(-1)).clamp_min(0)
    # sqrt with a floor: the gradient of ‖·‖ at 0 is undefined
    weights = torch.softmax(-alpha * sq.clamp_min(1e-12).sqrt(), dim=-1)
    return (weights * sq).sum(-1)


def cluster_loss(r: torch.Tensor, centres: torch.Tensor, alpha: float) -> torch.Tensor:
    """Eq. (11): Σ over locations of Eq. (10), averaged over the batch (the mean is ours)."""
    return soft_kmeans_distance(r, centres, alpha).flatten(1).sum(1).mean()


def kmeans_init(samples: torch.Tensor | np.ndarray, num_clusters: int, seed: int = 0,
                minibatch: bool = False, n_init: int = 1) -> torch.Tensor:
    """Initial centres: scikit-learn K-means (k-means++ seeding) on ``samples`` ``(N, D)``.

    Args:
        samples: Representation vectors, one per row.
        num_clusters: K.
        seed: ``random_state``: the same samples and seed give the same centres.
        minibatch: Use ``MiniBatchKMeans`` (large N) instead of ``KMeans``.
        n_init: K-means restarts.

    Returns:
        ``(K, D)`` float32 centres.
    """
    data = (samples.detach().float().cpu().numpy() if isinstance(samples, torch.Tensor)
            else np.asarray(samples, dtype=np.float32))
    if len(data) < num_clusters:
        raise ValueError(f"K-means needs at least K = {num_clusters} samples, got {len(data)}: "
                         "sample more locations (model.kmeans.locations_per_clip) or lower K")
    cls = MiniBatchKMeans if minibatch else KMeans
    fitted = cls(n_clusters=num_clusters, random_state=seed, n_init=n_init).fit(data)
    return torch.from_numpy(fitted.cluster_centers_.astype(np.float32))
