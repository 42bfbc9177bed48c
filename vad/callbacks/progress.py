"""The console while a run trains: a live bar on a terminal, a few plain lines in a log file."""

from __future__ import annotations

import logging
import sys
import time

import lightning as L
from lightning.pytorch.callbacks import ModelSummary, ProgressBar, RichProgressBar

log = logging.getLogger(__name__)


def console_progress(every_n_seconds: float = 30.0) -> ProgressBar:
    """Lightning's rich progress bar when stdout is a terminal; otherwise (piped, redirected to a
    file, a cluster job's log) `PlainProgress`, since a live bar there is a flood of ``\\r``
    updates."""
    if sys.stdout.isatty():
        return RichProgressBar()
    return PlainProgress(every_n_seconds)


class PlainProgress(ProgressBar):
    """One log line per training epoch (its metrics) and, inside a long epoch, one every
    ``every_n_seconds`` (batches done, the step's loss); nothing for validation or test.

    Args:
        every_n_seconds: Seconds between lines inside an epoch.
    """

    def __init__(self, every_n_seconds: float = 30.0) -> None:
        super().__init__()
        self.every_n_seconds = every_n_seconds
        self._enabled = True
        self._epoch_start = self._last_line = 0.0
        self._finished: tuple[int, float] | None = None  # (epoch, seconds) not yet reported

    def disable(self) -> None:
        self._enabled = False

    def enable(self) -> None:
        self._enabled = True

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._report_epoch(trainer)
        self._epoch_start = self._last_line = time.monotonic()

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs,
                           batch, batch_idx: int) -> None:
        now = time.monotonic()
        if not self._enabled or now - self._last_line < self.every_n_seconds:
            return
        self._last_line = now
        loss = trainer.progress_bar_metrics.get("train/loss_step")
        loss_text = f", train/loss {loss:.4g}" if loss is not None else ""
        log.info("epoch %d: %d/%s batches%s (%.0f s)", trainer.current_epoch, batch_idx + 1,
                 _total(self.total_train_batches), loss_text, now - self._epoch_start)

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # Reported once Lightning has reduced the epoch's metrics: at the next epoch's start or
        # at the end of training.
        self._finished = (trainer.current_epoch, time.monotonic() - self._epoch_start)

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._report_epoch(trainer)

    def _report_epoch(self, trainer: L.Trainer) -> None:
        if self._finished is None or not self._enabled:
            return
        (epoch, seconds), self._finished = self._finished, None
        metrics = {k: v for k, v in trainer.progress_bar_metrics.items()
                   if not k.endswith("_step") and k != "v_num"}
        shown = ", ".join(f"{k} {v:.4g}" for k, v in sorted(metrics.items()))
        log.info("epoch %d/%d done in %.1f s: %s", epoch + 1, trainer.max_epochs, seconds, shown)


def _total(batches: int | float) -> str:
    return "?" if batches == float("inf") else str(int(batches))


class LayerSummary(ModelSummary):
    """Lightning's table of the model's layers and parameter counts at the start of fitting,
    without FLOPs: Lightning counts them only for a model with an ``example_input_array``,
    which no method sets, so its FLOPs column and "Total FLOPs" would read 0 on every run
    (``vad.bench`` measures FLOPs per frame instead). Plain text on a terminal as in a log file
    (``conf/callbacks/default.yaml``; ``trainer.enable_model_summary=false`` keeps Lightning
    from adding its own)."""

    @staticmethod
    def summarize(summary_data, total_parameters, trainable_parameters, model_size,
                  total_training_modes, total_flops, **summarize_kwargs) -> None:
        from lightning.pytorch.utilities.model_summary.model_summary import (
            _format_summary_table,
        )

        columns = [column for column in summary_data if total_flops or column[0] != "FLOPs"]
        table = _format_summary_table(total_parameters, trainable_parameters, model_size,
                                      total_training_modes, total_flops, *columns)
        if not total_flops:
            table = "\n".join(line for line in table.splitlines()
                              if not line.endswith("Total Flops"))
        logging.getLogger("lightning.pytorch.callbacks.model_summary").info("\n" + table)
