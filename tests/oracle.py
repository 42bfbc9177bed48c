"""Oracle models and data for end-to-end tests of the shared evaluation.

An oracle is a `VADModule` whose score is a known function of the clip's target frames, so every
number the real pipeline (datamodule → ``test_step`` → `FrameEvaluator` → ``metrics.json`` /
``scores.csv``) writes can be computed by hand in the test:

* ``source="labels"``: the frame's own label, read from the datamodule's test records (a side
  table; AUC 1.0 whatever the clip shape);
* ``source="frame"``: the frame index the batch reports;
* ``source="pixels"``: the frame index read back from the clip's pixels (with `CountingDataModule`,
  whose frame ``t`` has every pixel equal to ``t``), so the clip's content must match
  ``batch.frames``;
* a callable ``records -> per-video arrays``: any side table (e.g. labels shifted by a frame).

The score is multiplied by the parameter ``gain`` (1 at start; the only weight), so that
`SpoilLastEpoch` can make the last checkpoint rank every frame backwards.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from functools import partial

import lightning as L
import numpy as np
import torch
from torch import nn

from vad.data.datamodule import VideoDataModule
from vad.data.records import VideoRecord
from vad.models.base import VADModule


class OracleModule(VADModule):
    """Scores each target frame by a side table (see the module docstring).

    Args:
        clip: Clip shape; ``target`` must match the class (`ORACLES` picks it).
        source: ``labels``, ``frame``, ``pixels`` or ``records -> list of per-video arrays``.
        sleep: Seconds to wait in each test batch (for the inference-speed check).
        optimizer: Optimizer partial; default SGD with lr 0 (the weights never learn).
    """

    clip_target = "last"

    def __init__(self, clip: dict, source: str | Callable = "labels", sleep: float = 0.0,
                 optimizer=None) -> None:
        super().__init__(clip, optimizer or partial(torch.optim.SGD, lr=0.0))
        self.source = source
        self.sleep = sleep
        self.gain = nn.Parameter(torch.tensor(1.0))
        self.table: torch.Tensor | None = None

    def losses(self, batch) -> dict[str, torch.Tensor]:
        # 0 while the oracle ranks frames right (gain 1); 4 once `SpoilLastEpoch` turns it round.
        return {"loss": (self.gain - 1) ** 2 + 0 * batch.clip.mean()}

    def on_test_start(self) -> None:
        if self.source in ("frame", "pixels"):
            return
        records = self.trainer.datamodule.test_records
        if self.source == "labels":
            values = [r.labels.astype(np.float64) for r in records]
        else:
            values = [np.asarray(v, np.float64) for v in self.source(records)]
        table = np.full((len(values), max(len(v) for v in values)), np.nan)
        for i, v in enumerate(values):
            table[i, :len(v)] = v
        self.table = torch.from_numpy(table)

    def score(self, batch) -> torch.Tensor:
        if self.sleep:
            time.sleep(self.sleep)
        if self.source == "frame":
            values = batch.frames.double()
        elif self.source == "pixels":
            positions = torch.as_tensor(self.clip_spec.target_positions)
            values = torch.round(batch.clip[:, 0, positions, 0, 0].double() * 255)
        else:
            values = self.table.to(batch.frames.device)[batch.video.long()[:, None],
                                                        batch.frames.long()]
        return self.gain * values


class OracleAllModule(OracleModule):
    clip_target = "all"


class OracleNextModule(OracleModule):
    clip_target = "next"


ORACLES = {"last": OracleModule, "all": OracleAllModule, "next": OracleNextModule}


def oracle(clip: dict, **kwargs) -> OracleModule:
    """The oracle for ``clip``'s target kind."""
    return ORACLES[clip.get("target", "last")](clip=clip, **kwargs)


class SpoilLastEpoch(L.Callback):
    """Turns the oracle round (gain −1, val/loss 4) at the start of the last training epoch: the
    last checkpoint then ranks every frame backwards (AUC 0), the best one (val/loss 0) right."""

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        if trainer.current_epoch == trainer.max_epochs - 1:
            with torch.no_grad():
                pl_module.gain.fill_(-1.0)


class CountingDataModule(VideoDataModule):
    """In-memory videos whose frame ``t`` has every pixel equal to ``t`` (uint8).

    Args:
        test_labels: One label array per test video (its length is the video's length).
        train_lengths: Frames of each training video.
        size: Frame side.
        **kwargs: `VideoDataModule` arguments.
    """

    def __init__(self, test_labels: list, train_lengths: tuple[int, ...] = (20,), size: int = 4,
                 **kwargs) -> None:
        super().__init__(image_size=None, cache_dir=None, **kwargs)
        self.test_labels = [np.asarray(y, bool) for y in test_labels]
        self.train_lengths = train_lengths
        self.size = size

    def _video(self, n: int) -> np.ndarray:
        return np.broadcast_to(np.arange(n, dtype=np.uint8)[:, None, None, None],
                               (n, self.size, self.size, 1)).copy()

    def load_records(self, split: str) -> list[VideoRecord]:
        if split == "train":
            return [VideoRecord(f"train{i}", self._video(n), n)
                    for i, n in enumerate(self.train_lengths)]
        return [VideoRecord(f"v{i}", self._video(len(y)), len(y), labels=y)
                for i, y in enumerate(self.test_labels)]
