"""Deep SVDD hypersphere (Ruff et al., "Deep One-Class Classification", ICML 2018).

Features ``Φ ∈ R^D`` of normal data are pulled into a hypersphere of centre ``c`` and radius ``R``.
The soft-boundary objective, as DESDnet writes it (paper 000, Eq. 4), over a batch of ``n``:

    L_compact = R² + 1/(ν n) Σ_i max(0, ‖Φ_i − c‖² − R²),    ν ∈ (0, 1]

(the paper's "argmax{0, ·}" is read as max). ``ν`` bounds the fraction of samples outside the
sphere. Ruff et al. fix ``c`` after an initial forward pass (the mean feature) and do not learn
``R`` by gradient: every few epochs it is set to the ``(1 − ν)``-quantile of the distances
``‖Φ_i − c‖``. `Hypersphere` keeps ``c`` and ``R`` as buffers (so they are checkpointed) and
implements both updates; ``R = 0`` and no update gives one-class Deep SVDD (``mean ‖Φ − c‖²/ν``).

Deep SVDD can collapse: a network that may output a constant maps everything onto ``c``. Ruff et
al. avoid it with bias-free networks without bounded activations and a fixed ``c`` (Prop. 1–3);
`vad.models.blocks.unet.double_conv` builds bias-free blocks with ``norm=False, bias=False``.
"""

from __future__ import annotations

import torch
from torch import nn


def squared_distances(features: torch.Tensor, center: torch.Tensor) -> torch.Tensor:
    """``‖Φ_i − c‖²`` of features ``(n, D)`` (or ``(n, ...)``, flattened) → ``(n,)``."""
    return (features.flatten(1) - center.flatten()).pow(2).sum(1)


def soft_boundary_loss(features: torch.Tensor, center: torch.Tensor, radius: torch.Tensor | float,
                       nu: float) -> torch.Tensor:
    """Eq. (4) of paper 000 (Ruff et al.'s soft-boundary objective): compact feature loss.

    Args:
        features: ``(n, D)`` feature vectors Φ.
        center: ``(D,)`` centre c.
        radius: Radius R (a constant here: no gradient flows into it).
        nu: ν ∈ (0, 1].

    Returns:
        ``R² + 1/(ν n) Σ max(0, ‖Φ − c‖² − R²)``, a scalar.
    """
    if not 0 < nu <= 1:
        raise ValueError(f"nu must be in (0, 1], got {nu}")
    r2 = torch.as_tensor(radius, dtype=features.dtype, device=features.device).detach() ** 2
    excess = (squared_distances(features, center) - r2).clamp_min(0)
    return r2 + excess.sum() / (nu * len(features))


def quantile_radius(sq_distances: torch.Tensor, nu: float) -> torch.Tensor:
    """Ruff et al.'s radius update: the ``(1 − ν)``-quantile of the distances ``‖Φ − c‖``."""
    return torch.quantile(sq_distances.detach().float().clamp_min(0).sqrt(), 1 - nu)


class Hypersphere(nn.Module):
    """Centre ``c``, radius ``R`` and the Eq. (4) loss, checkpointed as buffers.

    Args:
        dim: Feature dimension D.
        nu: ν ∈ (0, 1], the outlier fraction in Eq. (4) and the quantile ``1 − ν`` for ``R``.
        radius: Initial R (the fixed R when the radius is never updated).
        center_eps: Coordinates of ``c`` closer to 0 than this are moved to ``±center_eps``
            (Ruff et al.'s guard against trivially matched dead units); 0 keeps the plain mean.
    """

    def __init__(self, dim: int, nu: float = 0.1, radius: float = 0.0,
                 center_eps: float = 0.0) -> None:
        super().__init__()
        if not 0 < nu <= 1:
            raise ValueError(f"nu must be in (0, 1], got {nu}")
        self.nu = nu
        self.center_eps = center_eps
        self.register_buffer("center", torch.zeros(dim))
        self.register_buffer("radius", torch.tensor(float(radius)))
        self.register_buffer("ready", torch.tensor(False))  # True once c has been set
        self.is_ready = False  # `ready` mirrored on the host: reading it never waits for a GPU

    @torch.no_grad()
    def set_center(self, features: torch.Tensor) -> None:
        """``c`` ← the mean of ``features`` ``(n, D)``; marks the sphere ready."""
        center = features.detach().float().flatten(1).mean(0)
        if self.center_eps > 0:
            small = center.abs() < self.center_eps
            sign = torch.where(center < 0, -1.0, 1.0).to(center)
            center = torch.where(small, sign * self.center_eps, center)
        self.center.copy_(center)
        self.ready.fill_(True)
        self.is_ready = True

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs) -> None:
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)
        self.is_ready = bool(self.ready)  # once per checkpoint load, not once per step

    @torch.no_grad()
    def update_radius(self, sq_distances: torch.Tensor) -> None:
        """``R`` ← the ``(1 − ν)``-quantile of the distances whose squares are given."""
        self.radius.copy_(quantile_radius(sq_distances, self.nu))

    def distances(self, features: torch.Tensor) -> torch.Tensor:
        """``‖Φ_i − c‖²`` → ``(n,)``."""
        return squared_distances(features, self.center.to(features.dtype))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """Eq. (4) on ``features`` ``(n, D)``."""
        return soft_boundary_loss(features, self.center.to(features.dtype), self.radius, self.nu)
