"""U-Net encoder and decoder halves (Ronneberger et al., MICCAI 2015), as separate modules.

Future-frame prediction (Liu et al., CVPR 2018) and the reconstruction methods built on it use a
U-Net generator; methods with several encoders (DESDnet's appearance, motion and mapping encoders)
need the two halves apart, with the skips passed explicitly. Images are ``(B, C, H, W)``.

* `UNetEncoder`: level 0 is a `double_conv` at full resolution; each further level halves H and W
  (2x2 max-pooling) and runs a `double_conv`. It returns every level's features, the last being
  the bottleneck.
* `UNetDecoder`: from a bottleneck, each level doubles H and W (2x2 transposed convolution),
  concatenates the encoder's skip of that level (when given) and runs a `double_conv`; a final 1x1
  convolution gives the output channels.

H and W must be divisible by ``2 ** (len(channels) - 1)``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from vad.models.blocks.conv import conv_block

NORMS = ("batch", "group", "none")
GROUP_NORM_GROUPS = 8  # Our choice: GroupNorm's groups (fewer when the channels do not divide)


def norm_kind(norm: bool | str | None) -> str:
    """The normalisation a ``norm`` argument names: ``True``/``"batch"`` → BatchNorm,
    ``"group"`` → GroupNorm, ``False``/``None``/``"none"`` → none."""
    if norm is True or norm == "batch":
        return "batch"
    if norm is False or norm is None or norm == "none":
        return "none"
    if norm == "group":
        return "group"
    raise ValueError(f"norm must be one of {NORMS} (or a bool), got {norm!r}")


def double_conv(in_channels: int, out_channels: int, norm: bool | str = True,
                bias: bool = True) -> nn.Sequential:
    """Two ``3x3 conv → (norm) → ReLU`` blocks, the U-Net unit.

    Args:
        norm: ``True``/``"batch"``: BatchNorm after each convolution (the default);
            ``"group"``: GroupNorm with `GROUP_NORM_GROUPS` groups (or the largest divisor of
            the channels below it), statistics per sample, the same in training and test;
            ``False``/``"none"``: no normalisation, as in Liu et al.'s (2018) U-Net.
        bias: Convolution biases when ``norm`` is off. ``norm=False, bias=False`` gives a
            bias-free block (no additive constants anywhere), as deep SVDD needs (Ruff et al.,
            ICML 2018, Prop. 2).
    """
    kind = norm_kind(norm)
    if kind == "group":
        return nn.Sequential(*(
            nn.Sequential(nn.Conv2d(c_in, out_channels, 3, padding=1, bias=False),
                          nn.GroupNorm(math.gcd(out_channels, GROUP_NORM_GROUPS), out_channels),
                          nn.ReLU())
            for c_in in (in_channels, out_channels)))
    norm = kind == "batch"
    first = conv_block(in_channels, out_channels, 3, norm=norm)
    second = conv_block(out_channels, out_channels, 3, norm=norm)
    if not norm and not bias:
        for block in (first, second):
            block[0].bias = None
    return nn.Sequential(first, second)


class UNetEncoder(nn.Module):
    """Contracting path: ``(B, C_in, H, W)`` → features of every level.

    Args:
        in_channels: Input channels (e.g. ``C`` for one frame, ``Δ·C`` for Δ stacked frames).
        channels: Channels of each level, e.g. ``[64, 128, 256, 512]`` (Liu et al.'s generator).
        norm: ``True``/``"batch"`` (BatchNorm), ``"group"`` or ``False``/``"none"`` in every
            block (see `double_conv`).
        bias: Convolution biases when ``norm`` is off (see `double_conv`).

    Returns (forward):
        ``[f_0, ..., f_L]`` with ``f_i`` of shape ``(B, channels[i], H / 2^i, W / 2^i)``;
        ``f_L`` is the bottleneck.
    """

    def __init__(self, in_channels: int, channels: Sequence[int], norm: bool | str = True,
                 bias: bool = True) -> None:
        super().__init__()
        self.channels = list(channels)
        widths = [in_channels, *self.channels]
        self.levels = nn.ModuleList(
            double_conv(c_in, c_out, norm=norm, bias=bias)
            for c_in, c_out in zip(widths[:-1], widths[1:], strict=True)
        )
        self.pool = nn.MaxPool2d(2)

    @property
    def out_channels(self) -> int:
        return self.channels[-1]

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        features = []
        for i, level in enumerate(self.levels):
            x = level(x if i == 0 else self.pool(x))
            features.append(x)
        return features


class UNetDecoder(nn.Module):
    """Expanding path: bottleneck ``(B, C_b, H / 2^L, W / 2^L)`` → ``(B, C_out, H, W)``.

    Args:
        in_channels: Channels of the bottleneck it starts from.
        channels: Channels of the encoder levels it mirrors, shallow first (the same list as the
            encoder's; the last entry, the bottleneck level, is not decoded into).
        out_channels: Output channels (e.g. ``C`` for a frame).
        skip_channels: Channels of the skip concatenated at each level ``0..L-1``; ``None`` means
            ``channels[:-1]`` (an encoder with the same widths), 0 at a level means no skip there.
        norm: ``True``/``"batch"`` (BatchNorm), ``"group"`` or ``False``/``"none"`` in every
            block (see `double_conv`).
        out_activation: Applied to the output (e.g. ``nn.Sigmoid``); ``None`` keeps it linear.
    """

    def __init__(
        self,
        in_channels: int,
        channels: Sequence[int],
        out_channels: int,
        skip_channels: Sequence[int] | None = None,
        norm: bool | str = True,
        out_activation: type[nn.Module] | None = None,
    ) -> None:
        super().__init__()
        levels = list(channels[:-1])
        skips = list(skip_channels) if skip_channels is not None else levels
        if len(skips) != len(levels):
            raise ValueError(f"need one skip width per decoded level ({len(levels)}), got {skips}")
        self.skip_channels = skips
        widths = [in_channels, *levels[::-1]]  # deepest first
        self.ups = nn.ModuleList(
            nn.ConvTranspose2d(c_in, c_out, kernel_size=2, stride=2)
            for c_in, c_out in zip(widths[:-1], widths[1:], strict=True)
        )
        self.blocks = nn.ModuleList(
            double_conv(c + s, c, norm=norm)
            for c, s in zip(levels[::-1], skips[::-1], strict=True)
        )
        self.head = nn.Conv2d(levels[0] if levels else in_channels, out_channels, kernel_size=1)
        self.out_activation = out_activation() if out_activation is not None else nn.Identity()

    def forward(self, x: torch.Tensor, skips: Sequence[torch.Tensor | None] | None = None
                ) -> torch.Tensor:
        """Args:
            x: The bottleneck.
            skips: Per level ``0..L-1`` (shallow first) the tensor to concatenate, or ``None``;
                e.g. ``encoder(frame)[:-1]``.
        """
        skips = list(skips) if skips is not None else [None] * len(self.blocks)
        for up, block, skip in zip(self.ups, self.blocks, skips[::-1], strict=True):
            x = up(x)
            if skip is not None:
                x = torch.cat([x, skip], dim=1)
            x = block(x)
        return self.out_activation(self.head(x))
