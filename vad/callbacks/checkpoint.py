"""`LastCheckpoint`: ``checkpoints/last.ckpt``, the checkpoint a killed run resumes from."""

from __future__ import annotations

import os
import time
from pathlib import Path

import lightning as L
from lightning.pytorch.callbacks import Checkpoint

from vad.resume import LAST
from vad.utils.rng import rng_states, set_rng_states


class LastCheckpoint(Checkpoint):
    """Writes ``<dirpath>/last.ckpt`` after every training epoch and, if asked, also every
    ``every_n_train_steps`` steps and/or every ``every_n_minutes`` minutes inside an epoch.

    Each write goes to a temporary file that is then renamed, so a run killed while writing keeps
    the previous ``last.ckpt``. The callback's own state, saved in every checkpoint, is the global
    random generators' state at that moment (`vad.utils.rng`), put back when a run resumes, so a
    resumed run draws the same numbers as one never stopped (the position inside an epoch and the
    epoch's clip order are the training loader's state: `vad.data.datamodule.ResumableDataLoader`).
    A `Checkpoint` subclass, so Lightning runs it after the method's epoch-end hooks and after the
    checkpoint that selects the best epoch, whose choice it then holds.

    Args:
        dirpath: The run's ``checkpoints/`` folder.
        every_n_train_steps: Also write every this many optimizer steps (None: off).
        every_n_minutes: Also write when this many minutes have passed since the last write
            (None: off).
    """

    def __init__(self, dirpath: str, every_n_train_steps: int | None = None,
                 every_n_minutes: float | None = None) -> None:
        if every_n_train_steps is not None and every_n_train_steps < 1:
            raise ValueError(f"callbacks.last_checkpoint.every_n_train_steps must be >= 1 or "
                             f"null, got {every_n_train_steps}")
        if every_n_minutes is not None and every_n_minutes <= 0:
            raise ValueError(f"callbacks.last_checkpoint.every_n_minutes must be > 0 or null, "
                             f"got {every_n_minutes}")
        self.dirpath = Path(dirpath)
        self.every_n_train_steps = every_n_train_steps
        self.every_n_minutes = every_n_minutes
        self._last_write = time.monotonic()
        self._last_step = -1

    @property
    def path(self) -> Path:
        return self.dirpath / LAST

    @property
    def last_model_path(self) -> str:
        """The written ``last.ckpt`` (empty before the first write), as `ModelCheckpoint` names it."""
        return str(self.path) if self.path.exists() else ""

    def state_dict(self) -> dict:
        return {"rng": rng_states()}

    def load_state_dict(self, state_dict: dict) -> None:
        set_rng_states(state_dict["rng"])

    def on_train_batch_end(self, trainer: L.Trainer, *args) -> None:
        step = trainer.global_step
        due_by_steps = (self.every_n_train_steps is not None and step != self._last_step
                        and step % self.every_n_train_steps == 0)
        due_by_time = (self.every_n_minutes is not None
                       and time.monotonic() - self._last_write >= 60 * self.every_n_minutes)
        if due_by_steps or due_by_time:
            self.save(trainer)

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.save(trainer)

    def save(self, trainer: L.Trainer) -> None:
        if trainer.fast_dev_run or trainer.sanity_checking:
            return
        temporary = self.path.with_name(f".{LAST}.tmp")
        # The full state, said explicitly (Lightning logs a line on every save otherwise).
        trainer.save_checkpoint(temporary, weights_only=False)
        if trainer.is_global_zero:
            os.replace(temporary, self.path)
        self._last_write, self._last_step = time.monotonic(), trainer.global_step
