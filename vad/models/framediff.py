"""Frame differencing: the no-learning reference every method must beat (ours; no paper).

Idea: on fixed-camera footage an anomaly (a cyclist or a car among pedestrians, a runner) is
mostly *fast motion*, and fast motion is a large change between frames. The score of frame t is
the pooled per-pixel difference to the frame k steps before it,

    s(t) = pool_{x,y} |I_t(x, y) − I_{t−k}(x, y)|^p,

with no trainable parameter; the shared evaluation normalises it min–max per video like every
learned method's score. On real Ped2 (k = 1, p = 2, mean pooling, 256×256 grey) it reaches a
frame-level AUC of 0.91 (docs/results.md), above every learned method here at the time it was
added: a learned method's number means little until it is set beside this one.

Config (all ours):

==================  ============================================================
k                   ``clip.dilation`` (frames between the two differenced frames: the
                    clip is ``[I_{t−k}, I_t]``, ``clip.length = 2``)
p                   ``power`` (1: mean absolute difference, 2: mean squared)
pool                ``pooling``: ``mean`` over pixels, or ``patch_max``, the worst
                    ``patch_size`` square as DESDnet's score (paper 000, Eq. 5)
==================  ============================================================

"Training" does nothing (`VADModule` ends the fit of a method without trainable parameters at
its first batch), so a run is the test pass plus the usual checkpoint, which `vad.evaluate` and
`vad.detect` accept like any other.
"""

from __future__ import annotations

import torch

from vad.data.datamodule import ClipBatch
from vad.models.base import VADModule
from vad.models.blocks.scoring import check_pooling, pooled_error


class FrameDiffModule(VADModule):
    """``s(t) = pool |I_t − I_{t−k}|^p`` (see the module docstring).

    Args:
        clip: Clip shape: ``length`` 2, ``target`` last, ``dilation`` k, the frame gap (1:
            consecutive frames).
        power: p, the exponent of the per-pixel difference.
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
        if self.clip_spec.length != 2:
            raise ValueError("frame differencing reads clips [I_(t-k), I_t]: set "
                             "model.clip.length=2 (and the gap k with model.clip.dilation)")
        self.power, self.pooling, self.patch_size = power, pooling, patch_size

    def difference(self, batch: ClipBatch) -> torch.Tensor:
        """``|I_t − I_{t−k}|^p`` per pixel and channel → ``(B, C, H, W)``."""
        earlier, current = batch.clip[:, :, 0], batch.clip[:, :, 1]
        return (current - earlier).abs().pow(self.power)

    def score(self, batch: ClipBatch) -> torch.Tensor:
        """s(t) of each clip's last frame → ``(B, 1)``."""
        return pooled_error(self.difference(batch), self.pooling, self.patch_size)[:, None]

    def error_map(self, batch: ClipBatch) -> torch.Tensor:
        """The per-pixel difference summed over channels → ``(B, 1, H, W)`` (heat maps)."""
        return self.difference(batch).sum(1, keepdim=True)

    def losses(self, batch: ClipBatch) -> dict[str, torch.Tensor]:
        """The mean score of normal clips, logged as ``val/loss`` (nothing minimises it)."""
        return {"loss": self.score(batch).mean()}
