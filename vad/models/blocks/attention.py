"""Variance attention (paper 001, STD-AE, §3.4, Eq. 7-9): weight the locations whose features
vary most across channels, i.e. where the stacked frames move.

    f(h, w)   = W * z(h, w)                                   Eq. (7)  a convolutional embedding
    v(h, w)   = 1/D Σ_d (f(h, w, d) − 1/D Σ_d' f(h, w, d'))²   Eq. (8)  variance across channels
    att(h, w) = exp v(h, w) / Σ_{h', w'} exp v(h', w')        Eq. (9)  "L1 normalisation" of exp v

``att`` sums to 1 over the H·W locations. How it weights the features is not in the paper
(``mode``, our choice; the default ``residual``):

* ``plain``:    z · att            (the literal reading: shrinks z by about 1/(H·W));
* ``scaled``:   z · H·W·att        (mean weight 1: static areas damped, moving ones amplified);
* ``residual``: z · (1 + H·W·att)  (never below z: moving areas amplified, static kept);
* ``exp``:      z · exp(att)       (≈ z · (1 + att): nearly the identity at useful sizes).
                                   This is the authors' code (ChangYunPeng/VideoAnomalyDetection,
                                   ``Variance_Attention``: exp(softmax over space of the channel
                                   variance) · z), not the paper's text.

``residual`` multiplies by up to 1 + H·W (×4097 on a 64×64 map) where one location dominates;
issue 24 compares it with ``exp`` on real Ped2 (docs/results.md).

The embedding's kernel size is not given either (``kernel_size``, our choice 1: a 1×1 conv).
"""

from __future__ import annotations

import torch
from torch import nn

ATTENTION_MODES = ("plain", "scaled", "residual", "exp")


def variance_attention_map(embedding: torch.Tensor) -> torch.Tensor:
    """Eq. (8)-(9): ``(B, D, H, W)`` embedding → ``(B, 1, H, W)`` map summing to 1 over space."""
    variance = embedding.float().var(dim=1, unbiased=False)  # Eq. (8), 1/D normalisation
    weights = torch.softmax(variance.flatten(1), dim=1)  # Eq. (9): exp v / Σ exp v
    return weights.view(embedding.shape[0], 1, *embedding.shape[-2:]).to(embedding.dtype)


class VarianceAttention(nn.Module):
    """Conv embedding (Eq. 7) → variance map (Eq. 8-9) → features re-weighted by ``mode``.

    Args:
        channels: Channels D of the features (the embedding keeps D).
        kernel_size: Kernel of the embedding convolution (our choice: 1).
        mode: ``plain`` | ``scaled`` | ``residual`` | ``exp`` (see the module docstring).

    Returns (forward):
        The weighted features ``(B, D, H, W)`` and the attention map ``(B, 1, H, W)``.
    """

    def __init__(self, channels: int, kernel_size: int = 1, mode: str = "residual") -> None:
        super().__init__()
        if mode not in ATTENTION_MODES:
            raise ValueError(f"attention mode must be one of {ATTENTION_MODES}, got {mode!r}")
        self.mode = mode
        self.embed = nn.Conv2d(channels, channels, kernel_size, padding=kernel_size // 2)

    def forward(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        att = variance_attention_map(self.embed(z))  # Eq. (7)-(9)
        if self.mode == "plain":
            weight = att
        elif self.mode == "scaled":
            weight = att * att[0, 0].numel()
        elif self.mode == "residual":
            weight = 1 + att * att[0, 0].numel()
        else:
            weight = torch.exp(att)
        return z * weight, att
