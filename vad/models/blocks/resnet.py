"""ResNet-style blocks without inner BatchNorm: strided down-blocks and pixel-shuffle up-blocks.

He et al.'s basic block (CVPR 2016) as paper 001 (STD-AE) changes it: the two inner batch norms
removed (an optional one *after* the block), ReLU replaced by LeakyReLU, and in decoders the
strided convolution replaced by a pixel shuffle (Shi et al., CVPR 2016) so that each block doubles
the resolution without checkerboard artifacts. Images are ``(B, C, H, W)``.

* `ResBlockDown`: ``conv3x3/2 → LeakyReLU → conv3x3`` plus a ``conv1x1/2`` shortcut, summed, then
  LeakyReLU and the optional BatchNorm: ``(B, C_in, H, W) → (B, C_out, H/2, W/2)``.
* `ResBlockUp`: ``conv3x3 (C_in → 4·C_out) → PixelShuffle(2) → LeakyReLU → conv3x3`` plus a
  ``conv1x1 (C_in → 4·C_out) → PixelShuffle(2)`` shortcut, summed, then LeakyReLU and the optional
  BatchNorm: ``(B, C_in, H, W) → (B, C_out, 2H, 2W)``.
"""

from __future__ import annotations

import torch
from torch import nn


class ResBlockDown(nn.Module):
    """Residual block that halves H and W with a stride-2 convolution.

    Args:
        in_channels: Input channels.
        out_channels: Output channels.
        norm: BatchNorm after the block (not inside it).
        negative_slope: LeakyReLU slope.
    """

    def __init__(self, in_channels: int, out_channels: int, norm: bool = False,
                 negative_slope: float = 0.2) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride=2, padding=1)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1)
        self.shortcut = nn.Conv2d(in_channels, out_channels, 1, stride=2)
        self.act = nn.LeakyReLU(negative_slope)
        self.norm = nn.BatchNorm2d(out_channels) if norm else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv2(self.act(self.conv1(x)))
        return self.norm(self.act(out + self.shortcut(x)))


class ResBlockUp(nn.Module):
    """Residual block that doubles H and W with a pixel shuffle (sub-pixel convolution).

    Args:
        in_channels: Input channels.
        out_channels: Output channels.
        norm: BatchNorm after the block (not inside it).
        negative_slope: LeakyReLU slope.
    """

    def __init__(self, in_channels: int, out_channels: int, norm: bool = False,
                 negative_slope: float = 0.2) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, 4 * out_channels, 3, padding=1)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1)
        self.shortcut = nn.Conv2d(in_channels, 4 * out_channels, 1)
        self.shuffle = nn.PixelShuffle(2)
        self.act = nn.LeakyReLU(negative_slope)
        self.norm = nn.BatchNorm2d(out_channels) if norm else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv2(self.act(self.shuffle(self.conv1(x))))
        return self.norm(self.act(out + self.shuffle(self.shortcut(x))))
