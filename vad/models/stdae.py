"""STD-AE: spatio-temporal dissociation with variance attention and deep K-means.

"Video anomaly detection with spatio-temporal dissociation", Pattern Recognition, 2022 (paper 001;
by its own account an extension of its authors' conference paper, its ref. [16]).

Idea: a clip of T = 5 frames is split in two streams. A *spatial autoencoder* reconstructs the
first individual frame (FIF) from itself (appearance); a *motion autoencoder*, a U-Net, takes the
first T − 1 frames stacked as channels and generates the RGB difference LIF − FIF between the last
(LIF) and the first frame (motion, a cheap stand-in for optical flow). A *variance attention*
after each motion-encoder block amplifies the locations whose features vary across channels
(where things move). A *deep K-means* pulls the concatenated bottlenecks of both encoders towards
K learnt centres. The LIF is predicted as x̂_fif + x̂_diff; a frame's regularity is the reciprocal
of its prediction error weighted, pixel by pixel, by the cluster distance.

Paper symbols → arguments:

=======================  ====================================================================
T (= 5), FIF, LIF        ``clip.length`` (``target=last``: the LIF is the scored frame);
                         FIF = ``clip[:, :, 0]``, LIF = ``clip[:, :, -1]``
E_a, D_a (§3.2)          `SpatialAE` (``net.channels``, ``net.spatial_norm``)
E_m, D_m (§3.3)          `MotionUNet` (input: the T − 1 frames but the LIF, ``(T−1)·C`` channels)
x_diff = x_lif − x_fif   `STDAEModule.motion_target`
W_a, v, att (Eq. 7-9)    `vad.models.blocks.attention.VarianceAttention` (``net.attention*``)
r, C, K, α (Eq. 10-11)   `STDAE.representation`, ``centres``, ``clusters``, ``kmeans.alpha``
λ (Eq. 12)               ``kmeans.lambda_cluster``
D_u, s, S (Eq. 13-14)    `frame_regularity`, `STDAEModule.score`; S is the shared evaluation's
                         per-video min–max (``eval.normalization=minmax``)
=======================  ====================================================================

Equations: Eq. (1)-(2) `SpatialAE`; Eq. (3) l_a and Eq. (6) l_m (L2 + `gradient_loss`) and Eq. (12)
in `STDAEModule.loss_terms`; Eq. (4)-(5) `MotionUNet`; Eq. (7)-(9)
`vad.models.blocks.attention`; Eq. (10)-(11) `vad.models.blocks.kmeans`; Eq. (13) in
`frame_regularity`; Eq. (14) is ``eval.normalization=minmax`` applied to ``−s`` (min–max of −s
is exactly 1 − S(t), the anomaly score).

Schedule (§4.2): phase 1 trains both autoencoders on l_a + l_m (``kmeans.pretrain_epochs``
epochs; Ped2: 50). At the start of the next epoch the centres are initialised by scikit-learn
K-means on representations of randomly sampled training locations, the autoencoders frozen
(`STDAEModule.init_centres`). Phase 2 alternates: the autoencoders take a step on Eq. (12) with the
centres frozen, then the centres take a step on Eq. (11) with the autoencoders frozen (lr 1e-5).
Phase 1 does not depend on K, so a cluster-count sweep may train it once and start every job
from its checkpoint (``kmeans.phase1_ckpt`` with ``kmeans.pretrain_epochs=0``; ours, see
``conf/sweep/stdae_clusters.yaml``): the autoencoders' weights carry over, their Adam moments and
the epoch counter start afresh, so a job is not bit-identical to an uninterrupted run.

The paper's values: T = 5, 256×256 frames, three ResNet blocks per encoder/decoder, LeakyReLU, no
batch norm inside blocks (one after each spatial-encoder block), pixel-shuffle upsampling, Adam,
lr 1e-4 → 1e-5 "at epoch 100" for the autoencoders, 1e-5 for the centres, K = 32, 50 + 100 epochs
on Ped2. Our choices and readings (all configurable, none of them the paper's):

* Channels 64-128-256 (each block halves H and W: a 32×32×256 bottleneck per stream at 256×256,
  our reading of the garbled Fig. 2); the decoders mirror them and end in a 3×3 convolution with
  a linear output. The motion decoder also upsamples by pixel shuffle (the issue's reading) and
  its blocks take [upsampled, encoder skip] from the second block on; the skips are the
  attention-weighted encoder features. No batch norm in either decoder (``net.spatial_norm``
  covers the spatial encoder only). LeakyReLU slope 0.2 (``net.negative_slope``).
* Variance attention: 1×1 embedding (``net.attention_kernel``); how the map, which sums to 1
  over space, weights the features is unstated: ``net.attention_mode=residual`` uses
  z · (1 + H·W·att) (see `vad.models.blocks.attention` for the others).
* r: the two bottlenecks concatenated per location, then min–max normalised to [0, 1] per
  sample over all its channels and locations (``net.representation_norm=minmax``, our reading
  of "normalize ... within [0, 1]"); ``l1l2`` is the authors' code (L1 per stream, then L2, per
  location); ``sigmoid``/``none`` are alternatives. Eq. (11)'s sum over locations is averaged over the batch.
* α (``kmeans.alpha``), λ (``kmeans.lambda_cluster``), the number of sampled K-means vectors
  (``kmeans.locations_per_clip``, ``kmeans.samples``), its seed and the alternation granularity
  are ours: every training step of phase 2 makes one autoencoder step, then one centre step on
  the same batch's (detached) representations. The centres' optimiser is Adam (ours).
* Eq. (6) read as l_m = mean squared error + mean |(|g_d(x_diff)| − |g_d(x̂_diff)|)| over d ∈ {x, y}
  (the gradient loss of Liu et al., CVPR 2018), weight 1 (``loss.gradient_weight``);
  Eq. (3) l_a as the mean squared error.
* Eq. (13): the paper says "the Euclidean distance between x_lif and x̂_lif over all pixel
  positions", weighted by D_u; what is summed is open (``score.error``, `ScoreConfig`):
  ``l1_sum`` Σ D_u·‖e‖ (ours, the first reading), ``squared_mean`` mean D_u·e² (the authors'
  code), ``euclidean`` (Σ D_u·e²)^½ (our reading of the words); ‖e‖ is the per-pixel Euclidean
  norm over colour channels. An ε guards the reciprocal (``score_eps``). Before the centres exist
  (phase 1, ``clusters=0``, untrained) D_u ≡ 1. The per-pixel term D_u ⊙ e is `error_map`, the
  heat map of ``vad.detect render=true``.
* Ablations (Table 2): ``net.appearance=false`` drops the spatial AE (x̂_lif = x_fif + x̂_diff,
  with the true FIF); ``net.motion=false`` drops the motion AE and scores the FIF reconstruction
  error, keyed to the clip's target frame like every score here (the FIF is T − 1 frames
  earlier: our choice); ``net.attention=false``; ``clusters=0`` (no K-means). Presets:
  ``conf/ablation/stdae/`` (``ablation=stdae/motion``).
* ``val/loss`` (checkpoint selection) is l_a + l_m without the cluster term, which only exists
  in phase 2; ``val/loss_cluster`` is logged beside it. Paper recipes test the last epoch.
* "At epoch 100" is ambiguous for Ped2 (150 epochs in all): we count from the start of training
  (``scheduler.milestones=[100]`` in ``experiment/stdae_ped2.yaml``), half-way through phase 2.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from vad.checkpoint import load_submodule
from vad.data.datamodule import ClipBatch
from vad.models.base import VADModule, config_section
from vad.models.blocks.attention import VarianceAttention
from vad.models.blocks.kmeans import cluster_loss, kmeans_init, soft_kmeans_distance
from vad.models.blocks.resnet import ResBlockDown, ResBlockUp

REPRESENTATION_NORMS = ("minmax", "l1l2", "sigmoid", "none")
SCORE_ERRORS = ("l1_sum", "squared_mean", "euclidean", "none")
FIRST_FRAMES = ("reconstructed", "observed")


# -- the two autoencoders ---------------------------------------------------------------------------
class SpatialAE(nn.Module):
    """Eq. (1)-(2): z_a = E_a(x_fif), x̂_fif = D_a(z_a).

    Args:
        in_channels: Frame channels C.
        channels: Output channels of the three (or more) encoder blocks; each halves H and W.
        norm: BatchNorm after each encoder block (the paper).
        negative_slope: LeakyReLU slope.

    Shapes:
        ``(B, C, H, W)`` → x̂ ``(B, C, H, W)`` and z_a ``(B, channels[-1], H/2^L, W/2^L)``.
    """

    def __init__(self, in_channels: int, channels: list[int], norm: bool = True,
                 negative_slope: float = 0.2) -> None:
        super().__init__()
        widths = [in_channels, *channels]
        self.encoder = nn.Sequential(*(ResBlockDown(a, b, norm=norm, negative_slope=negative_slope)
                                       for a, b in zip(widths[:-1], widths[1:], strict=True)))
        ups = [*channels[::-1], channels[0]]  # deepest first, the last block keeps channels[0]
        self.decoder = nn.Sequential(*(ResBlockUp(a, b, negative_slope=negative_slope)
                                       for a, b in zip(ups[:-1], ups[1:], strict=True)))
        self.head = nn.Conv2d(channels[0], in_channels, 3, padding=1)

    def forward(self, frame: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        z = self.encoder(frame)  # Eq. (1)
        return self.head(self.decoder(z)), z  # Eq. (2)


class MotionUNet(nn.Module):
    """Eq. (4)-(5): z_m = E_m(x_clips), x̂_diff = D_m(z_m), a U-Net with variance attention.

    Args:
        in_channels: ``(T − 1) · C``: the frames but the LIF, stacked as channels.
        out_channels: C (the RGB difference).
        channels: Output channels of the encoder blocks; each halves H and W.
        attention: A `VarianceAttention` after each encoder block (Eq. 7-9).
        attention_mode: How the map weights the features (our choice; see the attention block).
        attention_kernel: Kernel of the attention embedding (our choice: 1).
        negative_slope: LeakyReLU slope.

    Returns (forward):
        x̂_diff ``(B, C, H, W)``, z_m ``(B, channels[-1], H/2^L, W/2^L)`` and the attention maps.
    """

    def __init__(self, in_channels: int, out_channels: int, channels: list[int],
                 attention: bool = True, attention_mode: str = "residual",
                 attention_kernel: int = 1, negative_slope: float = 0.2) -> None:
        super().__init__()
        widths = [in_channels, *channels]
        self.encoder = nn.ModuleList(ResBlockDown(a, b, negative_slope=negative_slope)
                                     for a, b in zip(widths[:-1], widths[1:], strict=True))
        self.attention = (nn.ModuleList(VarianceAttention(c, attention_kernel, attention_mode)
                                        for c in channels) if attention else None)
        deep = channels[::-1]  # c_L .. c_1: the encoder levels, deepest first
        outs = [*deep[1:], channels[0]]
        # Block 0 upsamples z_m; block i > 0 takes [its predecessor's output, encoder level L − i].
        ins = [deep[0], *(o + s for o, s in zip(outs[:-1], deep[1:], strict=True))]
        self.decoder = nn.ModuleList(ResBlockUp(a, b, negative_slope=negative_slope)
                                     for a, b in zip(ins, outs, strict=True))
        self.head = nn.Conv2d(channels[0], out_channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, list[torch.Tensor]]:
        levels, maps = [], []
        for i, block in enumerate(self.encoder):
            x = block(x)
            if self.attention is not None:
                x, att = self.attention[i](x)
                maps.append(att)
            levels.append(x)
        z = levels[-1]  # Eq. (4)
        y = self.decoder[0](z)
        for block, skip in zip(self.decoder[1:], levels[-2::-1], strict=True):
            y = block(torch.cat([y, skip], dim=1))
        return self.head(y), z, maps  # Eq. (5)


class STDAEOutput(NamedTuple):
    """What one forward pass gives (a stream that is switched off gives ``None``)."""

    fif: torch.Tensor | None  # x̂_fif (B, C, H, W)
    diff: torch.Tensor | None  # x̂_diff (B, C, H, W)
    representation: torch.Tensor  # r (B, D, H/2^L, W/2^L), normalised
    attention: list[torch.Tensor]  # att maps (B, 1, h_i, w_i), one per motion-encoder block


class STDAE(nn.Module):
    """Spatial AE on the FIF + motion U-Net on the first T − 1 frames; r for the deep K-means.

    Args:
        in_channels: Frame channels C (1 for grey, 3 for RGB).
        num_frames: T − 1, the frames the motion AE stacks (the clip without its LIF).
        channels: Encoder block widths, shared by both streams (paper reading: 64, 128, 256).
        appearance: Build the spatial AE (Table 2's "appearance").
        motion: Build the motion AE (Table 2's "motion").
        attention: Variance attention in the motion encoder.
        attention_mode: ``plain`` | ``scaled`` | ``residual`` | ``exp`` (our choice: residual).
        attention_kernel: Attention embedding kernel (our choice: 1).
        spatial_norm: BatchNorm after each spatial-encoder block (paper: yes).
        negative_slope: LeakyReLU slope (our choice: 0.2).
        representation_norm: ``minmax`` (per sample, to [0, 1]) | ``l1l2`` (per location: L1
            per stream, then L2; the authors' code) | ``sigmoid`` | ``none``.

    Shapes:
        ``forward``: clip ``(B, C, T, H, W)`` → `STDAEOutput`; H and W divide by ``2^len(channels)``.
    """

    def __init__(
        self,
        in_channels: int = 1,
        num_frames: int = 4,
        channels: list[int] = (64, 128, 256),
        appearance: bool = True,
        motion: bool = True,
        attention: bool = True,
        attention_mode: str = "residual",
        attention_kernel: int = 1,
        spatial_norm: bool = True,
        negative_slope: float = 0.2,
        representation_norm: str = "minmax",
    ) -> None:
        super().__init__()
        if not (appearance or motion):
            raise ValueError("STD-AE needs at least one stream: net.appearance or net.motion")
        if representation_norm not in REPRESENTATION_NORMS:
            raise ValueError(f"representation_norm must be one of {REPRESENTATION_NORMS}")
        channels = list(channels)
        self.num_frames = num_frames
        self.representation_norm = representation_norm
        self.spatial = (SpatialAE(in_channels, channels, spatial_norm, negative_slope)
                        if appearance else None)
        self.motion = (MotionUNet(in_channels * num_frames, in_channels, channels, attention,
                                  attention_mode, attention_kernel, negative_slope)
                       if motion else None)
        self.representation_dim = channels[-1] * (int(appearance) + int(motion))
        self.size_multiple = 2 ** len(channels)  # frame H and W must divide by it (poolings)

    def representation(self, z_a: torch.Tensor | None, z_m: torch.Tensor | None) -> torch.Tensor:
        """r: [z_a, z_m] concatenated per location, then normalised (``representation_norm``).

        * ``minmax`` (our reading of §3.5's "normalize ... within [0, 1]"): min–max over all
          channels and locations of each sample, so every location depends on the frame's
          extremes;
        * ``l1l2`` (the authors' code, not the paper's text): each stream L1-normalised over its
          channels at each location, then the concatenation L2-normalised at each location; r
          of a location depends on that location alone, and ‖r‖ = 1. (Their encoders end in a
          conv + ReLU before the L1 step and their decoders read the L1-normalised z; here only
          r is normalised, the decoders read z as before: ours.)
        * ``sigmoid``, ``none``: alternatives (ours).
        """
        if self.representation_norm == "l1l2":
            streams = [F.normalize(z, p=1, dim=1) for z in (z_a, z_m) if z is not None]
            return F.normalize(torch.cat(streams, dim=1), p=2, dim=1)
        r = torch.cat([z for z in (z_a, z_m) if z is not None], dim=1)
        if self.representation_norm == "minmax":
            low = r.flatten(1).amin(1).view(-1, 1, 1, 1)
            high = r.flatten(1).amax(1).view(-1, 1, 1, 1)
            return (r - low) / (high - low).clamp_min(1e-6)
        if self.representation_norm == "sigmoid":
            return torch.sigmoid(r)
        return r

    def forward(self, clip: torch.Tensor) -> STDAEOutput:
        if clip.shape[2] != self.num_frames + 1:
            raise ValueError(f"expected T = {self.num_frames + 1} frames, got {clip.shape[2]}")
        fif, z_a = self.spatial(clip[:, :, 0]) if self.spatial is not None else (None, None)
        diff, z_m, maps = None, None, []
        if self.motion is not None:
            stacked = rearrange(clip[:, :, :-1], "b c t h w -> b (t c) h w")  # oldest first
            diff, z_m, maps = self.motion(stacked)
        return STDAEOutput(fif, diff, self.representation(z_a, z_m), maps)


# -- losses and score -------------------------------------------------------------------------------
def gradient_loss(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """The gradient term of Eq. (6): mean over d ∈ {x, y} of | |g_d(target)| − |g_d(output)| |,
    g_d the forward difference along d (Liu et al., CVPR 2018), summed over x and y."""
    loss = output.new_zeros(())
    for dim in (-1, -2):
        g_out, g_tgt = output.diff(dim=dim).abs(), target.diff(dim=dim).abs()
        loss = loss + (g_tgt - g_out).abs().mean()
    return loss


def weighted_error_map(error: torch.Tensor, distance: torch.Tensor | None = None,
                       kind: str = "l1_sum") -> torch.Tensor:
    """Eq. (13)'s per-pixel term D_u ⊙ e(x_lif, x̂_lif), e as ``kind`` reads the error.

    Args:
        error: ‖x_lif − x̂_lif‖ per pixel, the Euclidean norm over colour channels ``(B, 1, H, W)``.
        distance: D_u ``(B, 1, H, W)``, the cluster distance upsampled to the frame; ``None``: 1.
        kind: ``l1_sum`` | ``euclidean`` → D_u·‖e‖ and D_u·‖e‖² (summed by `frame_regularity`);
            ``squared_mean`` → D_u·‖e‖² (averaged); ``none`` → D_u alone (see `ScoreConfig`).

    Returns:
        ``(B, 1, H, W)``.
    """
    if kind not in SCORE_ERRORS:
        raise ValueError(f"score.error must be one of {SCORE_ERRORS}, got {kind!r}")
    term = {"l1_sum": error, "none": torch.ones_like(error)}.get(kind, error.pow(2))
    return term if distance is None else distance * term


def frame_error(error: torch.Tensor, distance: torch.Tensor | None = None,
                kind: str = "l1_sum") -> torch.Tensor:
    """The denominator of Eq. (13): the frame's D_u-weighted prediction error → ``(B,)``.

    ``l1_sum``: Σ_pixels D_u·‖e‖ (ours, the old default); ``squared_mean``: mean_pixels D_u·‖e‖²
    (the authors' code; they also average e² over colour channels, a constant factor C that the
    min–max of Eq. 14 removes); ``euclidean``: (Σ_pixels D_u·‖e‖²)^½, the Euclidean distance
    between x_lif and x̂_lif over all pixel positions (the paper's words, §3.7), D_u weighting
    each pixel's squared term (our reading); ``none``: mean_pixels D_u (a diagnostic, ours).
    """
    term = weighted_error_map(error, distance, kind).flatten(1)
    if kind == "l1_sum":
        return term.sum(1)
    if kind == "euclidean":
        return term.sum(1).sqrt()
    return term.mean(1)


def frame_regularity(error: torch.Tensor, distance: torch.Tensor | None = None,
                     eps: float = 1e-8, kind: str = "l1_sum") -> torch.Tensor:
    """Eq. (13): s = 1 / (D_u ⊙ e(x_lif, x̂_lif) over all pixels), e read by ``kind``
    (`frame_error`); high = normal.

    Args:
        error: Per-pixel prediction error ‖x_lif − x̂_lif‖ ``(B, 1, H, W)``.
        distance: D_u ``(B, 1, H, W)``, the cluster distance upsampled to the frame; ``None``: 1.
        eps: Guard of the reciprocal (ours).
        kind: `ScoreConfig.error`.

    Returns:
        s ``(B,)``.
    """
    return 1.0 / (frame_error(error, distance, kind) + eps)


@dataclass
class KMeansConfig:
    """Deep K-means and the two-phase schedule (§3.5, §4.2). Only lr 1e-5 is the paper's."""

    alpha: float = 10.0  # α of Eq. (10): our choice
    lambda_cluster: float = 1e-4  # λ of Eq. (12): our choice
    pretrain_epochs: int = 50  # phase 1 (paper: 50 on Ped2, 100 on Avenue/ShanghaiTech)
    centre_lr: float = 1e-5  # paper
    locations_per_clip: int = 16  # sampled r vectors per training clip (ours)
    samples: int = 20000  # at most this many vectors go to K-means (ours)
    max_batches: int | None = None  # cap on the batches of the sampling pass (ours)
    seed: int = 0
    minibatch: bool = False  # MiniBatchKMeans instead of KMeans
    n_init: int = 1
    phase1_ckpt: str | None = None  # start from this checkpoint's autoencoders (ours: for sweeps)


@dataclass
class ScoreConfig:
    """Eq. (13)'s error term and reciprocal; Eq. (14) is the shared ``eval.normalization``.

    The paper: s = 1 / (D_u · "the Euclidean distance between x_lif and x̂_lif over all pixel
    positions"); what exactly is summed is open. ``error`` (see `frame_error`):

    * ``l1_sum``: Σ D_u·‖e‖, an L1 sum over pixels (ours; the recipe before issue 24);
    * ``squared_mean``: mean D_u·e² (the authors' code, ChangYunPeng/VideoAnomalyDetection);
    * ``euclidean``: (Σ D_u·e²)^½ (our reading of the paper's words);
    * ``none``: mean D_u alone, no prediction error (a diagnostic, ours).

    ``reciprocal``: s = 1 / error (the paper); ``False`` scores the weighted error itself, so the
    per-video min–max acts on it, not on its reciprocal (a diagnostic, ours).

    ``first_frame``: the FIF in x̂_lif = FIF + x̂_diff. ``reconstructed`` is the paper's x̂_fif
    (§3.7); ``observed`` takes the true x_fif (ours, a reading at test time only: the trained
    model is the same), so the error is the motion AE's alone, (x_lif − x_fif) − x̂_diff, and the
    spatial AE's reconstruction error of the background no longer adds to it. Measured on the
    reduced Ped2 recipe at 6 + 4 epochs (docs/results.md, issue 24): no gain over three seeds
    (0.833 ± 0.017 against 0.832 ± 0.020), so the paper's reading stays the default.
    """

    error: str = "l1_sum"
    reciprocal: bool = True
    first_frame: str = "reconstructed"

    def __post_init__(self) -> None:
        if self.error not in SCORE_ERRORS:
            raise ValueError(f"score.error must be one of {SCORE_ERRORS}, got {self.error!r}")
        if self.first_frame not in FIRST_FRAMES:
            raise ValueError(f"score.first_frame must be one of {FIRST_FRAMES}, "
                             f"got {self.first_frame!r}")


@dataclass
class LossConfig:
    """Eq. (6) and Eq. (12) weights besides λ."""

    gradient_weight: float = 1.0  # paper: no weight (1)
    appearance_weight: float = 1.0  # paper: 1
    motion_weight: float = 1.0  # paper: 1


class STDAEModule(VADModule):
    """STD-AE with the two-phase schedule (see the module docstring).

    Training uses manual optimisation: one autoencoder step per batch, and in phase 2 one centre
    step after it (the paper's alternation; the granularity is ours).

    Args:
        clip: Clip shape: ``length`` T (paper: 5), ``target`` must be ``last`` (the LIF).
        net: `STDAE` arguments except ``num_frames`` (T − 1, from the clip).
        optimizer: Autoencoder optimizer partial (paper: Adam, lr 1e-4).
        scheduler: Optional autoencoder LR-scheduler partial, stepped once per epoch (paper:
            ×0.1 at epoch 100: ``MultiStepLR``).
        compile: ``torch.compile`` the networks (`VADModule`).
        channels_last: Channels-last convolution weights (`VADModule`).
        clusters: K (paper: 32; Table 3: 4-64); 0 switches the deep K-means off.
        kmeans: `KMeansConfig` fields.
        loss: `LossConfig` fields.
        score: `ScoreConfig` fields (Eq. 13's error term; the reciprocal).
        score_eps: ε in Eq. (13)'s reciprocal.
        score_distance: Weight the error by D_u in Eq. (13) (paper); ``False`` scores the error
            alone, D_u ≡ 1, after training with the centres all the same (ours: a diagnostic that
            separates the cluster term's effect on training from its effect on the score).
    """

    initial_weights = ("kmeans.phase1_ckpt",)

    def __init__(
        self,
        clip: dict,
        net: dict,
        optimizer,
        scheduler=None,
        clusters: int = 32,
        kmeans: dict | KMeansConfig | None = None,
        loss: dict | LossConfig | None = None,
        score: dict | ScoreConfig | None = None,
        score_eps: float = 1e-8,
        score_distance: bool = True,
        compile: bool = False,
        channels_last: bool = False,
    ) -> None:
        super().__init__(clip, optimizer, scheduler, compile, channels_last)  # checks clip.target=last: the LIF
        if clip["length"] < 2:
            raise ValueError("STD-AE needs T >= 2 (FIF and LIF): set model.clip.length")
        if clusters < 0:
            raise ValueError(f"clusters must be >= 0, got {clusters}")
        self.save_hyperparameters(logger=False, ignore=["optimizer", "scheduler"])
        self.automatic_optimization = False
        self.kmeans_cfg = config_section(KMeansConfig, kmeans)
        self.loss_cfg = config_section(LossConfig, loss)
        self.score_cfg = config_section(ScoreConfig, score)
        self.score_eps = score_eps
        self.score_distance = score_distance
        self.clusters = clusters
        self.net = STDAE(**net, num_frames=clip["length"] - 1)
        if self.kmeans_cfg.phase1_ckpt:
            load_submodule(self.net, self.kmeans_cfg.phase1_ckpt, "net")
        self.centres = (nn.Parameter(torch.zeros(clusters, self.net.representation_dim))
                        if clusters > 0 else None)
        self.register_buffer("centres_ready", torch.tensor(False))
        self._centres_ready = False  # the buffer mirrored on the host: no GPU wait per step

    def forward(self, clip: torch.Tensor) -> STDAEOutput:
        return self.net(clip)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs) -> None:
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)
        self._centres_ready = bool(self.centres_ready)  # once per checkpoint load

    @property
    def clustering(self) -> bool:
        """Phase 2: the centres exist (K > 0 and initialised)."""
        return self.centres is not None and self._centres_ready

    # -- targets and losses: Eq. (3), (6), (11), (12) ----------------------------------------------
    @staticmethod
    def motion_target(clip: torch.Tensor) -> torch.Tensor:
        """x_diff = x_lif − x_fif, the RGB difference the motion AE generates (§3.3)."""
        return clip[:, :, -1] - clip[:, :, 0]

    def cluster_distance(self, out: STDAEOutput, centres: torch.Tensor) -> torch.Tensor:
        """Eq. (10) at every location of r → ``(B, h, w)`` (fp32, also under autocast)."""
        return soft_kmeans_distance(out.representation.float(), centres.float(),
                                    self.kmeans_cfg.alpha)

    def loss_terms(self, clip: torch.Tensor, out: STDAEOutput, with_cluster: bool = True
                   ) -> dict[str, torch.Tensor]:
        """Eq. (12): l_a + l_m + λ L_cluster, the centres frozen (detached).

        Returns:
            ``{"loss", "appearance"?, "motion"?, "cluster"?}`` (streams that are off and the
            cluster term before phase 2 are absent).
        """
        terms, total = {}, clip.new_zeros(())
        if out.fif is not None:
            terms["appearance"] = F.mse_loss(out.fif, clip[:, :, 0])  # Eq. (3)
            total = total + self.loss_cfg.appearance_weight * terms["appearance"]
        if out.diff is not None:
            target = self.motion_target(clip)
            # Eq. (6): L2 + gradient loss along x and y
            terms["motion"] = (F.mse_loss(out.diff, target)
                               + self.loss_cfg.gradient_weight * gradient_loss(out.diff, target))
            total = total + self.loss_cfg.motion_weight * terms["motion"]
        if self.clustering:
            # Eq. (11) with the centres frozen
            terms["cluster"] = cluster_loss(out.representation.float(),
                                            self.centres.detach().float(), self.kmeans_cfg.alpha)
            if with_cluster:
                total = total + self.kmeans_cfg.lambda_cluster * terms["cluster"]
        return {"loss": total, **terms}

    def losses(self, batch: ClipBatch) -> dict[str, torch.Tensor]:
        return self.loss_terms(batch.clip, self.net(batch.clip))

    def _optimizers(self) -> list:
        optimizers = self.optimizers()
        return list(optimizers) if isinstance(optimizers, (list, tuple)) else [optimizers]

    def training_step(self, batch: ClipBatch, batch_idx: int) -> torch.Tensor:
        optimizers = self._optimizers()
        out = self.net(batch.clip)
        terms = self.loss_terms(batch.clip, out)
        # The autoencoders' step on Eq. (12); the centres are detached in it.
        optimizers[0].zero_grad()
        self.manual_backward(terms["loss"])
        optimizers[0].step()
        if self.clustering:
            # The centres' step on Eq. (11), the autoencoders frozen: r is detached.
            centre_loss = cluster_loss(out.representation.detach().float(), self.centres.float(),
                                       self.kmeans_cfg.alpha)
            optimizers[1].zero_grad()
            self.manual_backward(centre_loss)
            optimizers[1].step()
        self.log_losses("train", {k: v.detach() for k, v in terms.items()}, len(batch.clip))
        return terms["loss"].detach()

    def validation_step(self, batch: ClipBatch, batch_idx: int) -> None:
        """``val/loss`` = l_a + l_m without the cluster term (see the module docstring)."""
        out = self.net(batch.clip)
        self.log_losses("val", self.loss_terms(batch.clip, out, with_cluster=False),
                        len(batch.clip))

    def configure_optimizers(self):
        optimizers = [self.optimizer_factory(params=self.net.parameters())]
        if self.centres is not None:
            optimizers.append(torch.optim.Adam([self.centres], lr=self.kmeans_cfg.centre_lr))
        if self.scheduler_factory is None:
            return optimizers
        return optimizers, [self.scheduler_factory(optimizer=optimizers[0])]

    # -- score: Eq. (13); Eq. (14) is the shared per-video min–max -------------------------------
    def prediction_error(self, clip: torch.Tensor, out: STDAEOutput) -> torch.Tensor:
        """‖x_lif − x̂_lif‖ per pixel (Euclidean over channels) → ``(B, 1, H, W)``.

        x̂_lif = x̂_fif + x̂_diff (§3.7); without the spatial AE, or with ``score.first_frame=
        observed``, x_fif + x̂_diff; without the motion AE the FIF reconstruction error
        ‖x_fif − x̂_fif‖ (Table 2's "appearance" column).
        """
        clip = clip.float()
        if out.diff is None:
            residual = clip[:, :, 0] - out.fif.float()
        else:
            reconstructed = out.fif is not None and self.score_cfg.first_frame == "reconstructed"
            base = out.fif.float() if reconstructed else clip[:, :, 0]
            residual = clip[:, :, -1] - (base + out.diff.float())
        return residual.pow(2).sum(1, keepdim=True).sqrt()

    def distance_map(self, out: STDAEOutput, size: tuple[int, int]) -> torch.Tensor | None:
        """D_u: Eq. (10) at every location of r, upsampled (nearest) to the frame; ``None``
        before phase 2 or with K = 0 (then D_u ≡ 1)."""
        if not self.clustering:
            return None
        distance = self.cluster_distance(out, self.centres)[:, None]
        return F.interpolate(distance, size=size, mode="nearest")

    def _error_and_distance(self, batch: ClipBatch
                            ) -> tuple[torch.Tensor, torch.Tensor | None]:
        out = self.net(batch.clip)
        error = self.prediction_error(batch.clip, out)
        distance = (self.distance_map(out, tuple(error.shape[-2:])) if self.score_distance
                    else None)
        return error, distance

    def score(self, batch: ClipBatch) -> torch.Tensor:
        """−s (Eq. 13) → ``(B, 1)``: higher = more anomalous.

        The shared ``minmax`` normalisation of −s per video gives 1 − S(t) (Eq. 14) exactly.
        With ``score.reciprocal=false`` (diagnostic) the weighted error itself.
        """
        error, distance = self._error_and_distance(batch)
        if not self.score_cfg.reciprocal:
            return frame_error(error, distance, self.score_cfg.error)[:, None]
        return -frame_regularity(error, distance, self.score_eps, self.score_cfg.error)[:, None]

    def error_map(self, batch: ClipBatch) -> torch.Tensor:
        """Eq. (13)'s per-pixel term D_u ⊙ e (``score.error``'s reading; D_u alone for ``none``)
        of the target frame → ``(B, 1, H, W)``, higher = more anomalous: the heat map of
        `vad.detect` ``render=true``. The frame score is its sum or mean, turned round by the
        reciprocal."""
        error, distance = self._error_and_distance(batch)
        return weighted_error_map(error, distance, self.score_cfg.error)

    # -- phases: K-means initialisation and the LR schedule -----------------------------------------
    def on_train_epoch_start(self) -> None:
        if (self.centres is not None and not self._centres_ready
                and self.current_epoch >= self.kmeans_cfg.pretrain_epochs):
            self.init_centres()

    def on_train_epoch_end(self) -> None:
        scheduler = self.lr_schedulers()
        if scheduler is not None:
            scheduler.step()

    @torch.no_grad()
    def sample_representations(self, loader, max_batches: int | None = None) -> torch.Tensor:
        """``kmeans.locations_per_clip`` random r vectors per training clip, the model in eval
        mode, then at most ``kmeans.samples`` of them → ``(N, D)`` on the CPU (seeded)."""
        cfg = self.kmeans_cfg
        generator = torch.Generator().manual_seed(cfg.seed)
        vectors = []
        for batch in self.training_batches(loader, max_batches):
            r = self.net(batch.clip).representation.float()
            r = rearrange(r, "b d h w -> b (h w) d").cpu()
            take = min(cfg.locations_per_clip, r.shape[1])
            index = torch.rand(r.shape[:2], generator=generator).argsort(1)[:, :take]
            vectors.append(torch.gather(r, 1, index[..., None].expand(-1, -1, r.shape[2]))
                           .flatten(0, 1))
        vectors = torch.cat(vectors)
        if len(vectors) > cfg.samples:
            vectors = vectors[torch.randperm(len(vectors), generator=generator)[: cfg.samples]]
        return vectors

    @torch.no_grad()
    def init_centres(self, loader=None) -> None:
        """The centres ← scikit-learn K-means on sampled representations (§3.5), the
        autoencoders frozen; marks phase 2. Under DDP every process takes rank 0's centres."""
        vectors = self.sample_representations(loader, self.kmeans_cfg.max_batches)
        centres = kmeans_init(vectors, self.clusters, seed=self.kmeans_cfg.seed,
                              minibatch=self.kmeans_cfg.minibatch, n_init=self.kmeans_cfg.n_init)
        if self._trainer is not None and self.trainer.world_size > 1:
            centres = self.trainer.strategy.broadcast(centres.to(self.centres), src=0)
        self.set_centres(centres)

    @torch.no_grad()
    def set_centres(self, centres: torch.Tensor) -> None:
        """The cluster centres ``(K, D)``; marks phase 2."""
        self.centres.copy_(centres.to(self.centres))
        self.centres_ready.fill_(True)
        self._centres_ready = True
