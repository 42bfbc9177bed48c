"""The console when output is piped: a few plain lines, no live-bar updates."""

from __future__ import annotations

import logging
import sys

from lightning.pytorch.callbacks import RichProgressBar

from tests.helpers import tiny_synthetic, tiny_trainer
from tests.test_guards import _LossTurnsNaN
from vad.callbacks.progress import PlainProgress, console_progress


def test_a_terminal_gets_a_bar_and_a_pipe_plain_lines(capsys, caplog, monkeypatch):
    monkeypatch.setattr(sys.stdout, "isatty", lambda: True)
    assert isinstance(console_progress(5), RichProgressBar)
    monkeypatch.setattr(sys.stdout, "isatty", lambda: False)
    assert isinstance(console_progress(5), PlainProgress)

    trainer = tiny_trainer(2, enable_progress_bar=True, callbacks=[PlainProgress(0)])
    dm = tiny_synthetic({"length": 2, "target": "last"}, frames_per_video=12)
    with caplog.at_level(logging.INFO, logger="vad.callbacks.progress"):
        trainer.fit(_LossTurnsNaN(nan_from=10**6), datamodule=dm)
    lines = [r.getMessage() for r in caplog.records if r.name == "vad.callbacks.progress"]
    assert [line.split(" done")[0] for line in lines if " done " in line] == ["epoch 1/2",
                                                                               "epoch 2/2"]
    assert any("batches, train/loss" in line for line in lines)  # every 0 s: each batch
    last_epoch_loss = float(trainer.callback_metrics["train/loss_epoch"])
    assert f"train/loss_epoch {last_epoch_loss:.4g}" in lines[-1]  # this epoch's, not the last
    captured = capsys.readouterr()
    assert "\r" not in captured.out + captured.err
