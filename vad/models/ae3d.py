"""The plain 3D convolutional autoencoder paper 004 compares the Top-Heavy autoencoder with.

The paper gives no layer table for it: it is the Top-Heavy design with "only typical 3D
convolutional layers" (§I, §III.A, Fig. 2). **Our reading** (not the paper's word): Table 1's
network with every kernel 3×3×3 — the same depth, channels, pooling (1×2×2, 1×2×2, 2×2×2) and
strides — so the two differ only in the kernels of conv 1–2, TConv 3 and the output layer.
That is 389,121 parameters without BatchNorm for C = 1 (Top-Heavy: 341,889, 88 %; the paper's
Table 4 says 10,752 vs 6,144, 57 %, which follows from neither table).

Everything else — losses (Eq. 1), ``model.training=plain|distill|joint`` (Eq. 2–4; the paper
applies distillation and joint training to the Top-Heavy network only, so for this network they
are our extension), flipping, validation loss and the test-time score — is
`vad.models.topheavy.TopHeavyModule`'s, documented there.
"""

from __future__ import annotations

from collections.abc import Sequence

from vad.models.blocks.conv3d_ae import ConvAutoencoder3D, LayerSpec
from vad.models.topheavy import TopHeavyModule, top_heavy_layers


def ae3d_layers(encoder_channels: Sequence[int] = (32, 48, 64, 64),
                decoder_channels: Sequence[int] = (48, 32, 32)) -> list[LayerSpec]:
    """Table 1 with every (transposed) convolution 3×3×3 (our reading, module docstring)."""
    return [spec if spec.kind == "pool" else LayerSpec(spec.name, spec.kind, (3, 3, 3),
                                                       spec.stride, spec.channels)
            for spec in top_heavy_layers(encoder_channels, decoder_channels)]


def ae3d(in_channels: int = 1, encoder_channels: Sequence[int] = (32, 48, 64, 64),
         decoder_channels: Sequence[int] = (48, 32, 32), norm: bool = True,
         negative_slope: float = 0.3) -> ConvAutoencoder3D:
    """The 3D autoencoder: ``(B, C, T, H, W)`` → same, in [0, 1]; T must divide by 2, H and W
    by 8."""
    return ConvAutoencoder3D(in_channels, ae3d_layers(encoder_channels, decoder_channels),
                             norm=norm, negative_slope=negative_slope)


class AE3DModule(TopHeavyModule):
    """`TopHeavyModule` with the 3D autoencoder (`ae3d`) as its network(s)."""

    build = staticmethod(ae3d)
