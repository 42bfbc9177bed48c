"""ConvSTAE: convolutional spatiotemporal autoencoder with ConvLSTM (Nayak et al.; paper 002).

Idea: a window of T = 10 grey frames in [0, 1] is encoded frame by frame by a spatial encoder
(convolutions with shared weights), its sequence of feature maps is encoded and decoded by three
ConvLSTM layers (the temporal encoder-decoder), and a spatial decoder (transposed convolutions)
reconstructs every frame of the window. Trained on normal clips only to minimise the
reconstruction error (Eq. 1); at test time frames that are badly reconstructed are anomalous.

Paper symbols → arguments:

=====================  ===========================================================
T                      ``clip.length`` (10, §III-B)
ConvLSTM gates         `vad.models.blocks.convlstm` (Eq. 2-9; ``peephole``)
e(x, y, t), e(t)       `score`: L1 pixel error summed over the frame (Eq. 10-11)
S_ano(t), S_reg(t)     the shared evaluation: ``eval.normalization=min_over_max``
                       (Eq. 12) and the regularity 1 - S_ano (Eq. 13)
θ_th                   ``eval.threshold`` (example 0.94 on the regularity score)
=====================  ===========================================================

Our choices (the layer sizes are only in the paper's Fig. 1, which the text lacks):

* Layout of its reference [6] (Chong & Tay): conv 11×11/4 with 128 filters, conv 5×5/2 with 64;
  the paper's third convolution is ours: 3×3/1 with 64. ConvLSTM 3×3 with 64/32/64 filters.
  The decoder mirrors the encoder with transposed convolutions and ends in a sigmoid (frames lie
  in [0, 1]). Activations tanh, as in [6]. All of it is configurable.
* Eq. 10 writes an L2 norm per pixel; for a grey pixel that is |I − Î|, so e(t) is the L1
  error summed over the frame (``score_p=1``).
* Training loss: mean squared reconstruction error over the window (Eq. 1 in the Euclidean form
  of [5]).
* Which reconstruction scores a frame: every window that contains the frame reconstructs it; the
  shared evaluation averages them (``eval.window_aggregation=mean``).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from vad.data.datamodule import ClipBatch
from vad.models.base import VADModule
from vad.models.blocks.conv import xavier_init
from vad.models.blocks.convlstm import ConvLSTM
from vad.models.blocks.scoring import frame_error_sum

ACTIVATIONS = {"tanh": nn.Tanh, "relu": nn.ReLU}


class ConvSTAE(nn.Module):
    """Spatial encoder → ConvLSTM temporal encoder-decoder → spatial decoder.

    Args:
        in_channels: Frame channels (1 for grey).
        encoder_channels: Filters of each spatial convolution.
        encoder_kernels: Kernel size of each spatial convolution.
        encoder_strides: Stride of each spatial convolution.
        lstm_channels: Hidden channels of each ConvLSTM layer.
        lstm_kernel: ConvLSTM gate kernel.
        peephole: ConvLSTM peephole connections (Eq. 2-3); off as in Keras' ConvLSTM2D.
        activation: ``tanh`` or ``relu`` after each (transposed) convolution but the last.

    Shapes:
        ``forward``: ``(B, C, T, H, W)`` → ``(B, C, T, H, W)`` in [0, 1], any H and W.
    """

    def __init__(
        self,
        in_channels: int = 1,
        encoder_channels: Sequence[int] = (128, 64, 64),
        encoder_kernels: Sequence[int] = (11, 5, 3),
        encoder_strides: Sequence[int] = (4, 2, 1),
        lstm_channels: Sequence[int] = (64, 32, 64),
        lstm_kernel: int = 3,
        peephole: bool = False,
        activation: str = "tanh",
    ) -> None:
        super().__init__()
        if not len(encoder_channels) == len(encoder_kernels) == len(encoder_strides):
            raise ValueError("encoder_channels, encoder_kernels and encoder_strides differ in length")
        self.activation = ACTIVATIONS[activation]()
        channels = [in_channels, *encoder_channels]
        self.encoder = nn.ModuleList(
            nn.Conv2d(c_in, c_out, k, s, padding=k // 2)
            for c_in, c_out, k, s in zip(channels[:-1], channels[1:], encoder_kernels, encoder_strides)
        )
        self.temporal = ConvLSTM(encoder_channels[-1], lstm_channels, lstm_kernel, peephole)
        decoder_in = [lstm_channels[-1], *reversed(encoder_channels[:-1])]
        decoder_out = [*reversed(encoder_channels[:-1]), in_channels]
        self.decoder = nn.ModuleList(
            nn.ConvTranspose2d(c_in, c_out, k, s, padding=k // 2)
            for c_in, c_out, k, s in zip(decoder_in, decoder_out, reversed(encoder_kernels),
                                         reversed(encoder_strides))
        )
        xavier_init(self)

    def forward(self, clip: torch.Tensor) -> torch.Tensor:
        batch = clip.shape[0]
        x = rearrange(clip, "b c t h w -> (b t) c h w")
        sizes = []
        for conv in self.encoder:
            sizes.append(x.shape[-2:])
            x = self.activation(conv(x))
        x = rearrange(x, "(b t) c h w -> b c t h w", b=batch)
        x = rearrange(self.temporal(x), "b c t h w -> (b t) c h w")
        for i, (deconv, size) in enumerate(zip(self.decoder, reversed(sizes))):
            x = deconv(x, output_size=size)
            x = self.activation(x) if i < len(self.decoder) - 1 else torch.sigmoid(x)
        return rearrange(x, "(b t) c h w -> b c t h w", b=batch)


class ConvSTAEModule(VADModule):
    """ConvSTAE trained on reconstruction error, scored per frame by Eq. 10-11.

    It reconstructs whole windows, so every frame of a clip is a target (``clip.target=all``).

    Args:
        clip: Clip shape for the data (``length`` T, ``target`` must be ``all``).
        net: `ConvSTAE` arguments.
        score_p: Exponent of the per-pixel error in e(t) (1: Eq. 10 for grey frames).
        optimizer: Optimizer partial (paper: Adam, lr 1e-5, betas 0.9/0.999).
        scheduler: Optional LR-scheduler partial.
        compile: ``torch.compile`` the network (`VADModule`).
        channels_last: Channels-last convolution weights (`VADModule`).
    """

    clip_target = "all"

    def __init__(
        self,
        clip: dict,
        net: dict,
        optimizer,
        scheduler=None,
        score_p: int = 1,
        compile: bool = False,
        channels_last: bool = False,
    ) -> None:
        super().__init__(clip, optimizer, scheduler, compile, channels_last)
        self.save_hyperparameters(logger=False, ignore=["optimizer", "scheduler"])
        self.net = ConvSTAE(**net)
        self.score_p = score_p

    def forward(self, clip: torch.Tensor) -> torch.Tensor:
        return self.net(clip)

    def losses(self, batch: ClipBatch) -> dict[str, torch.Tensor]:
        return {"loss": F.mse_loss(self.net(batch.clip), batch.clip)}

    def score(self, batch: ClipBatch) -> torch.Tensor:
        """e(t) (Eq. 11) for every frame of the window: ``(B, T)``."""
        recon = self.net(batch.clip)
        per_frame = lambda x: rearrange(x, "b c t h w -> b t c h w")  # noqa: E731
        return frame_error_sum(per_frame(batch.clip), per_frame(recon), self.score_p)

    def error_map(self, batch: ClipBatch) -> torch.Tensor:
        """e(t)'s per-pixel terms |I − Î|^p, summed over channels → ``(B, T, H, W)``."""
        return (batch.clip - self.net(batch.clip)).abs().pow(self.score_p).sum(1)
