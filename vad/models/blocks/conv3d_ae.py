"""A plain convolutional clip autoencoder, one named layer per row of a layer table.

Built from a list of `LayerSpec` rows (convolution, max-pooling or transposed convolution, each
with its own T×H×W kernel and stride, 'same' padding), so that a paper's table is written down
once and the network follows it row by row (paper 004's Top-Heavy and 3D autoencoders,
`vad.models.topheavy`, `vad.models.ae3d`). Every (transposed) convolution but the last is
followed by an optional BatchNorm and a LeakyReLU; the last one by a sigmoid.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

Triple = tuple[int, int, int]


@dataclass(frozen=True)
class LayerSpec:
    """One row of a layer table.

    Args:
        name: The layer's name in the module (``conv1``, ``pool1``, ``tconv1``, ``out``).
        kind: ``conv``, ``pool`` or ``tconv``.
        kernel: ``(kT, kH, kW)``.
        stride: ``(sT, sH, sW)``.
        channels: Output channels (ignored for ``pool``).
    """

    name: str
    kind: str
    kernel: Triple
    stride: Triple = (1, 1, 1)
    channels: int = 0


def same_padding(kernel: Sequence[int]) -> Triple:
    """'same' padding of an odd kernel (stride 1), per axis."""
    return tuple(k // 2 for k in kernel)  # type: ignore[return-value]


class ConvAutoencoder3D(nn.Module):
    """Layers in table order; ``(B, C, T, H, W)`` → ``(B, C, T, H, W)`` in [0, 1].

    Args:
        in_channels: Input (and output) channels C.
        layers: The table rows; the last row is the output layer (a convolution with
            ``channels = C`` — it is set to ``in_channels`` whatever the row says).
        norm: BatchNorm after each hidden (transposed) convolution, before the activation.
        negative_slope: LeakyReLU slope.

    Transposed convolutions use 'same' padding and ``output_padding = stride − 1``, so a
    stride-2 axis exactly doubles (as Keras' ``Conv3DTranspose(padding="same")``).
    """

    def __init__(self, in_channels: int, layers: Sequence[LayerSpec], norm: bool = True,
                 negative_slope: float = 0.3) -> None:
        super().__init__()
        self.specs = tuple(layers)
        self.in_channels = in_channels
        channels = in_channels
        blocks = {}
        for i, spec in enumerate(self.specs):
            last = i == len(self.specs) - 1
            if spec.kind == "pool":
                blocks[spec.name] = nn.MaxPool3d(spec.kernel, spec.stride)
                continue
            out = in_channels if last else spec.channels
            padding = same_padding(spec.kernel)
            if spec.kind == "conv":
                if spec.stride != (1, 1, 1):
                    raise ValueError(f"{spec.name}: strided 'same' convolutions are not supported")
                conv = nn.Conv3d(channels, out, spec.kernel, spec.stride, padding)
            elif spec.kind == "tconv":
                conv = nn.ConvTranspose3d(channels, out, spec.kernel, spec.stride, padding,
                                          output_padding=tuple(s - 1 for s in spec.stride))
            else:
                raise ValueError(f"{spec.name}: unknown layer kind {spec.kind!r}")
            if last:
                blocks[spec.name] = nn.Sequential(conv, nn.Sigmoid())
            else:
                block = [conv]
                if norm:
                    block.append(nn.BatchNorm3d(out))
                block.append(nn.LeakyReLU(negative_slope))
                blocks[spec.name] = nn.Sequential(*block)
            channels = out
        self.layers = nn.ModuleDict(blocks)
        self.down = [1, 1, 1]  # total down-sampling per axis, to check input sizes
        for spec in self.specs:
            if spec.kind == "pool":
                self.down = [d * s for d, s in zip(self.down, spec.stride)]
        # What the config check (vad.utils.validate.check_image_size) asks of the data: frame
        # H and W, and the clip length T, must divide by these (the poolings).
        self.size_multiple = math.lcm(self.down[1], self.down[2])
        self.length_multiple = self.down[0]

    def forward(self, clip: torch.Tensor) -> torch.Tensor:
        for axis, (size, down) in enumerate(zip(clip.shape[2:], self.down)):
            if size % down:
                raise ValueError(f"clip axis {'THW'[axis]} = {size} must divide by {down}")
        x = clip
        for layer in self.layers.values():
            x = layer(x)
        return x

    def kernel_sizes(self) -> dict[str, Triple]:
        """Kernel of every layer, from the built modules (what the tests compare to the table)."""
        sizes = {}
        for name, layer in self.layers.items():
            module = layer if isinstance(layer, nn.MaxPool3d) else layer[0]
            kernel = module.kernel_size
            sizes[name] = tuple(kernel) if isinstance(kernel, Sequence) else (kernel,) * 3
        return sizes
