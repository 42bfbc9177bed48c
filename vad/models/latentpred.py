"""Latent-code prediction: decoupled appearance and motion learning (paper 003).

Li, Leroux & Simoens, "Decoupled appearance and motion learning for efficient anomaly detection
in surveillance video", Computer Vision and Image Understanding (Elsevier; the OCR lacks the
volume and year).

Idea: an *appearance* autoencoder (a U-Net-type AE, §3.1) encodes every frame on its own, after a
background frame (the per-pixel mean of all training frames) is subtracted; its decoder
reconstructs T_q from T_q's latent code z_q and, instead of U-Net's same-frame skips, the
feature maps of the *previous* frame T_{q−1}. A small *motion model* (§3.2, three Conv3D blocks)
takes the codes z_1..z_k of k past frames stacked along time and predicts the code ẑ_t of the
frame t = k + 6. A frame is anomalous when its observed code z_t is far from the predicted ẑ_t
(Eq. 2). At inference only the encoder and the motion model run, and each frame is encoded once
(`StreamingScorer`, §4.2): that is what makes the method fast.

Paper symbols → arguments:

=====================  ===========================================================================
k                      ``clip.length`` (Table 1: 8 for Ped1/Ped2, 6 for Avenue/ShanghaiTech)
t = k + 6              ``clip.future_offset`` = 6 (``clip.target=next``: the clip is T_1..T_k, T_t)
encoder blocks         ``net.num_blocks`` (Table 1: 5 for Ped1, 4 otherwise)
background frame       ``net.background`` buffer, from `VideoDataModule.mean_frame` (train split)
λ_r, λ_p               ``loss.lambda_r``, ``loss.lambda_p``: ``[phase 1, phase 2]``
γ (= 0.001)            ``loss.gamma``
N, M                   pixels per frame, elements of a latent code (``loss.reduction``)
phase switch           ``phase.switch`` (``epoch`` / ``plateau``), ``phase.switch_epoch``, ...
Conv3D / ConvLSTM / AR ``net.motion.kind`` = ``conv3d`` / ``convlstm`` / ``autoregressive``
Z-, R-, P-MSE          ``score.kind`` = ``z_mse`` / ``r_mse`` / ``p_mse`` (Table 5)
=====================  ===========================================================================

Equations: Eq. (1) in `LatentPredModule.loss_terms` (first term: `LatentPred.reconstruct`;
second: `LatentPred.predict`; third: `l2_penalty`); Eq. (2) in `z_mse` (`LatentPredModule.score`
and `StreamingScorer`); Eq. (3), the per-video min–max, is the shared evaluation's
``eval.normalization=minmax``, never done here.

What the paper gives: the background subtraction, the previous-frame shortcut, k, t = k + 6,
Table 1's sizes and block counts, the motion model's three Conv3D 3×3×3 blocks (stride 2 in time,
1 elsewhere) with BatchNorm and leaky ReLU, Eq. 1–3, γ = 0.001, the two phases' λ's, Adam with
lr 1e-4 × 0.1 every 20 epochs for 50 epochs. Everything else is ours (all configurable):

* Encoder (our choice; the block composition is only in the paper's Fig. 1): the U-Net encoder of
  `vad.models.blocks.unet` — ``num_blocks`` levels of two 3×3 conv–BN–ReLU each followed by 2×2
  max-pooling, then a bottleneck level, channels ``min(base_channels · 2^i, max_channels)``; the
  latent code is a 1×1 conv + BatchNorm (no activation) of the bottleneck to ``latent_channels``,
  so z is ``(latent_channels, H / 2^num_blocks, W / 2^num_blocks)`` (8×12 at Ped2's 128×192).
* Decoder (our choice): the mirrored U-Net decoder (2×2 transposed convolutions) with a linear
  output, reconstructing the background-subtracted frame T_q − B. Shortcuts from T_{q−1}'s
  features at every level (``net.shortcut_levels: null``) or only at the listed levels (0 = full
  resolution). Measured on the reduced Ped2 recipe (docs/results.md, issue 25): no shortcut at
  all (``[]``) separates R- from P-MSE but does not raise Z-MSE over two seeds (0.712 against
  0.724); no full-resolution shortcut (``[1, 2]``, seed 0) gives Z-MSE 0.688 and R = P = 0.907
  (the decoder draws a blurred T_k: a 6-frame frame difference, not the code's error); so the
  recipes keep every level.
* Motion model (our choice beyond the paper's three blocks): block channels ``motion.channels``;
  a 1×1×1 convolution maps the last block to the latent channels (a linear output: z has no
  activation) and the time steps left after the strides (1 for k ≤ 8) are averaged.
  ``convlstm`` runs the shared `vad.models.blocks.convlstm.ConvLSTM` over z_1..z_k and maps its
  last hidden state with a 1×1 convolution. ``autoregressive`` is *our stand-in* for the
  "autoregressive density estimation layers (Abati et al., 2019)" of §6.3: Conv3D blocks causal
  in time (each step sees only earlier codes), read at the last step; LSA's masked density
  estimator is not reproduced, and its ẑ_t is a point prediction scored by Eq. 2 like the others.
* Ambiguity: Eq. 1 writes sums. ``loss.reduction=sum`` (default) sums over the N pixels (and
  channels) of frames 2..k and over the M code elements, per clip, then averages over the batch
  (the batch size is unstated), so the paper's λ's and γ keep their relative weights;
  ``mean`` takes means instead (then γ = 0.001 outweighs both terms: lower it).
* Ambiguity: W in γ‖W‖²: every convolution kernel (no biases, no BatchNorm parameters).
* The phase switch "until the reconstruction loss converges" (unstated): ``phase.switch=epoch``
  switches at the start of epoch ``switch_epoch`` (0-based); ``plateau`` switches once the
  epoch-mean training reconstruction term has not improved by the relative ``min_delta`` for
  ``patience`` epochs (or at ``switch_epoch`` at the latest). The phase is a buffer: checkpoints
  and resumes keep it.
* Ambiguity: whether the target z_t is detached is unstated. ``loss.detach_target=true``
  (default): with λ_p = 1 an undetached target lets the encoder shrink every code towards what
  the motion model predicts; ``false`` back-propagates through z_t too.
* ``val/loss`` (checkpoint selection) weights the held-out terms with the *final* phase's λ's, so
  epochs of both phases are compared on one scale; the paper tests its last epoch (the recipes
  set ``monitor: null``).
* R-MSE and P-MSE (Table 5; not defined in the text): the pixel MSE between T_t − B and the
  decoder's output from z_t (R) or from ẑ_t (P). Ambiguity: which frame's features feed the
  shortcut for T_t at test time — ours is T_k, the last input frame, the only earlier frame a
  (T_1..T_k, T_t) clip holds.
* The background frame: the mean of every frame of the training split (its held-out validation
  end included, never test frames), computed in `on_fit_start` and stored in the ``net.background``
  buffer, so that it travels in the checkpoint; a model tested without training (``train=false``)
  computes it in `on_test_start`. ``background.subtract=false`` switches it off (ours).
* ShanghaiTech's "sliding-window approach of Abati et al. (2019)" (§4.1): Abati et al.'s public
  code (``result_helpers/video_anomaly.py`` of aimagelab/novelty-detection) slides clips over a
  test video with stride 1, gives *each frame the mean score of the clips that contain it*, then
  min–max normalises over the whole video. Here: ``score.frames=span`` gives a clip's score to
  every frame from T_1 to T_t (ours: the clip "contains" the k + 6 frames it spans, the 5 frames
  between T_k and T_t included), ``eval.window_aggregation=mean`` averages them per frame and
  ``eval.normalization=minmax`` is Eq. 3 over the video (`experiment/latentpred_shanghaitech`).
  ``score.frames=target`` (default; Ped1, Ped2, Avenue) scores the target frame T_t only.
* Precision (ours): test and predict steps score in fp32 with autocast off (`test_step`), also
  under a ``bf16-mixed`` trainer: Z-MSE compares BatchNorm-normalised codes whose differences
  are small against bf16's 8-bit mantissa.
* The optimiser at the phase switch (ours; ``phase.reset_optimizer``, default false): ``true``
  clears Adam's state when phase 2 starts. The argument for it (issue 25): the λ's swap by 1000×,
  so the motion model's gradients jump about 1000× while Adam's second moment remembers
  ~1/(1 − β₂) = 1000 steps of the small phase-1 gradients, and its first phase-2 updates are
  several × lr. Measured against it (docs/results.md, reduced Ped2 recipe, seed 0): with the
  reset, Z-MSE falls from 0.713 to 0.511 and the code's spread over time from 0.41 to 0.12 of
  its total (training frames): a fresh Adam moves *every* weight by about lr per step, the
  encoder included, which then shrinks the codes towards what the motion model predicts. Kept,
  Adam's memory of the large phase-1 reconstruction gradients holds the encoder nearly still in
  phase 2 — what "finetuning the weights of the motion model" asks for. So the default keeps
  the state (the behaviour of every earlier run).
* What phase 2 trains (ours; ``phase.phase2_trains``, default ``all``): the paper keeps every
  weight in Eq. 1 with λ_r = 0.001 ("we focus on finetuning the weights of the motion model"),
  so ``all`` trains the encoder, ``to_latent`` and decoder on in phase 2; ``motion`` reads the
  sentence literally and freezes them (weights and BatchNorm statistics), so the codes the
  motion model predicts stop moving. Measured on the reduced Ped2 recipe over three seeds
  (docs/results.md, issue 25, "phase 2 with the appearance AE frozen"): Z-MSE 0.827 ± 0.010
  with ``motion`` against 0.741 ± 0.032 with ``all``, so the reduced recipes use ``motion``
  (Ped1's, which inherits it, is inconclusive: seeds 0 and 1 give 0.485 and 0.652 against
  0.555 for seed 0 with ``all``); the full recipe keeps the paper's ``all`` until it is measured
  on a GPU.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from vad.data.datamodule import ClipBatch
from vad.models.base import FrameScores, VADModule, config_section
from vad.models.blocks.conv import conv_block
from vad.models.blocks.convlstm import ConvLSTM
from vad.models.blocks.unet import UNetDecoder, UNetEncoder

log = logging.getLogger(__name__)

SCORE_KINDS = ("z_mse", "r_mse", "p_mse")


# -- motion models (§3.2, Table 5) ----------------------------------------------------------------
class Conv3DMotion(nn.Module):
    """§3.2: Conv3D 3×3×3 blocks, stride 2 in time and 1 in space, BatchNorm, leaky ReLU.

    Then (our choice) a 1×1×1 convolution to the latent channels and the mean over the time
    steps left (k = 8: 8 → 4 → 2 → 1; k = 6: 6 → 3 → 2 → 1).

    Shapes: ``(B, C_z, k, h, w)`` → ``(B, C_z, h, w)``.
    """

    def __init__(self, latent_channels: int, channels: Sequence[int] = (64, 64, 64),
                 negative_slope: float = 0.01) -> None:
        super().__init__()
        widths = [latent_channels, *channels]
        act = partial(nn.LeakyReLU, negative_slope)
        self.blocks = nn.Sequential(*(conv_block(c_in, c_out, 3, stride=(2, 1, 1), activation=act,
                                                 dims=3)
                                      for c_in, c_out in zip(widths[:-1], widths[1:])))
        self.head = nn.Conv3d(widths[-1], latent_channels, kernel_size=1)

    def forward(self, codes: torch.Tensor) -> torch.Tensor:
        return self.head(self.blocks(codes)).mean(2)


class ConvLSTMMotion(nn.Module):
    """Table 5's ConvLSTM motion model: the shared ConvLSTM over z_1..z_k, last hidden state,
    1×1 convolution to the latent channels (our choice). ``negative_slope`` is unused (the gates
    are the non-linearities); it is accepted so that one config serves every motion model."""

    def __init__(self, latent_channels: int, channels: Sequence[int] = (64, 64, 64),
                 kernel_size: int = 3, negative_slope: float | None = None) -> None:
        super().__init__()
        self.lstm = ConvLSTM(latent_channels, list(channels), kernel_size)
        self.head = nn.Conv2d(channels[-1], latent_channels, kernel_size=1)

    def forward(self, codes: torch.Tensor) -> torch.Tensor:
        return self.head(self.lstm(codes)[:, :, -1])


class CausalConv3DMotion(nn.Module):
    """Our stand-in for Table 5's autoregressive motion model: Conv3D 3×3×3 blocks (stride 1,
    BatchNorm, leaky ReLU) padded only towards the past in time, so step τ sees z_1..z_τ; the last
    step, through a 1×1×1 convolution, is ẑ_t (see the module docstring)."""

    def __init__(self, latent_channels: int, channels: Sequence[int] = (64, 64, 64),
                 negative_slope: float = 0.01) -> None:
        super().__init__()
        widths = [latent_channels, *channels]
        act = partial(nn.LeakyReLU, negative_slope)
        self.blocks = nn.ModuleList(conv_block(c_in, c_out, 3, activation=act, dims=3)
                                    for c_in, c_out in zip(widths[:-1], widths[1:]))
        for block in self.blocks:
            block[0].padding = (0, 1, 1)  # time padded by hand, on the past side only
        self.head = nn.Conv3d(widths[-1], latent_channels, kernel_size=1)

    def forward(self, codes: torch.Tensor) -> torch.Tensor:
        x = codes
        for block in self.blocks:
            x = block(F.pad(x, (0, 0, 0, 0, 2, 0)))
        return self.head(x[:, :, -1:])[:, :, 0]


MOTION_MODELS = {"conv3d": Conv3DMotion, "convlstm": ConvLSTMMotion,
                 "autoregressive": CausalConv3DMotion}


def build_motion_model(latent_channels: int, kind: str = "conv3d",
                       channels: Sequence[int] = (64, 64, 64), **kwargs) -> nn.Module:
    """One of `MOTION_MODELS` (Table 5's columns); ``kwargs`` go to its constructor."""
    if kind not in MOTION_MODELS:
        raise ValueError(f"motion model must be one of {sorted(MOTION_MODELS)}, got {kind!r}")
    return MOTION_MODELS[kind](latent_channels, list(channels), **kwargs)


# -- the network ----------------------------------------------------------------------------------
class LatentPred(nn.Module):
    """Appearance AE with the previous-frame shortcut (§3.1) and the motion model (§3.2).

    Args:
        in_channels: Frame channels C.
        num_inputs: k, the codes the motion model reads.
        base_channels, max_channels: Encoder level i has ``min(base · 2^i, max)`` channels.
        num_blocks: Encoder blocks (poolings); H and W must divide by ``2^num_blocks``.
        latent_channels: Channels of the code z.
        shortcut_levels: Decoder levels (0 = full resolution) fed with T_{q−1}'s features;
            ``None``: all.
        motion: `build_motion_model` arguments (``kind``, ``channels``, ...).

    Shapes:
        ``encode``: frames ``(N, C, H, W)`` → z ``(N, C_z, h, w)`` and the level features.
        ``forward``: clip ``(B, C, k + 1, H, W)`` (T_1..T_k, T_t) → (ẑ_t, z_t), ``(B, C_z, h, w)``.
    """

    def __init__(
        self,
        in_channels: int = 1,
        num_inputs: int = 8,
        base_channels: int = 32,
        max_channels: int = 256,
        num_blocks: int = 4,
        latent_channels: int = 64,
        shortcut_levels: Sequence[int] | None = None,
        motion: Mapping | None = None,
    ) -> None:
        super().__init__()
        if num_inputs < 2 or num_blocks < 1:
            raise ValueError(f"need k >= 2 and num_blocks >= 1, got {num_inputs}, {num_blocks}")
        self.num_inputs, self.num_blocks = num_inputs, num_blocks
        self.size_multiple = 2**num_blocks  # frame H and W must divide by it (poolings)
        channels = [min(base_channels * 2**i, max_channels) for i in range(num_blocks + 1)]
        levels = range(num_blocks) if shortcut_levels is None else list(shortcut_levels)
        self.shortcut = [i in levels for i in range(num_blocks)]
        self.encoder = UNetEncoder(in_channels, channels)
        self.to_latent = conv_block(channels[-1], latent_channels, 1, activation=None)
        self.decoder = UNetDecoder(latent_channels, channels, in_channels,
                                   skip_channels=[c if s else 0 for c, s in
                                                  zip(channels[:-1], self.shortcut)])
        self.motion = build_motion_model(latent_channels, **dict(motion or {}))
        # (C, H, W) once set from the training frames; empty = nothing subtracted.
        self.register_buffer("background", torch.zeros(0))

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        saved = state_dict.get(prefix + "background")
        if saved is not None:  # the background's shape is the data's: take the checkpoint's
            self.background = torch.empty_like(saved, device=self.background.device)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    @torch.no_grad()
    def set_background(self, frame: torch.Tensor) -> None:
        self.background = frame.detach().to(self.background.device, torch.float32).clone()

    def subtract_background(self, frames: torch.Tensor) -> torch.Tensor:
        """T − B for frames ``(..., C, H, W)``."""
        return frames - self.background.to(frames.dtype) if self.background.numel() else frames

    def encode(self, frames: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Raw frames ``(N, C, H, W)`` → code z and the encoder's level features (for the
        decoder of the *next* frame)."""
        size = self.size_multiple
        if frames.shape[-2] % size or frames.shape[-1] % size:
            raise ValueError(f"frame size {tuple(frames.shape[-2:])} must divide by 2^num_blocks "
                             f"= {size}: change data.image_size or net.num_blocks")
        features = self.encoder(self.subtract_background(frames))
        return self.to_latent(features[-1]), features[:-1]

    def decode(self, z: torch.Tensor, previous: Sequence[torch.Tensor]) -> torch.Tensor:
        """§3.1: T̂_q − B from z_q and the level features of the previous frame T_{q−1}."""
        skips = [f if use else None for f, use in zip(previous, self.shortcut, strict=True)]
        return self.decoder(z, skips)

    def predict(self, codes: torch.Tensor) -> torch.Tensor:
        """§3.2: ẑ_t from z_1..z_k stacked along time, ``(B, C_z, k, h, w)``."""
        if codes.shape[2] != self.num_inputs:
            raise ValueError(f"the motion model reads k = {self.num_inputs} codes, got "
                             f"{codes.shape[2]}")
        return self.motion(codes)

    def encode_clip(self, clip: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Every frame of ``(B, C, T, H, W)`` at once → z ``(B, T, C_z, h, w)`` and features
        ``(B, T, c_i, H_i, W_i)``."""
        batch = clip.shape[0]
        z, features = self.encode(rearrange(clip, "b c t h w -> (b t) c h w"))
        unfold = partial(rearrange, pattern="(b t) ... -> b t ...", b=batch)
        return unfold(z), [unfold(f) for f in features]

    def reconstruct(self, z: torch.Tensor, features: Sequence[torch.Tensor]) -> torch.Tensor:
        """Eq. 1's first term's T̂_2..T̂_T: frame q from z_q and T_{q−1}'s features.

        Args:
            z: ``(B, T, C_z, h, w)``; features: per level ``(B, T, c, H_i, W_i)``.

        Returns:
            ``(B, C, T − 1, H, W)``, background-subtracted.
        """
        batch = z.shape[0]
        current = z[:, 1:].flatten(0, 1)
        previous = [f[:, :-1].flatten(0, 1) for f in features]
        return rearrange(self.decode(current, previous), "(b t) c h w -> b c t h w", b=batch)

    def forward(self, clip: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Clip T_1..T_k, T_t ``(B, C, k + 1, H, W)`` → (ẑ_t, z_t)."""
        z, _ = self.encode_clip(clip)
        return self.predict(rearrange(z[:, :-1], "b t c h w -> b c t h w")), z[:, -1]


def z_mse(z_hat: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """Eq. (2): s_t = Σ_m (ẑ_{t,m} − z_{t,m})² / M, one score per code ``(B, ...)`` → ``(B,)``."""
    return (z_hat.float() - z.float()).pow(2).flatten(1).mean(1)


def pixel_mse(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """R-/P-MSE (Table 5): the mean squared pixel error of each frame ``(B, C, H, W)`` → ``(B,)``."""
    return (output.float() - target.float()).pow(2).flatten(1).mean(1)


def l2_penalty(module: nn.Module) -> torch.Tensor:
    """Eq. (1)'s ‖W‖²: the sum of squares of every convolution kernel (no biases, no norms)."""
    kernels = [m.weight for m in module.modules()
               if isinstance(m, (nn.Conv2d, nn.Conv3d, nn.ConvTranspose2d))]
    return sum(w.float().pow(2).sum() for w in kernels)


# -- streaming inference (§4.2) -------------------------------------------------------------------
class StreamingScorer:
    """Scores a video frame by frame, encoding each frame exactly once (§4.2).

    A ring buffer holds the codes of the last k + ``future_offset`` frames (and, for R-/P-MSE,
    the level features of frame k's slot); when frame t arrives, the motion model reads the k
    oldest codes and ẑ_t is compared with z_t. The first k + offset − 1 frames get no score.
    Only the encoder and the motion model run for Z-MSE (no decoder). The network must be in
    eval mode (BatchNorm running statistics), as the batched `LatentPredModule.score` is.

    Args:
        net: A trained `LatentPred` (its background included).
        future_offset: t − k (paper: 6).
        kind: ``z_mse`` (Eq. 2), ``r_mse`` or ``p_mse``.
    """

    def __init__(self, net: LatentPred, future_offset: int = 6, kind: str = "z_mse") -> None:
        if kind not in SCORE_KINDS:
            raise ValueError(f"score kind must be one of {SCORE_KINDS}, got {kind!r}")
        self.net, self.kind, self.k = net, kind, net.num_inputs
        self.capacity = net.num_inputs + future_offset
        self.reset()

    def reset(self) -> None:
        """Start a new video."""
        self.codes: deque[torch.Tensor] = deque(maxlen=self.capacity)
        self.features: deque[list[torch.Tensor] | None] = deque(maxlen=self.capacity)

    @torch.no_grad()
    def step(self, frame: torch.Tensor) -> torch.Tensor | None:
        """Frame t ``(B, C, H, W)`` (B parallel streams) → its score ``(B,)``, or ``None`` while
        the buffer fills."""
        z, features = self.net.encode(frame)
        self.codes.append(z)
        self.features.append(features if self.kind != "z_mse" else None)
        if len(self.codes) < self.capacity:
            return None
        z_hat = self.net.predict(torch.stack([self.codes[i] for i in range(self.k)], dim=2))
        if self.kind == "z_mse":
            return z_mse(z_hat, z)
        code = z if self.kind == "r_mse" else z_hat
        return pixel_mse(self.net.decode(code, self.features[self.k - 1]),
                         self.net.subtract_background(frame))

    def score_video(self, frames: torch.Tensor) -> torch.Tensor:
        """All frames ``(N, C, H, W)`` of one video → ``(N,)`` scores, NaN for the first
        k + offset − 1."""
        self.reset()
        scores = torch.full((len(frames),), float("nan"))
        for i, frame in enumerate(frames):
            score = self.step(frame[None])
            if score is not None:
                scores[i] = score[0]
        return scores


# -- the method's knobs ---------------------------------------------------------------------------
@dataclass
class LossConfig:
    """Eq. (1). ``lambda_r``/``lambda_p``: ``[phase 1, phase 2]`` (paper: [1, 0.001] and
    [0.001, 1]); ``reduction``, ``detach_target``: ours (module docstring)."""

    lambda_r: list[float] = field(default_factory=lambda: [1.0, 0.001])
    lambda_p: list[float] = field(default_factory=lambda: [0.001, 1.0])
    gamma: float = 0.001
    reduction: str = "sum"
    detach_target: bool = True


@dataclass
class PhaseConfig:
    """When phase 2 starts (the paper: "until the reconstruction loss converges"; ours)."""

    switch: str = "epoch"  # epoch | plateau
    switch_epoch: int = 10  # epoch: first phase-2 epoch (0-based); plateau: the latest switch
    patience: int = 2  # plateau: epochs without a relative improvement of min_delta
    min_delta: float = 0.01
    reset_optimizer: bool = False  # ours: fresh Adam state when phase 2 starts (module docstring)
    phase2_trains: str = "all"  # all | motion (ours: the appearance AE frozen; module docstring)


PHASE2_TRAINS = ("all", "motion")


SCORE_FRAMES = ("target", "span")


@dataclass
class ScoreConfig:
    kind: str = "z_mse"  # z_mse (Eq. 2) | r_mse | p_mse (Table 5)
    # target: the clip's score is T_t's; span: every frame T_1..T_t gets it (Abati et al.'s
    # protocol with eval.window_aggregation=mean, ShanghaiTech; module docstring)
    frames: str = "target"


@dataclass
class BackgroundConfig:
    subtract: bool = True  # §3.1; false is our ablation


class LatentPredModule(VADModule):
    """`LatentPred` trained with Eq. 1 in two phases and scored with Eq. 2 (module docstring).

    Args:
        clip: ``length`` = k, ``target`` = ``next``, ``future_offset`` = t − k (paper: 6).
        net: `LatentPred` arguments except ``num_inputs`` (taken from the clip).
        loss, phase, score, background: `LossConfig`, `PhaseConfig`, `ScoreConfig`,
            `BackgroundConfig` fields.
        optimizer: Optimizer partial (paper: Adam, lr 1e-4).
        scheduler: Optional LR-scheduler partial (paper: × 0.1 every 20 epochs).
        compile: ``torch.compile`` the networks (`VADModule`).
        channels_last: Channels-last convolution weights (`VADModule`).
    """

    clip_target = "next"

    def __init__(
        self,
        clip: dict,
        net: dict,
        optimizer,
        scheduler=None,
        loss: dict | LossConfig | None = None,
        phase: dict | PhaseConfig | None = None,
        score: dict | ScoreConfig | None = None,
        background: dict | BackgroundConfig | None = None,
        compile: bool = False,
        channels_last: bool = False,
    ) -> None:
        super().__init__(clip, optimizer, scheduler, compile, channels_last)  # checks clip.target=next
        self.save_hyperparameters(logger=False, ignore=["optimizer", "scheduler"])
        self.loss_cfg = config_section(LossConfig, loss)
        self.phase_cfg = config_section(PhaseConfig, phase)
        self.score_cfg = config_section(ScoreConfig, score)
        self.background_cfg = config_section(BackgroundConfig, background)
        if self.loss_cfg.reduction not in ("sum", "mean"):
            raise ValueError(f"loss.reduction must be sum or mean, got {self.loss_cfg.reduction!r}")
        if self.phase_cfg.switch not in ("epoch", "plateau"):
            raise ValueError(f"phase.switch must be epoch or plateau, got {self.phase_cfg.switch!r}")
        if self.phase_cfg.phase2_trains not in PHASE2_TRAINS:
            raise ValueError(f"phase.phase2_trains must be one of {PHASE2_TRAINS}, got "
                             f"{self.phase_cfg.phase2_trains!r}")
        if self.score_cfg.kind not in SCORE_KINDS:
            raise ValueError(f"score.kind must be one of {SCORE_KINDS}, got {self.score_cfg.kind!r}")
        if self.score_cfg.frames not in SCORE_FRAMES:
            raise ValueError(f"score.frames must be one of {SCORE_FRAMES}, got "
                             f"{self.score_cfg.frames!r}")
        self.net = LatentPred(**net, num_inputs=clip["length"])
        # Training state that must survive checkpoints and resumes.
        self.register_buffer("phase", torch.tensor(0))
        self.register_buffer("best_recon", torch.tensor(float("inf")))
        self.register_buffer("epochs_without_gain", torch.tensor(0))
        self._epoch_recon: list[torch.Tensor] = []

    def forward(self, clip: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.net(clip)

    @property
    def lambdas(self) -> tuple[float, float]:
        """(λ_r, λ_p) of the current phase."""
        p = int(self.phase)
        return self.loss_cfg.lambda_r[p], self.loss_cfg.lambda_p[p]

    # -- Eq. (1) ----------------------------------------------------------------------------------
    def loss_terms(self, clip: torch.Tensor) -> dict[str, torch.Tensor]:
        """The unweighted terms of Eq. (1) for clips T_1..T_k, T_t ``(B, C, k + 1, H, W)``.

        ``recon``: Σ_{q=2..k} Σ_pixels ‖T̂_q − T_q‖² (background-subtracted frames);
        ``latent``: Σ_m ‖ẑ_{t,m} − z_{t,m}‖²; both per clip and averaged over the batch
        (``reduction=sum``), or means (``mean``). ``l2``: ‖W‖².
        """
        k = clip.shape[2] - 1
        z, features = self.net.encode_clip(clip)
        recon = self.net.reconstruct(z[:, :k], [f[:, :k] for f in features])
        target = self.net.subtract_background(rearrange(clip[:, :, 1:k], "b c t h w -> b t c h w"))
        target = rearrange(target, "b t c h w -> b c t h w")
        z_hat = self.net.predict(rearrange(z[:, :k], "b t c h w -> b c t h w"))
        z_t = z[:, k].detach() if self.loss_cfg.detach_target else z[:, k]
        recon_sq = (recon.float() - target.float()).pow(2)
        latent_sq = (z_hat.float() - z_t.float()).pow(2)
        if self.loss_cfg.reduction == "sum":
            batch = clip.shape[0]
            recon_term, latent_term = recon_sq.sum() / batch, latent_sq.sum() / batch
        else:
            recon_term, latent_term = recon_sq.mean(), latent_sq.mean()
        return {"recon": recon_term, "latent": latent_term, "l2": l2_penalty(self.net)}

    def weighted(self, terms: dict[str, torch.Tensor], lambda_r: float, lambda_p: float
                 ) -> torch.Tensor:
        """Eq. (1): λ_r · recon + λ_p · latent + γ‖W‖²."""
        return (lambda_r * terms["recon"] + lambda_p * terms["latent"]
                + self.loss_cfg.gamma * terms["l2"])

    def losses(self, batch: ClipBatch) -> dict[str, torch.Tensor]:
        terms = self.loss_terms(batch.clip)
        return {"loss": self.weighted(terms, *self.lambdas), **terms}

    def training_step(self, batch: ClipBatch, batch_idx: int) -> torch.Tensor:
        losses = self.losses(batch)
        self.log_losses("train", losses, len(batch.clip))
        lambda_r, lambda_p = self.lambdas
        self.log_dict({"train/phase": float(self.phase), "train/lambda_r": lambda_r,
                       "train/lambda_p": lambda_p}, on_step=False, on_epoch=True,
                      batch_size=len(batch.clip))
        self._epoch_recon.append(losses["recon"].detach())
        return losses["loss"]

    def validation_step(self, batch: ClipBatch, batch_idx: int) -> None:
        """``val/loss``: the held-out terms under the *final* phase's λ's (module docstring)."""
        terms = self.loss_terms(batch.clip)
        final = self.loss_cfg.lambda_r[-1], self.loss_cfg.lambda_p[-1]
        self.log_losses("val", {"loss": self.weighted(terms, *final), **terms}, len(batch.clip))

    # -- the two phases ---------------------------------------------------------------------------
    def on_train_epoch_start(self) -> None:
        if self._trainer is None or not self.trainer.fit_loop.restarted_mid_epoch:
            self._epoch_recon = []  # (resumed inside an epoch: its terms came with the checkpoint)
        if (int(self.phase) == 0 and self.phase_cfg.switch == "epoch"
                and self.current_epoch >= self.phase_cfg.switch_epoch):
            self.switch_phase()
        if int(self.phase) == 1 and self.phase_cfg.phase2_trains == "motion":
            self.freeze_appearance()  # every epoch: Lightning puts the whole module in train mode

    def on_train_epoch_end(self) -> None:
        if int(self.phase) == 0 and self.phase_cfg.switch == "plateau" and self._epoch_recon:
            recon = torch.stack(self._epoch_recon).mean()
            if self._trainer is not None and self.trainer.world_size > 1:
                recon = self.trainer.strategy.reduce(recon, reduce_op="mean")
            self.update_plateau(float(recon), next_epoch=self.current_epoch + 1)

    def update_plateau(self, recon: float, next_epoch: int) -> None:
        """Plateau rule: switch once the epoch's reconstruction term has not improved by the
        relative ``min_delta`` for ``patience`` epochs, or before ``switch_epoch`` at the latest."""
        if recon < float(self.best_recon) * (1 - self.phase_cfg.min_delta):
            self.best_recon.fill_(recon)
            self.epochs_without_gain.zero_()
        else:
            self.epochs_without_gain += 1
        if (int(self.epochs_without_gain) >= self.phase_cfg.patience
                or next_epoch >= self.phase_cfg.switch_epoch):
            self.switch_phase()

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        # The plateau rule's terms so far: a checkpoint written inside an epoch resumes it exactly.
        checkpoint["latentpred_epoch_recon"] = [r.cpu() for r in self._epoch_recon]

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        super().on_load_checkpoint(checkpoint)  # another method's checkpoint: one line (RecipeError)
        self._epoch_recon = [r.to(self.device) for r in
                             checkpoint.get("latentpred_epoch_recon", [])]

    def switch_phase(self) -> None:
        """Phase 2: the λ's of ``[1]``; with ``phase.reset_optimizer`` the optimiser's state
        (Adam's step count and moments) is cleared, so it starts afresh on phase 2's gradients."""
        self.phase.fill_(1)
        if self.phase_cfg.reset_optimizer and self._trainer is not None:
            for optimizer in self.trainer.optimizers:
                optimizer.state.clear()  # Adam re-creates each parameter's state on its next step
        log.info("latentpred: phase 2 from epoch %d (λ_r, λ_p) = %s, optimiser state %s",
                 self.current_epoch, self.lambdas,
                 "reset" if self.phase_cfg.reset_optimizer else "kept")

    def freeze_appearance(self) -> None:
        """``phase.phase2_trains=motion``: the encoder, ``to_latent`` and the decoder keep their
        phase-1 weights and BatchNorm statistics (eval mode, no gradients); only the motion model
        learns, so phase 2 cannot move the codes it is asked to predict."""
        for module in self.net.children():
            if module is not self.net.motion:
                module.eval().requires_grad_(False)

    # -- the background frame ---------------------------------------------------------------------
    def _fit_background(self) -> None:
        if not self.background_cfg.subtract or self.net.background.numel():
            return  # off, or already set (resumed or loaded from a checkpoint)
        datamodule = getattr(self.trainer, "datamodule", None)
        if datamodule is None or not hasattr(datamodule, "mean_frame"):
            log.warning("latentpred: no datamodule with mean_frame: no background subtracted")
            return
        self.net.set_background(datamodule.mean_frame(split="train").to(self.device))

    def on_fit_start(self) -> None:
        self._fit_background()

    def on_test_start(self) -> None:
        self._fit_background()  # only an untrained model (train=false) gets here without one

    def on_predict_start(self) -> None:
        self._fit_background()

    # -- Eq. (2) and Table 5's variants -----------------------------------------------------------
    def score(self, batch: ClipBatch) -> torch.Tensor:
        """Batched (offline) scoring of clips T_1..T_k, T_t → ``(B, 1)``: Eq. (2) Z-MSE, or the
        R-/P-MSE of Table 5. Equal to `StreamingScorer`'s, which encodes each frame once. In fp32
        with autocast off, under any trainer precision (module docstring: precision)."""
        with torch.autocast(self.device.type, enabled=False):
            return self._score(batch.clip.float())

    def _score(self, clip: torch.Tensor) -> torch.Tensor:
        k = clip.shape[2] - 1
        z, features = self.net.encode_clip(clip)
        z_hat = self.net.predict(rearrange(z[:, :k], "b t c h w -> b c t h w"))
        if self.score_cfg.kind == "z_mse":
            return z_mse(z_hat, z[:, k])[:, None]
        code = z[:, k] if self.score_cfg.kind == "r_mse" else z_hat
        output = self.net.decode(code, [f[:, k - 1] for f in features])
        return pixel_mse(output, self.net.subtract_background(clip[:, :, k]))[:, None]

    def test_step(self, batch: ClipBatch, batch_idx: int) -> FrameScores:
        """`score` (fp32); with ``score.frames=span`` the clip's score goes to every frame
        T_1..T_t it spans (Abati et al.'s protocol, module docstring)."""
        scores, frames = self.score(batch).float(), batch.frames
        if self.score_cfg.frames == "span":
            span = self.clip_spec.span()  # test clips are read with stride 1
            frames = batch.frames[:, -1:] - torch.arange(span - 1, -1, -1, device=frames.device)
            scores = scores.expand(-1, span)
        return FrameScores(batch.video, frames, scores, batch.index)

    def streaming_scorer(self) -> StreamingScorer:
        """A `StreamingScorer` for this model's k, offset and score kind (eval mode)."""
        self.eval()
        return StreamingScorer(self.net, self.clip_spec.future_offset, self.score_cfg.kind)
