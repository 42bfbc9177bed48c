"""`VADModule`: what every method's LightningModule shares, and nothing else.

A method implements `losses` (a dict of named loss terms with the total under ``"loss"``) and
`score` (``(B, n_targets)`` anomaly scores, higher = more anomalous, for the clip's target
frames), plus `configure_optimizers` through the ``optimizer``/``scheduler`` partials. This class
logs the loss terms and turns test/predict batches into `FrameScores` for the shared evaluation
(`vad.evaluation.evaluator.FrameEvaluator`), which does all labelling, normalisation and metrics.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import NamedTuple

import lightning as L
import torch
from lightning.fabric.utilities.apply_func import move_data_to_device
from torch import nn

from vad.checkpoint import check_method
from vad.data.clips import ClipSpec
from vad.data.datamodule import ClipBatch


def config_section(cls, value):
    """A method's config section (``loss:``, ``svdd:``, ...) as its dataclass ``cls``: from
    ``None`` (all defaults), a mapping of its fields, or an instance."""
    if value is None:
        return cls()
    if isinstance(value, cls):
        return value
    if isinstance(value, Mapping):
        return cls(**value)
    raise TypeError(f"expected a mapping or {cls.__name__}, got {type(value).__name__}")


class FrameScores(NamedTuple):
    """Scores of one batch, keyed by (video, frame) and by the clip that produced them."""

    video: torch.Tensor  # (B,)
    frames: torch.Tensor  # (B, n_targets)
    score: torch.Tensor  # (B, n_targets), higher = more anomalous
    index: torch.Tensor  # (B,) clip index, to drop duplicates padded in by distributed samplers


# torch.compile's modes (model.compile=<mode>); model.compile=true is "default".
COMPILE_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")


class VADModule(L.LightningModule):
    """Base LightningModule: loss logging, validation on held-out normal clips, test scoring.

    A method sets ``clip_target``, the target kind its clips must have (`vad.data.clips`).

    Args:
        clip: The clip shape the data config reads (``${model.clip}``); validated here.
        optimizer: A ``torch.optim`` optimizer partial (``_partial_: true`` in the config).
        scheduler: An optional LR-scheduler partial.
        compile: ``torch.compile`` the forward of every sub-network (GPU recipes; the first
            steps are slower while it compiles): ``true`` in torch.compile's default mode, or
            a mode by name (`COMPILE_MODES`): ``reduce-overhead`` replays CUDA graphs, for
            steps bound by kernel launches (ConvSTAE at batch 3: 10 time steps × 3 ConvLSTM
            layers). Checkpoints are unaffected.
        channels_last: Store convolution weights channels-last (``channels_last_3d`` for 3D
            convolutions), the layout tensor cores prefer; convolutions then run channels-last.
    """

    clip_target = "last"
    # Model config keys naming a checkpoint whose weights initialise a sub-network (e.g.
    # STD-AE's phase-1 autoencoders): dropped from the recipe saved in checkpoints (vad.checkpoint).
    initial_weights: tuple[str, ...] = ()

    def __init__(
        self,
        clip: dict,
        optimizer: Callable[..., torch.optim.Optimizer],
        scheduler: Callable[..., torch.optim.lr_scheduler.LRScheduler] | None = None,
        compile: bool | str = False,
        channels_last: bool = False,
    ) -> None:
        super().__init__()
        if isinstance(compile, str) and compile not in COMPILE_MODES:
            raise ValueError(f"model.compile must be true, false or one of {COMPILE_MODES}, "
                             f"got {compile!r}")
        self.clip_spec = ClipSpec(**clip)
        if self.clip_spec.target != self.clip_target:
            raise ValueError(f"{type(self).__name__} scores the clip target "
                             f"{self.clip_target!r}: set model.clip.target={self.clip_target}")
        self.optimizer_factory = optimizer
        self.scheduler_factory = scheduler
        self.compile_networks = compile
        self.channels_last = channels_last
        self._configured = False

    # -- what a method implements -----------------------------------------------------------------
    def losses(self, batch: ClipBatch) -> dict[str, torch.Tensor]:
        """Named loss terms for ``batch``; the total is under ``"loss"``."""
        raise NotImplementedError

    def score(self, batch: ClipBatch) -> torch.Tensor:
        """``(B, n_targets)`` anomaly scores of the batch's target frames, higher = anomalous."""
        raise NotImplementedError

    # -- speed switches (model.compile, model.channels_last) -------------------------------------
    def configure_model(self) -> None:
        """Apply ``channels_last`` and ``compile`` once, before the first fit/test step."""
        if self._configured:
            return
        self._configured = True
        if self.channels_last:
            for module in self.modules():
                if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
                    module.to(memory_format=torch.channels_last)
                elif isinstance(module, (nn.Conv3d, nn.ConvTranspose3d)):
                    module.to(memory_format=torch.channels_last_3d)
        if self.compile_networks:
            # The forward of each sub-network, not the modules themselves: wrapping a module
            # would rename its state-dict keys and break checkpoints across the switch.
            mode = self.compile_networks if isinstance(self.compile_networks, str) else None
            for network in self.children():
                if any(True for _ in network.parameters()):
                    network.forward = torch.compile(network.forward, mode=mode)

    # -- passes over the training set in hooks (a centre, K-means samples) ---------------------
    @torch.no_grad()
    def training_batches(self, loader=None, max_batches: int | None = None
                         ) -> Iterator[ClipBatch]:
        """The training clips as a step sees them (on the device, float), for a pass inside a
        hook: the module in eval mode under the trainer's precision, a fresh loader from the
        datamodule unless ``loader`` is given, at most ``max_batches`` and never more than an
        epoch's batches (``fast_dev_run``, ``limit_train_batches``)."""
        datamodule = getattr(self._trainer, "datamodule", None) if self._trainer else None
        if loader is None:
            loader = (datamodule.train_dataloader() if datamodule is not None
                      else self.trainer.train_dataloader)
        if self._trainer is not None and self.trainer.num_training_batches != float("inf"):
            limit = int(self.trainer.num_training_batches)
            max_batches = limit if max_batches is None else min(max_batches, limit)
        context = (self.trainer.precision_plugin.forward_context() if self._trainer is not None
                   else torch.autocast(self.device.type, enabled=False))
        was_training = self.training
        self.eval()
        try:
            with context:
                for i, batch in enumerate(loader):
                    if max_batches is not None and i >= max_batches:
                        break
                    yield (datamodule.transfer(batch, self.device) if datamodule is not None
                           else move_data_to_device(batch, self.device))
        finally:
            self.train(was_training)

    # -- shared steps -----------------------------------------------------------------------------
    def log_losses(self, stage: str, losses: dict[str, torch.Tensor], batch_size: int) -> None:
        """Log each term as ``<stage>/loss_<name>`` (the total as ``<stage>/loss``); the training
        terms are kept for `on_train_batch_end`'s check, for every method."""
        on_step = stage == "train"
        if on_step:
            self._train_losses = {name: value.detach() for name, value in losses.items()}
        for name, value in losses.items():
            key = f"{stage}/{name}" if name == "loss" else f"{stage}/loss_{name}"
            self.log(key, value, on_step=on_step, on_epoch=True, prog_bar=name == "loss",
                     batch_size=batch_size, sync_dist=not on_step)

    # A NaN or infinite training loss stops the run: checked outside the step, so that the step
    # itself never waits for the device (tests/test_datapath.py), and before the optimizer
    # applies it; methods that step the optimizers themselves log afterwards, so for them the
    # check comes at the batch's end.
    def on_before_optimizer_step(self, optimizer) -> None:
        self._check_finite_loss()

    def on_train_batch_end(self, outputs, batch, batch_idx: int) -> None:
        if not self.automatic_optimization:  # else on_before_optimizer_step has checked it
            self._check_finite_loss()

    def _check_finite_loss(self) -> None:
        losses = getattr(self, "_train_losses", None)
        if losses is not None and not torch.isfinite(losses["loss"]).all():
            raise FloatingPointError(self._nonfinite_loss_message(losses))

    def _nonfinite_loss_message(self, losses: dict[str, torch.Tensor]) -> str:
        terms = ", ".join(f"{name}={float(value.float().mean()):.4g}"
                          for name, value in losses.items())
        checkpoints = []
        if self._trainer is not None:
            for callback in self.trainer.checkpoint_callbacks:
                checkpoints += Path(callback.dirpath).glob("*.ckpt") if callback.dirpath else []
        last_good = (max(checkpoints, key=lambda p: p.stat().st_mtime) if checkpoints
                     else "none yet")
        return (f"training loss is not finite at step {self.global_step} (epoch "
                f"{self.current_epoch}): {terms}. Last good checkpoint: {last_good}. Try a lower "
                "model.optimizer.lr, or trainer.precision=32-true on a GPU; ckpt_path=last resumes")

    def training_step(self, batch: ClipBatch, batch_idx: int) -> torch.Tensor:
        losses = self.losses(batch)
        self.log_losses("train", losses, len(batch.clip))
        return losses["loss"]

    def validation_step(self, batch: ClipBatch, batch_idx: int) -> None:
        self.log_losses("val", self.losses(batch), len(batch.clip))

    def test_step(self, batch: ClipBatch, batch_idx: int) -> FrameScores:
        return FrameScores(batch.video, batch.frames, self.score(batch).float(), batch.index)

    def predict_step(self, batch: ClipBatch, batch_idx: int) -> FrameScores:
        return self.test_step(batch, batch_idx)

    def error_map(self, batch: ClipBatch) -> torch.Tensor | None:
        """Per-pixel error ``(B, n_targets, H, W)`` of the target frames (higher = more anomalous)
        for heat-map overlays (`vad.detect` ``render=true``); None for a method without one."""
        return None

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        # A checkpoint of another method fails here with one line, not with a state-dict diff.
        check_method(checkpoint, f"{type(self).__module__}.{type(self).__qualname__}")

    @property
    def learns(self) -> bool:
        """Whether the method has trainable parameters (reference scores such as `framediff`
        have none)."""
        return any(p.requires_grad for p in self.parameters())

    def on_train_batch_start(self, batch: ClipBatch, batch_idx: int) -> int | None:
        # Nothing to optimise: the fit stops at its first batch, after `on_fit_start` (where a
        # reference such as `background` reads the training frames), and still writes its
        # checkpoints, so evaluation and detection treat it like any other method.
        if not self.learns:
            self.trainer.should_stop = True
            return -1
        return None

    def configure_optimizers(self):
        if not self.learns:
            return None
        optimizer = self.optimizer_factory(params=self.parameters())
        if self.scheduler_factory is None:
            return optimizer
        return {"optimizer": optimizer,
                "lr_scheduler": {"scheduler": self.scheduler_factory(optimizer=optimizer),
                                 "interval": "epoch"}}
