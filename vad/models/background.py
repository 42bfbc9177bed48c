"""Distance to the mean training frame: the no-learning *appearance* reference (ours; no paper).

Idea: a fixed camera's normal footage has a typical look; the mean of every training frame, B,
is that look without learning anything (moving pedestrians blur into the background). A frame is
scored by how far it is from B,

    s(t) = pool_{x,y} |I_t(x, y) − B(x, y)|^p,

so it flags what is *there* (a car, a crowd, a bag) rather than what moves, which
`vad.models.framediff` flags. Together they say how much of a learned method's number needs
learning at all (docs/results.md).

Config (all ours): p ``power``; ``pooling`` ``mean`` over pixels or ``patch_max``, the worst
``patch_size`` square (as DESDnet's Eq. 5 score). "Training" is one pass over the training clips
in `on_fit_start` that averages them into B (a buffer saved in the checkpoint); no parameter is
trained (`VADModule` ends the fit at its first batch).
"""

from __future__ import annotations

import torch

from vad.data.datamodule import ClipBatch
from vad.models.base import VADModule
from vad.models.blocks.scoring import check_pooling, pooled_error


class BackgroundModule(VADModule):
    """``s(t) = pool |I_t − B|^p`` with B the mean training frame (see the module docstring).

    Args:
        clip: Clip shape: ``length`` 1, ``target`` last.
        power: p, the exponent of the per-pixel distance.
        pooling: ``mean`` or ``patch_max``.
        patch_size: Patch side in pixels for ``patch_max``.
        optimizer, scheduler, compile, channels_last: Unused (nothing is trained); accepted so
            that the shared config groups compose.
    """

    clip_target = "last"

    def __init__(
        self,
        clip: dict,
        power: int = 2,
        pooling: str = "mean",
        patch_size: int = 16,
        optimizer=None,
        scheduler=None,
        compile: bool = False,
        channels_last: bool = False,
    ) -> None:
        super().__init__(clip, optimizer, scheduler, compile, channels_last)
        self.save_hyperparameters(logger=False, ignore=["optimizer", "scheduler"])
        check_pooling(power, pooling, patch_size)
        if self.clip_spec.length != 1:
            raise ValueError("the background distance scores single frames: set model.clip.length=1")
        self.power, self.pooling, self.patch_size = power, pooling, patch_size
        self.register_buffer("mean_frame", torch.zeros(0))  # B, (C, H, W) once fitted

    def on_fit_start(self) -> None:
        """B = the mean of every training frame (one pass; flips and strides as the loader gives)."""
        total, count = None, 0
        for batch in self.training_batches():
            frames = batch.clip[:, :, -1].float()
            total = frames.sum(0) if total is None else total + frames.sum(0)
            count += len(frames)
        self.mean_frame = total / count

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        # B's size is the data's, unknown when the module is built: take it from the checkpoint.
        key = prefix + "mean_frame"
        if key in state_dict:
            self.mean_frame = state_dict[key].new_empty(state_dict[key].shape)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def distance(self, batch: ClipBatch) -> torch.Tensor:
        """``|I_t − B|^p`` per pixel and channel → ``(B, C, H, W)``."""
        if self.mean_frame.numel() == 0:
            raise RuntimeError("model=background has no mean training frame yet: train it "
                               "(train=true) or load a checkpoint of a trained run")
        frames = batch.clip[:, :, -1]
        if frames.shape[1:] != self.mean_frame.shape:
            raise ValueError(f"frames of shape {tuple(frames.shape[1:])} against a mean training "
                             f"frame of shape {tuple(self.mean_frame.shape)}: test at the size "
                             f"and colour the run was trained at")
        return (frames - self.mean_frame).abs().pow(self.power)

    def score(self, batch: ClipBatch) -> torch.Tensor:
        """s(t) of each clip's frame → ``(B, 1)``."""
        return pooled_error(self.distance(batch), self.pooling, self.patch_size)[:, None]

    def error_map(self, batch: ClipBatch) -> torch.Tensor:
        """The per-pixel distance summed over channels → ``(B, 1, H, W)`` (heat maps)."""
        return self.distance(batch).sum(1, keepdim=True)

    def losses(self, batch: ClipBatch) -> dict[str, torch.Tensor]:
        """The mean score of normal clips, logged as ``val/loss`` (nothing minimises it)."""
        return {"loss": self.score(batch).mean()}
