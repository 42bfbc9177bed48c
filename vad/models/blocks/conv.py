"""Convolution blocks: conv → (norm) → activation, 2D or 3D, with explicit channel arguments."""

from __future__ import annotations

from torch import nn


def conv_block(in_channels: int, out_channels: int, kernel_size: int = 3, stride: int = 1,
               norm: bool = True, activation: type[nn.Module] | None = nn.ReLU,
               dims: int = 2) -> nn.Sequential:
    """``Conv(k, stride, padding=k//2)`` → optional BatchNorm → optional activation.

    Args:
        dims: 2 for images ``(B, C, H, W)``, 3 for clips ``(B, C, T, H, W)``.
    """
    conv_cls, norm_cls = (nn.Conv2d, nn.BatchNorm2d) if dims == 2 else (nn.Conv3d, nn.BatchNorm3d)
    layers = [conv_cls(in_channels, out_channels, kernel_size, stride, padding=kernel_size // 2,
                       bias=not norm)]
    if norm:
        layers.append(norm_cls(out_channels))
    if activation is not None:
        layers.append(activation())
    return nn.Sequential(*layers)


def xavier_init(module: nn.Module) -> None:
    """Xavier-uniform weights and zero biases for every convolution in ``module``."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.Conv3d, nn.ConvTranspose2d, nn.ConvTranspose3d)):
            nn.init.xavier_uniform_(m.weight)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
