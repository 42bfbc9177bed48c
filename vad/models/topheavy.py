"""Top-Heavy convolutional autoencoder, anomaly-score distillation and joint spatiotemporal
training (paper 004).

Idea: a small clip autoencoder whose encoder starts with 2D (1×3×3) convolutions and ends with
3D (3×3×3) ones — the "Top-Heavy" order of Xie et al.'s S3D-G — reconstructs 16-frame clips of
normal video; it is trained on the mean absolute reconstruction error (Eq. 1) and a frame badly
reconstructed is anomalous. Two ways to bring motion into this single *spatial* network, whose
input needs no optical flow at test time: **anomaly-score distillation** — a *temporal* (teacher)
autoencoder of the same architecture is first trained on TV-L1 optical flow, then frozen; its
per-sample reconstruction loss L_t is the teacher signal, and the spatial network is trained on
L_s + (L_t − L_s)² (Eq. 2–3); and **joint spatiotemporal training** — both networks trained at
once on L_s + L_s·L_t (Eq. 4). Only the spatial network runs at inference. The plain 3D
autoencoder the paper compares against is `vad.models.ae3d`.

Paper symbols → arguments:

=========================  ====================================================================
16 × 128 × 128 × C clip    ``clip.length`` (16), ``data.image_size``, ``data.grayscale``
Table 1 channels           ``net.encoder_channels`` (32, 48, 64, 64), ``net.decoder_channels``
                           (48, 32, 32); the output layer has C channels
f_s, f_t                   ``TopHeavyModule.net`` (spatial), ``TopHeavyModule.temporal`` (flow)
L_s, L_t (Eq. 1)           `reconstruction_loss` (per sample; MAE)
s(θ, x) (Eq. 2)            `distillation_terms`, ``train/loss_distill``
L(θ) (Eq. 3)               `distillation_terms`, ``model.training=distill``
L(θ₁, θ₂) (Eq. 4)          `joint_loss`, ``model.training=joint``
teacher training           the first ``distill.teacher_epochs`` epochs (or ``distill.teacher_ckpt``)
horizontal flip            ``flip`` (§IV)
=========================  ====================================================================

Equations: Eq. (1) in `reconstruction_loss`; Eq. (2)–(3) in `distillation_terms`; Eq. (4) in
`joint_loss`; the test-time score (not in the paper) in `TopHeavyModule.score`.

**Table 1 as built** (`top_heavy_layers`; strides T/H/W, 'same' padding): Conv 1×3×3/32 →
MaxPool 1×2×2 → Conv 1×3×3/48 → MaxPool 1×2×2 → Conv 3×3×3/64 → MaxPool 2×2×2 (stride 2/2/2) →
Conv 3×3×3/64 | TConv 3×3×3/48 stride 2/2/2 → TConv 3×3×3/32 stride 1/2/2 → TConv 1×3×3/32
stride 1/2/2 → Conv 1×3×3/C stride 1, sigmoid. Without BatchNorm that is exactly 341,889
parameters for C = 1 (the paper's Table 4 says 6,144, which does not follow from Table 1); with
our BatchNorm 342,529 (``tests/test_topheavy.py`` checks both).

Conflicts, readings and our choices (all configurable; none of them is the paper's word):

* Ambiguity (decoder): §III.A says the decoder has "one 3D transpose convolution layer and two 2D
  transpose convolutional layers", Table 1 lists two 3×3×3 and one 1×3×3 transposed convolution.
  ``net.decoder=table`` (default) follows the table; ``prose`` makes TConv 2 a 1×3×3 kernel.
* Ambiguity (output layer): Table 1 calls it a transposed convolution 1×3×3 stride 1, the prose a
  "3D convolutional layer with the sigmoid"; at stride 1 both are the same function class and
  parameter count: we build a ``Conv3d`` 1×3×3 with a sigmoid.
* BatchNorm: the paper "applies a batch normalization layer" without saying where; ours: after
  every hidden (transposed) convolution, before the LeakyReLU (``net.norm``).
* LeakyReLU slope 0.3 (our choice: Keras' default, the authors used TensorFlow 2.1).
* Eq. 3 sums over the batch; we average (a constant factor on the learning rate). L_t and L_s
  in Eq. 2 are per-sample MAEs over the clip (C×T×H×W). Eq. 4 is read on the batch means.
* Distillation schedule: the teacher trains alone for ``distill.teacher_epochs`` epochs (its
  weights only: the spatial network is not run), then is frozen (``requires_grad=False``, eval
  mode) for the rest of ``trainer.max_epochs``; or it is loaded from ``distill.teacher_ckpt``
  (a checkpoint of this module with a ``temporal`` network) with ``teacher_epochs=0``.
* The teacher's L_t is computed on the fly with the frozen teacher (the paper fixes it per frame
  beforehand: the same numbers, since the teacher no longer changes, except under flipping, where
  ours sees the flipped flow).
* Horizontal flip (§IV flips the training sets, doubling them): each training clip is flipped
  with probability 1/2 (``flip``); its flow too, with u negated (``u → 1 − u`` in the stored
  [0, 1] scale, `vad.data.flow`).
* Flow: computed by the data module (``data.flow``, `vad.data.flow`): without it
  ``training=distill|joint`` fails with a message saying so. ``training=plain`` with
  ``data.flow`` on is the control of distill/joint: the same clips (the index starts at frame 1)
  and, since the flow network draws its initial weights from a forked generator, the same
  shuffles and flips; a distill student matches it when its teacher comes from
  ``distill.teacher_ckpt`` (the teacher epochs draw shuffles of their own).
* What Eq. 2–4 do to the spatial gradient (logged as ``train/<mode>_factor_mean|std``,
  `TopHeavyModule.training_step`): distill weights sample i's ∂L_s,i by 1 + 2(L_s,i − L_t,i)
  (`distillation_factors`); joint multiplies the batch's ∂L̄_s by 1 + L̄_t, one factor per step,
  which Adam's per-parameter normalisation all but removes. The flow scale ``data.flow.bound``
  sets L_t, hence both factors (docs/results.md, Top-Heavy). ``scripts/topheavy_factors.py``
  reads them back from a checkpoint of a run trained without a logger.
* ``val/loss`` (checkpoint selection, held-out normal frames) is the spatial network's L_s in
  every mode — the network that is scored; the temporal L_t is logged beside it when there is
  flow.
* Test-time score (the paper defines none: its Eq. 2 "anomaly score" is a training term): the
  spatial network's mean absolute error of each frame of the clip (``clip.target=all``;
  ``score_error=mse``: the mean squared error); a frame covered by several clips gets their mean
  (``eval.window_aggregation=mean``; clip stride ``data.test_window_step``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from vad.checkpoint import load_submodule
from vad.data.datamodule import ClipBatch
from vad.models.base import VADModule
from vad.models.blocks.conv3d_ae import ConvAutoencoder3D, LayerSpec

TRAINING_MODES = ("plain", "distill", "joint")
SCORE_ERRORS = ("mae", "mse")


def top_heavy_layers(encoder_channels: Sequence[int] = (32, 48, 64, 64),
                     decoder_channels: Sequence[int] = (48, 32, 32),
                     decoder: str = "table") -> list[LayerSpec]:
    """Table 1 of paper 004, row by row (``decoder="prose"``: §III.A's one-3D-two-2D decoder)."""
    if decoder not in ("table", "prose"):
        raise ValueError(f"net.decoder must be table or prose, got {decoder!r}")
    e1, e2, e3, e4 = encoder_channels
    d1, d2, d3 = decoder_channels
    k2d, k3d = (1, 3, 3), (3, 3, 3)
    return [
        LayerSpec("conv1", "conv", k2d, (1, 1, 1), e1),
        LayerSpec("pool1", "pool", (1, 2, 2), (1, 2, 2)),
        LayerSpec("conv2", "conv", k2d, (1, 1, 1), e2),
        LayerSpec("pool2", "pool", (1, 2, 2), (1, 2, 2)),
        LayerSpec("conv3", "conv", k3d, (1, 1, 1), e3),
        LayerSpec("pool3", "pool", (2, 2, 2), (2, 2, 2)),
        LayerSpec("conv4", "conv", k3d, (1, 1, 1), e4),
        LayerSpec("tconv1", "tconv", k3d, (2, 2, 2), d1),
        LayerSpec("tconv2", "tconv", k3d if decoder == "table" else k2d, (1, 2, 2), d2),
        LayerSpec("tconv3", "tconv", k2d, (1, 2, 2), d3),
        LayerSpec("out", "conv", k2d, (1, 1, 1), 0),  # C channels, sigmoid
    ]


def top_heavy_ae(in_channels: int = 1, encoder_channels: Sequence[int] = (32, 48, 64, 64),
                 decoder_channels: Sequence[int] = (48, 32, 32), decoder: str = "table",
                 norm: bool = True, negative_slope: float = 0.3) -> ConvAutoencoder3D:
    """The Top-Heavy autoencoder of Table 1: ``(B, C, T, H, W)`` → same, in [0, 1]; T must
    divide by 2 and H, W by 8."""
    return ConvAutoencoder3D(in_channels,
                             top_heavy_layers(encoder_channels, decoder_channels, decoder),
                             norm=norm, negative_slope=negative_slope)


# -- losses ---------------------------------------------------------------------------------------
def reconstruction_loss(x: torch.Tensor, recon: torch.Tensor) -> torch.Tensor:
    """Eq. (1): L = mean |f(x) − x| per sample, over C×T×H×W → ``(B,)``."""
    return (recon.float() - x.float()).abs().flatten(1).mean(1)


def distillation_terms(l_s: torch.Tensor, l_t: torch.Tensor) -> dict[str, torch.Tensor]:
    """Eq. (2) s = (L_t − L_s)² per sample and Eq. (3) L = mean_i (L_s + s) (the paper sums).

    Args:
        l_s: ``(B,)`` the spatial network's per-sample loss (with gradient).
        l_t: ``(B,)`` the frozen teacher's per-sample loss (no gradient).
    """
    score = (l_t.detach() - l_s).pow(2)
    return {"loss": (l_s + score).mean(), "spatial": l_s.mean(), "temporal": l_t.mean(),
            "distill": score.mean()}


def distillation_factors(l_s: torch.Tensor, l_t: torch.Tensor) -> torch.Tensor:
    """What Eq. (3) does to the spatial gradient: ∂/∂θ [L_s + (L_t − L_s)²] = (1 + 2(L_s − L_t))
    ∂L_s/∂θ, so sample i's reconstruction gradient is weighted by 1 + 2(L_s,i − L_t,i) → ``(B,)``
    (a factor of 1 everywhere is plain training; their spread across the batch is all that Adam's
    per-parameter normalisation leaves of them)."""
    return 1.0 + 2.0 * (l_s.detach() - l_t.detach())


def joint_factors(l_t: torch.Tensor) -> torch.Tensor:
    """What Eq. (4) on batch means does to the spatial gradient, read per sample: 1 + L_t,i
    → ``(B,)``. Their batch mean is the one factor 1 + L̄_t on ∂L̄_s/∂θ; their spread is what a
    per-sample reading of Eq. 4 would add."""
    return 1.0 + l_t.detach()


def joint_loss(l_s: torch.Tensor, l_t: torch.Tensor) -> dict[str, torch.Tensor]:
    """Eq. (4): L(θ₁, θ₂) = L_s(θ₁) + L_s(θ₁)·L_t(θ₂), on batch-mean losses (both trained).

    Its spatial gradient is (1 + L_t)·∂L_s/∂θ₁: one factor for the whole batch
    (`TopHeavyModule.training_step` logs it), which Adam's normalisation all but removes.
    """
    return {"loss": l_s + l_s * l_t, "spatial": l_s, "temporal": l_t}


@dataclass
class DistillConfig:
    """The teacher schedule (our choice; the paper trains the teacher first, then the student)."""

    teacher_epochs: int = 1
    teacher_ckpt: str | None = None


class TopHeavyModule(VADModule):
    """The spatial autoencoder (``net``) and, for ``distill``/``joint``, the temporal one.

    Args:
        clip: Clip shape (``length`` 16 in the paper; ``target`` must be ``all``).
        net: Arguments of the network builder (`top_heavy_ae`), without ``in_channels`` for
            the temporal network, which takes the 2 flow channels.
        optimizer: Optimizer partial (paper: Adam, lr 1e-5, 30 epochs).
        scheduler: Optional LR-scheduler partial.
        compile: ``torch.compile`` the networks (`VADModule`).
        channels_last: Channels-last convolution weights (`VADModule`).
        training: ``plain`` (frames only), ``distill`` (Eq. 2–3) or ``joint`` (Eq. 4).
        distill: `DistillConfig` arguments.
        flip: Random horizontal flip of training clips (§IV; ours: per clip, p = 1/2).
        score_error: Test-time per-frame error, ``mae`` or ``mse`` (our choice; `score`).
    """

    clip_target = "all"
    build = staticmethod(top_heavy_ae)
    initial_weights = ("distill.teacher_ckpt",)

    def __init__(
        self,
        clip: dict,
        net: dict,
        optimizer,
        scheduler=None,
        training: str = "plain",
        distill: dict | None = None,
        flip: bool = True,
        score_error: str = "mae",
        compile: bool = False,
        channels_last: bool = False,
    ) -> None:
        super().__init__(clip, optimizer, scheduler, compile, channels_last)
        self.save_hyperparameters(logger=False, ignore=["optimizer", "scheduler"])
        if training not in TRAINING_MODES:
            raise ValueError(f"model.training must be one of {TRAINING_MODES}, got {training!r}")
        self.training_mode = training
        self.distill_cfg = DistillConfig(**(distill or {}))
        self.flip = flip
        if score_error not in SCORE_ERRORS:
            raise ValueError(f"model.score_error must be one of {SCORE_ERRORS}, got {score_error!r}")
        self.score_error = score_error
        self.net = self.build(**net)
        self.temporal = None
        if training != "plain":
            # Its initial weights come from a forked generator, so that the spatial network
            # sees the same random draws (shuffles, flips) as plain training on the same data
            # (data.flow on: the same clips), which makes that run the control of this one.
            with torch.random.fork_rng(devices=[]):
                self.temporal = self.build(**{**net, "in_channels": 2})
        if training == "distill" and self.distill_cfg.teacher_ckpt:
            load_submodule(self.temporal, self.distill_cfg.teacher_ckpt, "temporal")

    def forward(self, clip: torch.Tensor) -> torch.Tensor:
        """The spatial network, the only one at inference."""
        return self.net(clip)

    # -- phases -----------------------------------------------------------------------------------
    @property
    def teacher_phase(self) -> bool:
        """distill only: True while the temporal (teacher) network is being trained."""
        return (self.training_mode == "distill"
                and self.current_epoch < self.distill_cfg.teacher_epochs)

    @property
    def teacher_frozen(self) -> bool:
        return self.training_mode == "distill" and not self.teacher_phase

    def freeze_teacher(self) -> None:
        self.temporal.requires_grad_(False)
        self.temporal.eval()

    def train(self, mode: bool = True):
        super().train(mode)
        if self.temporal is not None and self.teacher_frozen:
            self.temporal.eval()  # a frozen teacher keeps its BatchNorm statistics
        return self

    def on_train_epoch_start(self) -> None:
        if self.teacher_frozen:
            self.freeze_teacher()

    # -- losses -----------------------------------------------------------------------------------
    def _flow(self, batch: ClipBatch) -> torch.Tensor:
        if batch.flow is None:
            raise ValueError(f"model.training={self.training_mode} needs optical flow in the "
                             "batches: the data configs turn data.flow on for distill/joint; "
                             "it was set to null (give data.flow={bound:8}; vad/data/flow.py)")
        return batch.flow

    @staticmethod
    def flip_batch(batch: ClipBatch, flip: torch.Tensor) -> ClipBatch:
        """Mirror the clips (and flows, u → 1 − u) of the samples where ``flip`` ``(B,)`` is True."""
        where = flip[:, None, None, None, None]
        batch = batch._replace(clip=torch.where(where, batch.clip.flip(-1), batch.clip))
        if batch.flow is not None:
            mirrored = batch.flow.flip(-1)
            mirrored = torch.cat([1.0 - mirrored[:, :1], mirrored[:, 1:]], dim=1)
            batch = batch._replace(flow=torch.where(where, mirrored, batch.flow))
        return batch

    def losses(self, batch: ClipBatch) -> dict[str, torch.Tensor]:
        """Eq. (1) (plain), Eq. (2)–(3) (distill) or Eq. (4) (joint) on ``batch``."""
        x = batch.clip
        if self.training_mode == "plain":
            return {"loss": reconstruction_loss(x, self.net(x)).mean()}
        flow = self._flow(batch)
        if self.training_mode == "joint":
            l_s = reconstruction_loss(x, self.net(x))
            l_t = reconstruction_loss(flow, self.temporal(flow))
            return {**joint_loss(l_s.mean(), l_t.mean()), "factors": joint_factors(l_t)}
        if self.teacher_phase:  # distill, step 1: the teacher learns the flow
            l_t = reconstruction_loss(flow, self.temporal(flow)).mean()
            return {"loss": l_t, "temporal": l_t}
        with torch.no_grad():  # distill, step 2: the frozen teacher's per-sample loss
            l_t = reconstruction_loss(flow, self.temporal(flow))
        l_s = reconstruction_loss(x, self.net(x))
        return {**distillation_terms(l_s, l_t), "factors": distillation_factors(l_s, l_t)}

    def training_step(self, batch: ClipBatch, batch_idx: int) -> torch.Tensor:
        """One step of `losses`, logged; with the flow stream also the per-sample factors of
        the spatial gradient (``"factors"``): ``train/<mode>_factor_mean`` and ``_std`` over
        the batch: distill 1 + 2(L_s,i − L_t,i) (`distillation_factors`), joint 1 + L_t,i
        (`joint_factors`)."""
        if self.flip:
            batch = self.flip_batch(batch, torch.rand(len(batch.clip), device=batch.clip.device)
                                    < 0.5)
        losses = self.losses(batch)
        factors = losses.pop("factors", None)
        self.log_losses("train", losses, len(batch.clip))
        if factors is not None:
            for name, value in (("mean", factors.mean()), ("std", factors.std(correction=0))):
                self.log(f"train/{self.training_mode}_factor_{name}", value, on_step=True,
                         on_epoch=True, batch_size=len(batch.clip))
        return losses["loss"]

    def validation_step(self, batch: ClipBatch, batch_idx: int) -> None:
        """``val/loss`` = the spatial L_s (module docstring); ``val/loss_temporal`` with flow."""
        losses = {"loss": reconstruction_loss(batch.clip, self.net(batch.clip)).mean()}
        if self.temporal is not None and batch.flow is not None:
            losses["temporal"] = reconstruction_loss(batch.flow, self.temporal(batch.flow)).mean()
        self.log_losses("val", losses, len(batch.clip))

    # -- score ------------------------------------------------------------------------------------
    def score(self, batch: ClipBatch) -> torch.Tensor:
        """Per-frame mean absolute (``score_error=mae``, Eq. 1's error) or squared (``mse``)
        error of the spatial reconstruction → ``(B, T)`` (ours: the paper defines no score)."""
        error = batch.clip.float() - self.net(batch.clip).float()
        error = error.abs() if self.score_error == "mae" else error.square()
        return error.mean(dim=(1, 3, 4))
