"""Convolutional LSTM (Shi et al., NeurIPS 2015), the temporal block of window autoencoders.

Gates in Shi et al.'s form, which we follow:

    f_t = σ(W_f * [h_{t-1}, x_t] + w_cf ⊙ C_{t-1} + b_f)
    i_t = σ(W_i * [h_{t-1}, x_t] + w_ci ⊙ C_{t-1} + b_i)
    Ĉ_t = tanh(W_C * [h_{t-1}, x_t] + b_C)
    C_t = f_t ⊙ C_{t-1} + i_t ⊙ Ĉ_t
    o_t = σ(W_o * [h_{t-1}, x_t] + w_co ⊙ C_t + b_o)
    h_t = o_t ⊙ tanh(C_t)

The peephole terms ``w_c* ⊙ C`` are optional (``peephole=False`` is Keras' ``ConvLSTM2D``).
Shi et al. use per-pixel peephole weights; ours are per channel (our choice: any frame size,
weights that exist before the first call). Paper 002 writes its Eq. 2-7 differently (C_{t-1}
inside the gate convolutions, x_{t-1} in Ĉ_t, no cell term in o_t); we read those as typos of
the ConvLSTM it cites [14] (Shi et al.).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn


class ConvLSTMCell(nn.Module):
    """One ConvLSTM step on ``(B, C_in, H, W)`` inputs; all four gates from one convolution."""

    def __init__(self, in_channels: int, hidden_channels: int, kernel_size: int = 3,
                 peephole: bool = False) -> None:
        super().__init__()
        self.hidden_channels = hidden_channels
        self.gates = nn.Conv2d(in_channels + hidden_channels, 4 * hidden_channels, kernel_size,
                               padding=kernel_size // 2)
        self.peephole = peephole
        if peephole:
            self.peephole_weights = nn.Parameter(torch.zeros(3, hidden_channels, 1, 1))

    def forward(self, x: torch.Tensor, state: tuple[torch.Tensor, torch.Tensor] | None = None):
        if state is None:
            zeros = x.new_zeros(x.shape[0], self.hidden_channels, *x.shape[2:])
            state = (zeros, zeros)
        h, c = state
        f, i, g, o = self.gates(torch.cat([x, h], dim=1)).chunk(4, dim=1)
        if self.peephole:
            w_cf, w_ci, w_co = self.peephole_weights
            f, i = f + w_cf * c, i + w_ci * c
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        if self.peephole:
            o = o + w_co * c
        h = torch.sigmoid(o) * torch.tanh(c)
        return h, c


class ConvLSTM(nn.Module):
    """Stacked ConvLSTM layers over a sequence ``(B, C, T, H, W)`` → ``(B, C_last, T, H, W)``.

    Args:
        in_channels: Input channels.
        hidden_channels: Hidden channels of each layer, e.g. ``[64, 32, 64]``.
        kernel_size: Square kernel of every gate convolution.
        peephole: Add peephole connections (paper 002, Eq. 2-3).
    """

    def __init__(self, in_channels: int, hidden_channels: Sequence[int], kernel_size: int = 3,
                 peephole: bool = False) -> None:
        super().__init__()
        channels = [in_channels, *hidden_channels]
        self.cells = nn.ModuleList(
            ConvLSTMCell(c_in, c_out, kernel_size, peephole)
            for c_in, c_out in zip(channels[:-1], channels[1:])
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for cell in self.cells:
            state, outputs = None, []
            for t in range(x.shape[2]):
                state = cell(x[:, :, t], state)
                outputs.append(state[0])
            x = torch.stack(outputs, dim=2)
        return x
