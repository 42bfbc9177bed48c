"""DESDnet: dual-encoder single-decoder network with reverse erasure and a compact feature loss.

Zhong, Chen, Jiang & Ren, "Reverse erasure guided spatio-temporal autoencoder with compact
feature representation for video anomaly detection", Sci China Inf Sci 65(9):194101, 2022
(paper 000, a 3-page letter).

Idea: the current frame I_t is reconstructed from two encoders, a *reconstruction encoder* that sees
I_t (appearance) and a *prediction encoder* that sees the Δ past frames I_{t−Δ}..I_{t−1} (motion),
fused by a 1×1 convolution + tanh and decoded with skip connections from the prediction encoder.
Two training devices: **reverse erasure** — after every iteration the pixels of I_t that were
reconstructed better than the frame's mean error are erased (set to 0) from that sample's Δ+1
input frames in the next epoch, so the encoders attend to the hard foreground while every loss
still targets the raw frames; and a **deep-SVDD compact loss** — a *mapping encoder* maps Î_t to a
feature Φ that is pulled into a hypersphere around the mean feature c of the epoch-1 model's
reconstructions, making reconstructions of normal frames alike. A frame's anomaly score is the
mean squared error of its worst patch.

Paper symbols → arguments:

=====================  ===========================================================================
Δ (past frames)        ``clip.length - 1`` (the clip is I_{t−Δ}..I_t, ``clip.target=last``)
I′ (erased frames)     `DESDnetModule.erase`; mask bank updated by `DESDnetModule.update_masks`
erasure threshold      ``erasure.threshold_scale`` × the frame's mean error (paper: × 1)
fusion, 512 channels   ``net.fusion_channels``
λ_int, λ_rgb           ``loss.lambda_int``, ``loss.lambda_rgb``
λ_compact              ``loss.lambda_compact``
(not in the paper)     ``loss.lambda_gradient``: Liu et al.'s gradient loss, our addition (0: off)
N (Eq. 3)              Δ
Φ(·; W), c, R, ν       `DESDnet.features`, `vad.models.blocks.svdd.Hypersphere` (``svdd.nu``)
P, |P| (Eq. 5)         ``score.patch_size``, ``score.stride``
=====================  ===========================================================================

Scores (``score.kind``): ``patch_max`` is the letter's Eq. 5; ``frame_mse`` (Eq. 5 with one
patch, the whole frame) and ``psnr`` (Liu et al. 2018) are ours. Issue 23 rescored three reduced
Ped2 checkpoints: the frame scores beat the worst patch by 10–12 points of auc_micro on each
(0.930 vs 0.818 without erasure), so both Ped2 recipes use ``frame_mse`` (labelled ours there).

Equations: Eq. (1) total loss, Eq. (2) L_int and Eq. (3) L_rgb in `DESDnetModule.loss_terms`;
Eq. (4) L_compact in `vad.models.blocks.svdd.soft_boundary_loss`; Eq. (5) patch score and the
max over patches in `DESDnetModule.score` (via `vad.models.blocks.scoring.patch_max_error`);
Eq. (6) per-video min–max normalisation and the Gaussian temporal smoothing are done by the shared
evaluation (``eval`` config), in that order, never here.

The letter leaves most details to supporting information we do not have. Our choices and our
readings of its ambiguities, all configurable (none of them is the paper's):

* Backbone (our choice): a U-Net after the future-frame-prediction generator of Liu et al.
  (CVPR 2018; the letter cites it only for its l1/l2 losses): ``depth`` levels of two 3×3
  conv–norm–ReLU with 2×2 max-pooling, channels ``base_channels · 2^i`` (64…512 at depth 4 in
  the Ped2 experiment), decoder with 2×2 transposed convolutions; linear output (no squashing);
  256×256 grey frames for Ped2, Δ = 4. ``net.norm``: ``batch`` (BatchNorm, the default),
  ``group`` (GroupNorm: per-sample statistics, the same in training and test) or ``none`` (Liu
  et al.'s U-Net has no normalisation). Issue 23 (docs/results.md, "DESDnet on real Ped2
  (issue 23)"): with erasure on, neither replaces BatchNorm well on the synthetic benchmark
  (``none`` 0.797 ± 0.102, ``group`` 0.53 over 2 seeds, against 0.926 ± 0.050), so the
  BatchNorm mismatch is not removed by removing BatchNorm; the pixel value of an erased pixel is
  what matters (next bullets).
* Residual output (ours, ``net.residual``; the letter decodes Î_t itself): Î_t = I_{t−1} +
  decoder(·), so an untrained network predicts "nothing moved", whose error is frame
  differencing's, and training learns the change. Issue 23 (docs/results.md, "Hypotheses 5 and
  6 on real Ped2"): decoding Î_t directly, the reduced Ped2 networks did not learn to predict
  better than copying I_{t−1} within 10 epochs (test error 0.97–1.66× the copy's; auc_micro
  0.866 ± 0.096 over 3 seeds, below frame differencing's 0.925); with the residual output their
  error fell to 0.84–0.94× the copy's, the share on still background from ~50 % to ~18 %, and
  auc_micro to 0.943 ± 0.003 (3 seeds, each above frame differencing). Both Ped2 recipes use it.
* The Δ past frames are fed to the prediction encoder stacked as channels (``Δ·C`` input
  channels), oldest first.
* Skips: from every prediction-encoder level above the bottleneck to the decoder (the paper says
  only "skip connections between the prediction encoder and decoder"); the reconstruction
  encoder contributes its bottleneck only, through the fusion.
* Φ: the mapping encoder's bottleneck, global-average-pooled to a vector of ``channels[-1]``.
* Ambiguity: ‖·‖²₂ in Eq. 2–3 is read as the mean squared error over pixels (a constant factor
  absorbed by the λ's); ``argmax{0, ·}`` in Eq. 4 as max; n in Eq. 4 as the batch size.
* Ambiguity: the erasure mask comes from the Î_t of the training iteration itself (computed on
  that iteration's erased input, before the optimiser step; ``erasure.mask_from=erased``) or,
  ``mask_from=raw`` (ours), from an extra no-grad forward of the raw clip (training-mode
  normalisation, BatchNorm buffers restored; issue 23, synthetic, 3 seeds: 0.872 ± 0.058
  against 0.926 ± 0.050 for ``erased``, so ``erased`` stays); its error map is the squared error
  averaged over channels; mask = 1 where error > ``threshold_scale`` × the frame's mean error.
  Masks are double-buffered: the masks read in epoch e are those written in epoch e − 1, so
  epoch 1 trains on raw frames. ``erasure.enabled=false`` switches erasure off (ours; the paper
  always erases); ``threshold_scale`` is ours too (1.0 is the paper). The bank keeps one bit per
  pixel per training clip on the module's device (all-gathered across processes under DDP), is
  saved in checkpoints under ``desdnet_masks`` so that a resumed run erases as before (keyed by
  `clip_table_key`, a digest of the training clip table: after a change of videos, strides,
  ``val_fraction`` or frame size the masks are not restored and erasure starts again from
  all-ones masks, with a warning), and
  ``train/erasure_kept`` logs the fraction of pixels kept.
* Erasure trains on inputs the test never shows (zeros where the background was), which is what
  issue 16 measured costing accuracy. Our readings of the letter's "the uncertain change in the
  input also makes the DESDnet more robust against noise", each a config value:
  ``erasure.probability`` (the fraction of each step's samples erased, drawn per step; the letter:
  1), ``erasure.inputs`` (``all`` frames, the letter; ``past``, only the prediction encoder's;
  ``current``, only I_t) and ``erasure.background`` (the factor erased pixels keep; the letter: 0).
  The default is the letter. Evidence (docs/results.md, "DESDnet: reverse erasure and the
  compact loss"): on the synthetic benchmark (6 epochs, seeds 0–2) erasure as written averages
  0.926 auc_micro against 0.954 without it, with a seed spread of 0.87–0.97, and neither
  ``probability=0.5`` (0.927) nor ``inputs=past`` (0.916) recovers the gap; recomputing the
  BatchNorm statistics of an erasure-trained model on raw clips drops it to chance (0.466), so
  the network relies on erased-input statistics rather than merely suffering from them. On real
  Ped2 (the reduced CPU recipe, one seed) erasure costs 11–13 points (0.706 with it, 0.816
  without). Issue 23 (docs/results.md, "DESDnet on real Ped2 (issue 23)") found what an erased
  pixel *is* to be the cause: in [0, 1] frames ×0 is black, far below the scenes' mean; with
  ``data.value_range=[-1,1]`` (as in Liu et al.'s code) it is mid-grey, the letter reaches
  0.968 ± 0.007 on the synthetic benchmark (erasure off at that range: 0.978 ± 0.006) and the
  BatchNorm recomputation no longer breaks it (0.956). On real Ped2 (one seed) mid-grey erasure
  still costs 2–3 points (0.745 vs 0.766 with the worst-patch score, 0.849 vs 0.883 with the
  frame score). The model default stays the letter; the GPU recipe erases mid-grey; the reduced
  Ped2 recipe, the better reading measured at its scale, does not erase (labelled ours there).
* The centre c: mean Φ over the training clips, computed once in an extra no-grad pass at the end
  of epoch 1, model in eval mode, raw (unerased) inputs (Ambiguity: the paper only says "the
  reconstruction frames extracted by the first epoch training model"); fixed thereafter. The
  compact term starts in epoch 2.
* R (not specified by the paper): ``svdd.update_radius=true`` sets R to the (1 − ν)-quantile of
  ‖Φ − c‖ after every epoch — from the centre pass after epoch 1, then from the distances seen
  in the epoch's training steps — as Ruff et al.'s soft-boundary Deep SVDD does; R gets no
  gradient. ``false`` keeps R at ``svdd.radius`` (0: one-class Deep SVDD).
* Whether Φ is trained (not specified; the letter writes Φ(·; W) with the parameters W of its
  deep-SVDD reference and says the mapping encoder "has the same structure as the reconstruction
  encoder"): ``svdd.mapping`` — ``fixed``, a separate mapping encoder left at its random (He)
  initialisation, so the compact loss only moves the decoder's reconstructions; ``trained``, the
  same encoder trained by Eq. 4 (``tests/test_desdnet.py`` shows it collapsing onto c even
  bias-free: image intensities act as a bias, so Ruff et al.'s Prop. 2 remedy does not hold);
  ``shared``, Φ is the reconstruction encoder itself, trained by both losses in the hope that
  the reconstruction task keeps it from collapsing. ``train/phi_spread`` (Φ's standard deviation
  over the batch, averaged over dimensions) is logged as a collapse monitor.
  ``svdd.bias_free=true`` builds a separate mapping encoder without biases and BatchNorm. The
  default is ``fixed``: ``tests/test_desdnet.py`` shows ``shared`` collapsing Φ onto c all the
  same under a strong compact weight (the prediction encoder's skips
  carry the reconstruction, so nothing keeps the reconstruction encoder's bottleneck
  informative), while the fixed Φ keeps its spread and the compact term still moves the
  reconstructions. On the synthetic benchmark the compact term changes auc_micro by less than
  the seed spread (docs/results.md).
* ``val/loss`` (checkpoint selection) is λ_int·L_int + λ_rgb·L_rgb on the held-out raw clips,
  without the compact term, which starts only in epoch 2 and would make epoch 1 look best;
  ``val/loss_compact`` is logged beside it.
* Optimiser, learning rate, batch size, epochs, λ's, ν, patch size/stride: see the configs
  (``conf/model/desdnet.yaml``, ``conf/experiment/desdnet_ped2.yaml``).
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from vad.data.datamodule import ClipBatch
from vad.models.base import VADModule, config_section
from vad.models.blocks.scoring import patch_max_error
from vad.models.blocks.svdd import Hypersphere
from vad.models.blocks.unet import UNetDecoder, UNetEncoder

OUTPUT_ACTIVATIONS = {None: None, "none": None, "sigmoid": nn.Sigmoid, "tanh": nn.Tanh}
log = logging.getLogger(__name__)


class DESDnet(nn.Module):
    """Reconstruction + prediction encoders → fusion → decoder, and the mapping encoder Φ.

    Args:
        in_channels: Frame channels C (1 for grey).
        num_past: Δ, the number of past frames fed to the prediction encoder.
        base_channels: Channels of the first U-Net level; level i has ``base_channels · 2^i``.
        depth: U-Net levels (``depth - 1`` poolings); H and W must divide by ``2^(depth-1)``.
        fusion_channels: Output channels of the 1×1 fusion convolution (paper: 512).
        norm: Normalisation in the encoders and the decoder: ``true``/``"batch"`` (BatchNorm),
            ``"group"`` (GroupNorm) or ``false``/``"none"`` (Liu et al.'s U-Net has none).
        output_activation: ``null`` (linear), ``sigmoid`` or ``tanh`` on Î_t.
        mapping_bias_free: Build the mapping encoder without biases and BatchNorm.
        share_mapping: Φ is the reconstruction encoder itself (no separate mapping encoder).
        residual: Decode the change from the last input frame, Î_t = I_{t−1} + decoder(·),
            instead of Î_t itself (ours; the letter decodes Î_t). An untrained network then
            predicts "nothing moves", whose error is frame differencing's.

    Shapes:
        ``forward``: clip ``(B, C, Δ+1, H, W)`` (I_{t−Δ}..I_t) → Î_t ``(B, C, H, W)``.
        ``features``: frame ``(B, C, H, W)`` → Φ ``(B, base_channels · 2^(depth-1))``.
    """

    def __init__(
        self,
        in_channels: int = 1,
        num_past: int = 4,
        base_channels: int = 64,
        depth: int = 4,
        fusion_channels: int = 512,
        norm: bool | str = True,
        output_activation: str | None = None,
        mapping_bias_free: bool = True,
        share_mapping: bool = False,
        residual: bool = False,
    ) -> None:
        super().__init__()
        self.residual = residual
        if num_past < 1 or depth < 1:
            raise ValueError(f"need num_past >= 1 and depth >= 1, got {num_past}, {depth}")
        self.num_past = num_past
        self.size_multiple = 2 ** (depth - 1)  # frame H and W must divide by it (poolings)
        channels = [base_channels * 2**i for i in range(depth)]
        self.reconstruction_encoder = UNetEncoder(in_channels, channels, norm=norm)
        self.prediction_encoder = UNetEncoder(in_channels * num_past, channels, norm=norm)
        self.fusion = nn.Sequential(nn.Conv2d(2 * channels[-1], fusion_channels, kernel_size=1),
                                    nn.Tanh())
        self.decoder = UNetDecoder(fusion_channels, channels, in_channels,
                                   skip_channels=channels[:-1], norm=norm,
                                   out_activation=OUTPUT_ACTIVATIONS[output_activation])
        self.mapping_encoder = None if share_mapping else UNetEncoder(
            in_channels, channels, norm=False if mapping_bias_free else norm,
            bias=not mapping_bias_free)
        # He initialisation keeps Φ at the input's scale through the bias-free, norm-free stack
        # (PyTorch's default shrinks it by about 6x per layer), so that λ_compact means something.
        for module in self.mapping_encoder.modules() if self.mapping_encoder else ():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, nonlinearity="relu")

    @property
    def mapping(self) -> UNetEncoder:
        """The network Φ maps Î_t with: the mapping encoder, or the reconstruction encoder."""
        return self.mapping_encoder or self.reconstruction_encoder

    @property
    def feature_dim(self) -> int:
        return self.mapping.out_channels

    def forward(self, clip: torch.Tensor) -> torch.Tensor:
        if clip.shape[2] != self.num_past + 1:
            raise ValueError(f"expected Δ+1 = {self.num_past + 1} frames, got {clip.shape[2]}")
        current = clip[:, :, -1]
        past = rearrange(clip[:, :, :-1], "b c t h w -> b (t c) h w")
        appearance = self.reconstruction_encoder(current)[-1]
        motion = self.prediction_encoder(past)
        fused = self.fusion(torch.cat([appearance, motion[-1]], dim=1))
        decoded = self.decoder(fused, motion[:-1])
        return clip[:, :, -2] + decoded if self.residual else decoded

    def features(self, frame: torch.Tensor) -> torch.Tensor:
        """Φ(Î_t; W): the mapping network's bottleneck, averaged over space."""
        return self.mapping(frame)[-1].mean(dim=(-2, -1))


# -- the method's knobs, one small dataclass per config block ------------------------------------
ERASED_INPUTS = ("all", "past", "current")
MASK_SOURCES = ("erased", "raw")


@dataclass
class ErasureConfig:
    """Reverse erasure. The paper's letter is the default of every field but ``enabled`` (ours).

    Args:
        enabled: Erase at all (ours; the paper always erases).
        threshold_scale: mask = error > scale × the frame's mean error (paper: 1).
        probability: Fraction of the samples of each step that are erased, drawn anew per step
            (ours; paper: 1, every sample). Below 1 the network also sees raw inputs, as at
            test time.
        inputs: Which inputs are erased: ``all`` (paper: I′_{t−Δ}..I′_t), ``past`` (only the
            prediction encoder's I′_{t−Δ}..I′_{t−1}) or ``current`` (only I′_t) (ours).
        background: Erased pixels are multiplied by this instead of 0 (ours; paper: 0).
        mask_from: Which Î_t the next epoch's mask is computed from: ``erased``, the training
            iteration's own reconstruction of its (already erased) input, or ``raw``, an extra
            no-grad forward of the raw clip (training-mode normalisation, running statistics
            left untouched). Both are readings of the letter's "reconstruction frame" (ours);
            ``erased`` is the default.
    """

    enabled: bool = True
    threshold_scale: float = 1.0
    probability: float = 1.0
    inputs: str = "all"
    background: float = 0.0
    mask_from: str = "erased"

    def __post_init__(self) -> None:
        if self.inputs not in ERASED_INPUTS:
            raise ValueError(f"model.erasure.inputs must be one of {ERASED_INPUTS}, "
                             f"got {self.inputs!r}")
        if self.mask_from not in MASK_SOURCES:
            raise ValueError(f"model.erasure.mask_from must be one of {MASK_SOURCES}, "
                             f"got {self.mask_from!r}")
        for key in ("probability", "background"):
            if not 0 <= getattr(self, key) <= 1:
                raise ValueError(f"model.erasure.{key} must be in [0, 1], "
                                 f"got {getattr(self, key)}")


@dataclass
class LossConfig:
    """λ's of Eq. (1), and ``lambda_gradient``, our addition: the weight of Liu et al.'s (2018)
    gradient-difference loss (`gradient_difference`), 0 in the letter's Eq. (1)."""

    lambda_int: float = 1.0
    lambda_rgb: float = 0.1
    lambda_compact: float = 0.01
    lambda_gradient: float = 0.0


@dataclass
class SVDDConfig:
    """Deep-SVDD hypersphere (Eq. 4); everything but ``nu`` is our choice (module docstring).

    Args:
        nu: ν ∈ (0, 1].
        radius: Initial R (the R used throughout when ``update_radius`` is off).
        update_radius: R ← (1 − ν)-quantile of ‖Φ − c‖ after every epoch (Ruff et al.).
        mapping: Which Φ: ``fixed`` (a separate mapping encoder left at its random
            initialisation), ``trained`` (separate, trained by the compact loss) or ``shared``
            (the reconstruction encoder itself, trained by both losses).
        bias_free: A separate mapping encoder without biases and BatchNorm.
        center_eps: Ruff et al.'s guard on near-zero coordinates of c (0: plain mean).
        center_max_batches: Cap on the batches of the centre pass (``null``: the whole set).
    """

    nu: float = 0.1
    radius: float = 0.0
    update_radius: bool = True
    mapping: str = "fixed"
    bias_free: bool = True
    center_eps: float = 0.0
    center_max_batches: int | None = None

    def __post_init__(self) -> None:
        if self.mapping not in MAPPINGS:
            raise ValueError(f"model.svdd.mapping must be one of {MAPPINGS}, got {self.mapping!r}")


MAPPINGS = ("fixed", "trained", "shared")


SCORE_KINDS = ("patch_max", "frame_mse", "psnr")


@dataclass
class ScoreConfig:
    """The frame score.

    Args:
        kind: ``patch_max`` (Eq. 5, the paper: the worst patch's mean squared error),
            ``frame_mse`` (the whole frame's mean squared error) or ``psnr`` (−PSNR =
            10·log10(MSE), the score of Liu et al. 2018, the baseline DESDnet builds on, turned
            round so that higher is more anomalous; the peak value is a constant offset, which
            per-video min–max removes). ``frame_mse`` and ``psnr`` are ours, for comparison.
        patch_size: Square patches of ``patch_size`` pixels (``patch_max`` only) ...
        stride: ... every ``stride`` pixels (``null``: no overlap).
    """

    kind: str = "patch_max"
    patch_size: int = 16
    stride: int | None = None

    def __post_init__(self) -> None:
        if self.kind not in SCORE_KINDS:
            raise ValueError(f"model.score.kind must be one of {SCORE_KINDS}, got {self.kind!r}")


# -- bit-packed mask bank --------------------------------------------------------------------------
_BIT_WEIGHTS = 2 ** torch.arange(7, -1, -1)


def gradient_difference(recon: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Liu et al.'s (2018) gradient-difference loss: the mean over pixels of
    | |∂Î| − |∂I| | along x plus the same along y (their L_gd with the absolute differences of
    neighbouring pixels as the image gradient). Sharpens the edges an L2 loss blurs."""
    def edges(image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return ((image[..., :, 1:] - image[..., :, :-1]).abs(),
                (image[..., 1:, :] - image[..., :-1, :]).abs())
    (recon_x, recon_y), (target_x, target_y) = edges(recon), edges(target)
    return (recon_x - target_x).abs().mean() + (recon_y - target_y).abs().mean()


def pack_masks(masks: torch.Tensor) -> torch.Tensor:
    """Bool masks ``(B, H, W)`` → ``uint8 (B, ceil(H·W / 8))``, 8 pixels per byte."""
    flat = masks.flatten(1).to(torch.uint8)
    flat = F.pad(flat, (0, (-flat.shape[1]) % 8))
    weights = _BIT_WEIGHTS.to(flat.device, torch.uint8)
    return (flat.view(len(flat), -1, 8) * weights).sum(-1, dtype=torch.uint8)


def unpack_masks(packed: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Inverse of `pack_masks`: ``uint8 (B, P)`` → bool ``(B, H, W)``."""
    weights = _BIT_WEIGHTS.to(packed.device, torch.uint8)
    bits = (packed.unsqueeze(-1) & weights) != 0
    return bits.flatten(1)[:, : height * width].view(len(packed), height, width)


def erasure_masks(target: torch.Tensor, recon: torch.Tensor, threshold_scale: float = 1.0
                  ) -> torch.Tensor:
    """Reverse-erasure masks: 1 (keep) where the pixel error exceeds ``threshold_scale`` × the
    frame's mean error, 0 (erase) elsewhere.

    Args:
        target: I_t ``(B, C, H, W)``.
        recon: Î_t ``(B, C, H, W)``.

    Returns:
        bool ``(B, H, W)``.
    """
    error = (target.float() - recon.float()).pow(2).mean(1)
    return error > threshold_scale * error.mean(dim=(-2, -1), keepdim=True)


def clip_table_key(index: np.ndarray, records, frame_size) -> str:
    """A digest of the training clip table that keys the mask bank: row ``i`` of the bank is the
    mask of clip ``index[i]`` (video, start, step) of these videos at this frame size.

    The videos enter by name, frame count and source file *names* (not full paths, so that a
    copied data folder still matches) or, for in-memory arrays, their bytes.
    """
    digest = hashlib.sha1(np.ascontiguousarray(index, dtype=np.int64).tobytes())
    digest.update(repr(tuple(frame_size)).encode())
    for record in records:
        source = record.source
        if isinstance(source, np.ndarray):
            source = hashlib.sha1(np.ascontiguousarray(source).tobytes()).hexdigest()
        elif isinstance(source, (list, tuple)):
            source = [getattr(path, "name", str(path)) for path in source]
        else:
            source = getattr(source, "name", str(source))
        digest.update(repr((record.name, record.num_frames, source,
                            getattr(record, "frame_range", None))).encode())
    return digest.hexdigest()


def erase(clip: torch.Tensor, masks: torch.Tensor, inputs: str = "all", background: float = 0.0
          ) -> torch.Tensor:
    """I′ = I ⊙ mask: one mask ``(B, H, W)`` per sample for the chosen frames and all channels.

    Args:
        clip: I_{t−Δ}..I_t ``(B, C, Δ+1, H, W)``.
        masks: bool ``(B, H, W)``, 1 = keep.
        inputs: ``all`` frames (paper), only the ``past`` ones or only the ``current`` one.
        background: The factor erased pixels keep (paper: 0).
    """
    keep = masks[:, None, None].to(clip.dtype)
    if background:
        keep = background + (1 - background) * keep
    erased = clip * keep
    if inputs == "past":
        return torch.cat([erased[:, :, :-1], clip[:, :, -1:]], dim=2)
    if inputs == "current":
        return torch.cat([clip[:, :, :-1], erased[:, :, -1:]], dim=2)
    return erased


class DESDnetModule(VADModule):
    """DESDnet with reverse erasure and the deep-SVDD compact loss (see the module docstring).

    Args:
        clip: Clip shape read by the data config: ``length`` = Δ + 1, ``target`` must be ``last``.
        net: `DESDnet` arguments except ``num_past`` (taken from the clip) and
            ``mapping_bias_free`` (``svdd.bias_free``).
        erasure: `ErasureConfig` fields.
        loss: `LossConfig` fields.
        svdd: `SVDDConfig` fields.
        score: `ScoreConfig` fields.
        optimizer: Optimizer partial.
        scheduler: Optional LR-scheduler partial.
        compile: ``torch.compile`` the networks (`VADModule`).
        channels_last: Channels-last convolution weights (`VADModule`).
    """

    def __init__(
        self,
        clip: dict,
        net: dict,
        optimizer,
        scheduler=None,
        erasure: dict | ErasureConfig | None = None,
        loss: dict | LossConfig | None = None,
        svdd: dict | SVDDConfig | None = None,
        score: dict | ScoreConfig | None = None,
        compile: bool = False,
        channels_last: bool = False,
    ) -> None:
        super().__init__(clip, optimizer, scheduler, compile, channels_last)  # checks clip.target=last: I_t
        if clip["length"] < 2:
            raise ValueError("DESDnet needs Δ >= 1 past frames: set model.clip.length >= 2")
        self.save_hyperparameters(logger=False, ignore=["optimizer", "scheduler"])
        self.erasure_cfg = config_section(ErasureConfig, erasure)
        self.loss_cfg = config_section(LossConfig, loss)
        self.svdd_cfg = config_section(SVDDConfig, svdd)
        self.score_cfg = config_section(ScoreConfig, score)
        self.net = DESDnet(**net, num_past=clip["length"] - 1,
                           mapping_bias_free=self.svdd_cfg.bias_free,
                           share_mapping=self.svdd_cfg.mapping == "shared")
        if self.svdd_cfg.mapping == "fixed":
            self.net.mapping_encoder.requires_grad_(False)
        self.hypersphere = Hypersphere(self.net.feature_dim, nu=self.svdd_cfg.nu,
                                       radius=self.svdd_cfg.radius,
                                       center_eps=self.svdd_cfg.center_eps)
        # Mask bank, bit-packed, on the module's device: masks read in this epoch, masks written
        # in it for the next. Not in the state dict (its size is the training set's); saved in
        # and restored from checkpoints by the on_save/on_load hooks below.
        self.register_buffer("masks_read", torch.zeros(0, 0, dtype=torch.uint8), persistent=False)
        self.register_buffer("masks_next", torch.zeros(0, 0, dtype=torch.uint8), persistent=False)
        self.mask_size: tuple[int, int] | None = None
        self.clip_key: str | None = None  # `clip_table_key` of the training set the bank is for
        self._restored_masks: dict | None = None
        self._restored_read: torch.Tensor | None = None  # masks_read of a mid-epoch checkpoint
        self._epoch_sq_distances: list[torch.Tensor] = []

    def forward(self, clip: torch.Tensor) -> torch.Tensor:
        return self.net(clip)

    def train(self, mode: bool = True):
        super().train(mode)
        if self.svdd_cfg.mapping == "fixed":
            self.net.mapping_encoder.eval()  # a fixed Φ keeps fixed BatchNorm statistics, if any
        return self

    # -- losses: Eq. (1)-(4) ----------------------------------------------------------------------
    def loss_terms(self, clip: torch.Tensor, recon: torch.Tensor, compact: bool = True
                   ) -> tuple[dict[str, torch.Tensor], torch.Tensor | None]:
        """Eq. (1)-(4) against the *raw* clip.

        Args:
            clip: Raw frames I_{t−Δ}..I_t ``(B, C, Δ+1, H, W)``.
            recon: Î_t ``(B, C, H, W)``.
            compact: Add the compact term once c is set (False: Eq. (1) without it).

        Returns:
            ``{"loss", "int", "rgb"[, "compact"]}`` and, once c is set, the squared distances
            ‖Φ − c‖² ``(B,)`` (else ``None``).
        """
        target, past = clip[:, :, -1], clip[:, :, :-1]
        # Eq. (2): L_int = ‖Î_t − I_t‖²
        l_int = F.mse_loss(recon, target)
        # Eq. (3): L_rgb = 1/N Σ_{i=1..N} (N−i+1)/N ‖Î_t − I_{t−i}‖², N = Δ;
        # I_{t−i} is past[:, :, -i]
        n = past.shape[2]
        l_rgb = sum((n - i + 1) / n * F.mse_loss(recon, past[:, :, -i])
                    for i in range(1, n + 1)) / n
        terms = {"int": l_int, "rgb": l_rgb}
        total = self.loss_cfg.lambda_int * l_int + self.loss_cfg.lambda_rgb * l_rgb
        if self.loss_cfg.lambda_gradient:  # our addition, not in Eq. (1)
            terms["gradient"] = gradient_difference(recon, target)
            total = total + self.loss_cfg.lambda_gradient * terms["gradient"]
        sq_distances = None
        if compact and self.hypersphere.is_ready:  # epoch 1 has no compact term: c is unknown
            # fp32 even under bf16 autocast: ‖Φ − c‖² is a small difference of large vectors
            phi = self.net.features(recon).float()
            # Eq. (4): L_compact = R² + 1/(νn) Σ max(0, ‖Φ − c‖² − R²)
            terms["compact"] = self.hypersphere(phi)
            sq_distances = self.hypersphere.distances(phi.detach())
            # Collapse monitor (not a loss): Φ's spread over the batch, 0 when collapsed onto c
            self.log("train/phi_spread", phi.detach().std(0).mean(), on_step=False,
                     on_epoch=True, batch_size=len(phi))
            total = total + self.loss_cfg.lambda_compact * terms["compact"]
        return {"loss": total, **terms}, sq_distances

    def losses(self, batch: ClipBatch) -> dict[str, torch.Tensor]:
        """Eq. (1) on raw inputs (the test-time path)."""
        return self.loss_terms(batch.clip, self.net(batch.clip))[0]

    def training_step(self, batch: ClipBatch, batch_idx: int) -> torch.Tensor:
        clip = batch.clip
        inputs, mask_recon = clip, None
        if self.erasure_cfg.enabled:
            cfg = self.erasure_cfg
            masks = self.masks(batch.index, *clip.shape[-2:])
            if cfg.probability < 1:  # the other samples keep every pixel
                chosen = torch.rand(len(clip), device=masks.device) < cfg.probability
                masks = masks | ~chosen[:, None, None]
            if cfg.mask_from == "raw" and not bool(masks.all()):  # before the graph is built:
                mask_recon = self.raw_reconstruction(clip)  # it restores BatchNorm buffers in place
            inputs = erase(clip, masks, cfg.inputs, cfg.background)
            self.log("train/erasure_kept", masks.float().mean(), on_step=False, on_epoch=True,
                     batch_size=len(clip))  # fraction of pixels kept (1 in epoch 1)
        recon = self.net(inputs)
        losses, sq_distances = self.loss_terms(clip, recon)  # every loss targets raw frames
        self.log_losses("train", losses, len(clip))
        if self.erasure_cfg.enabled:
            # erased: this forward's own Î_t; raw: Î_t of the raw clip (epoch 1, nothing erased:
            # the same thing)
            mask_recon = recon.detach() if mask_recon is None else mask_recon
            self.update_masks(batch.index, clip[:, :, -1], mask_recon)
        if sq_distances is not None and self.svdd_cfg.update_radius:
            self._epoch_sq_distances.append(sq_distances.float())
        return losses["loss"]

    @torch.no_grad()
    def raw_reconstruction(self, clip: torch.Tensor) -> torch.Tensor:
        """Î_t of the raw clip for ``erasure.mask_from=raw``: no gradient, the network's current
        mode (training: batch statistics), BatchNorm running statistics restored afterwards so
        that the extra pass leaves no trace on the model."""
        norms = [m for m in self.net.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)
                 and m.track_running_stats]
        saved = [[b.clone() for b in (m.running_mean, m.running_var, m.num_batches_tracked)]
                 for m in norms]
        recon = self.net(clip)
        for m, (mean, var, count) in zip(norms, saved, strict=True):
            m.running_mean.copy_(mean)
            m.running_var.copy_(var)
            m.num_batches_tracked.copy_(count)
        return recon

    def validation_step(self, batch: ClipBatch, batch_idx: int) -> None:
        """``val/loss`` without the compact term (see the module docstring)."""
        losses, _ = self.loss_terms(batch.clip, self.net(batch.clip), compact=False)
        self.log_losses("val", losses, len(batch.clip))

    # -- score: Eq. (5) ---------------------------------------------------------------------------
    def score(self, batch: ClipBatch) -> torch.Tensor:
        """Eq. (5): the largest patch mean squared error of I_t vs Î_t → ``(B, 1)``
        (``score.kind=patch_max``; ``frame_mse`` and ``psnr`` for comparison, `ScoreConfig`).

        Eq. (6) (per-video min–max) and temporal smoothing happen in the shared evaluation.
        """
        error = self.error_map(batch)
        if self.score_cfg.kind == "frame_mse":
            return error.mean(dim=(1, 2, 3))[:, None]
        if self.score_cfg.kind == "psnr":  # −PSNR up to a constant: 10·log10(MSE)
            return 10 * torch.log10(error.mean(dim=(1, 2, 3)).clamp_min(1e-10))[:, None]
        return patch_max_error(error, self.score_cfg.patch_size, self.score_cfg.stride)[:, None]

    def error_map(self, batch: ClipBatch) -> torch.Tensor:
        """Eq. (5)'s per-pixel term: (I_t − Î_t)², averaged over channels → ``(B, 1, H, W)``."""
        target = batch.clip[:, :, -1].float()
        return (target - self.net(batch.clip).float()).pow(2).mean(1, keepdim=True)

    # -- reverse erasure --------------------------------------------------------------------------
    def _ensure_mask_bank(self, index: torch.Tensor, height: int, width: int) -> None:
        """Allocate (all ones: keep every pixel) or grow the bank to cover ``index``."""
        if self.mask_size not in (None, (height, width)):
            raise ValueError(f"mask bank is {self.mask_size}, got frames of {(height, width)}")
        datamodule = getattr(self._trainer, "datamodule", None) if self._trainer else None
        known = (len(datamodule.datasets["train"]) if "train" in getattr(datamodule, "datasets", {})
                 else None)
        if self.mask_size is not None and known is not None and known <= len(self.masks_next):
            return  # the usual case: no device sync for index.max()
        size = max(known or 0, int(index.max()) + 1)  # without a datamodule: grow on demand
        if self.mask_size is not None and size <= len(self.masks_next):
            return
        self.mask_size = (height, width)
        ones = pack_masks(torch.ones(1, height, width, dtype=torch.bool, device=self.device))
        new_rows = ones.expand(size - len(self.masks_next), -1)
        self.masks_read = torch.cat([self.masks_read.reshape(-1, ones.shape[1]), new_rows])
        self.masks_next = torch.cat([self.masks_next.reshape(-1, ones.shape[1]), new_rows])
        if self._restored_masks is not None:
            self._apply_restored_masks()

    def masks(self, index: torch.Tensor, height: int, width: int) -> torch.Tensor:
        """The masks read in this epoch for training clips ``index`` → bool ``(B, H, W)``."""
        self._ensure_mask_bank(index, height, width)
        return unpack_masks(self.masks_read[index.to(self.device)], height, width)

    @torch.no_grad()
    def update_masks(self, index: torch.Tensor, target: torch.Tensor, recon: torch.Tensor) -> None:
        """Write the masks of this iteration's I_t vs Î_t for the next epoch (replacing the old)."""
        self._ensure_mask_bank(index, *target.shape[-2:])
        packed = pack_masks(erasure_masks(target, recon, self.erasure_cfg.threshold_scale))
        index = index.to(self.device)
        if self._trainer is not None and self.trainer.world_size > 1:
            index = self.all_gather(index).flatten(0, 1)
            packed = self.all_gather(packed).flatten(0, 1)
        self.masks_next[index] = packed

    def on_fit_start(self) -> None:
        # Allocate the bank (and apply masks restored from a checkpoint) before epoch 1 when the
        # datamodule knows the training set; otherwise the first training step does it.
        datamodule = getattr(self.trainer, "datamodule", None)
        train = getattr(datamodule, "datasets", {}).get("train")
        if self.erasure_cfg.enabled and train is not None and len(train) > 0:
            if hasattr(datamodule, "records") and hasattr(train, "index"):
                self.clip_key = clip_table_key(train.index, datamodule.records("train"),
                                               train.frame_size)
            self._ensure_mask_bank(torch.tensor([len(train) - 1]), *train.frame_size)

    def on_train_epoch_start(self) -> None:
        if self._trainer is not None and self.trainer.fit_loop.restarted_mid_epoch:
            # Resumed inside an epoch: the masks it reads and its distances came with the
            # checkpoint.
            if self._restored_read is not None:
                self.masks_read[: len(self._restored_read)] = self._restored_read.to(self.device)
                self._restored_read = None
            return
        # Double buffer: this epoch reads what the previous one wrote.
        self.masks_read.copy_(self.masks_next)
        self._epoch_sq_distances = []

    # -- deep-SVDD centre and radius --------------------------------------------------------------
    def on_train_epoch_end(self) -> None:
        if not self.hypersphere.is_ready:
            self.fit_center()
        elif self.svdd_cfg.update_radius and self._epoch_sq_distances:
            sq_distances = torch.cat(self._epoch_sq_distances)
            if self.trainer.world_size > 1:
                sq_distances = self.all_gather(sq_distances).flatten()
            self.hypersphere.update_radius(sq_distances)
        self._epoch_sq_distances = []

    @torch.no_grad()
    def fit_center(self, loader=None) -> None:
        """c ← mean Φ(Î_t) over the training clips (raw inputs, eval mode); R from the same pass.

        Runs once, after epoch 1; c stays fixed afterwards. Uses a fresh loader from the
        datamodule when there is one; under DDP every process takes rank 0's c and R.
        """
        features = torch.cat([
            self.net.features(self.net(batch.clip)).float()
            for batch in self.training_batches(loader, self.svdd_cfg.center_max_batches)])
        self.hypersphere.set_center(features)
        if self.svdd_cfg.update_radius:
            self.hypersphere.update_radius(self.hypersphere.distances(features))
        if self._trainer is not None and self.trainer.world_size > 1:
            # Each process drew its own shuffled batches: all take rank 0's c and R.
            strategy = self.trainer.strategy
            self.hypersphere.center.copy_(strategy.broadcast(self.hypersphere.center, src=0))
            self.hypersphere.radius.copy_(strategy.broadcast(self.hypersphere.radius, src=0))

    # -- checkpoints: the mask bank travels outside the state dict --------------------------------
    def on_save_checkpoint(self, checkpoint: dict) -> None:
        # Both buffers and the epoch's distances so far: a checkpoint written inside an epoch
        # (callbacks.last_checkpoint.every_n_*) resumes that epoch exactly.
        if self.mask_size is not None:
            checkpoint["desdnet_masks"] = {"size": list(self.mask_size),
                                           "bits": self.masks_next.cpu(),
                                           "read": self.masks_read.cpu(),
                                           "clips": self.clip_key}
        checkpoint["desdnet_epoch_sq_distances"] = [d.cpu() for d in self._epoch_sq_distances]

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        super().on_load_checkpoint(checkpoint)
        self._epoch_sq_distances = [d.to(self.device) for d in
                                    checkpoint.get("desdnet_epoch_sq_distances", [])]
        # Lightning restores the checkpoint before `on_fit_start`, usually before the bank exists:
        # keep the masks until `_ensure_mask_bank` allocates it (or apply them now if it does).
        self._restored_masks = checkpoint.get("desdnet_masks")
        if self._restored_masks is not None and self.mask_size is not None:
            self._apply_restored_masks()

    def _apply_restored_masks(self) -> None:
        """Restore the checkpoint's masks only onto the same training clips: keyed by
        `clip_table_key` (a checkpoint from before the key, or a run without a datamodule, falls
        back to the frame size and the row count). Another training set starts again from
        all-ones masks, with a warning."""
        restored, self._restored_masks = self._restored_masks, None
        bits, key = restored["bits"], restored.get("clips")
        reason = None
        if tuple(restored["size"]) != self.mask_size:
            reason = f"frame size {tuple(restored['size'])} != {self.mask_size}"
        elif key is not None and self.clip_key is not None and key != self.clip_key:
            reason = ("another training clip table (videos, strides, val_fraction or frame "
                      "size changed since the checkpoint)")
        elif len(bits) > len(self.masks_next) or (self.clip_key is not None
                                                  and len(bits) != len(self.masks_next)):
            reason = f"{len(bits)} clips in the checkpoint, {len(self.masks_next)} now"
        if reason is not None:
            log.warning("desdnet: the checkpoint's erasure masks are not restored (%s): "
                        "reverse erasure starts again from all-ones masks", reason)
            return
        self.masks_next[: len(bits)] = bits.to(self.device)
        self.masks_read[: len(bits)] = bits.to(self.device)
        self._restored_read = restored.get("read")  # for a resume inside an epoch
