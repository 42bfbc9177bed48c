"""Numerical guards of the shared evaluation: a wrong number fails loudly instead of printing."""

from __future__ import annotations

import json
from functools import partial
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.helpers import run_vad, tiny_synthetic, tiny_trainer
from tests.test_oracle import run_oracle
from vad.data.synthetic import SyntheticDataModule
from vad.evaluation.scores import normalize
from vad.models.base import VADModule


def test_a_nan_score_fails_the_evaluation_naming_video_and_frame(tmp_path: Path):
    clip = {"length": 3, "target": "last"}
    dm = SyntheticDataModule(clip=clip, num_train_videos=1, num_test_videos=2,
                             frames_per_video=20, size=16, image_size=None)

    def scores_with_a_nan(records):
        scores = [np.arange(r.num_frames, dtype=float) for r in records]
        scores[1][12] = np.nan
        return scores

    with pytest.raises(FloatingPointError, match="video '02' frame 12"):
        run_oracle(tmp_path, dm, clip, source=scores_with_a_nan)
    assert not (tmp_path / "metrics.json").exists()  # nothing half-computed is written


def test_min_over_max_refuses_negative_scores():
    """(e − e_min)/e_max with e_max < 0 would rank the video backwards."""
    with pytest.raises(ValueError, match="scores >= 0"):
        normalize(np.array([-3.0, -2.0, -1.0]), "min_over_max")
    np.testing.assert_allclose(normalize(np.array([-3.0, -2.0, -1.0]), "minmax"), [0, 0.5, 1])


def test_a_failing_run_ends_with_one_message_and_exit_status_1(tmp_path: Path):
    result = run_vad("train", "model=desdnet", "data=ped2", f"data.root={tmp_path / 'nope'}",
                     f"hydra.run.dir={tmp_path / 'run'}", cwd=tmp_path)
    output = result.stdout + result.stderr
    assert result.returncode == 1
    assert "Traceback" not in output and output.count("does not exist") == 1
    assert "docs/datasets.md#ucsd-ped1-and-ped2" in output
    assert "Traceback" in (tmp_path / "run" / "error.txt").read_text()
    assert json.loads((tmp_path / "run" / "run.json").read_text())["status"] == "failed"


class _LossTurnsNaN(VADModule):
    """A one-parameter method whose training loss is NaN from step ``nan_from`` on."""

    def __init__(self, nan_from: int) -> None:
        super().__init__(clip={"length": 2, "target": "last"},
                         optimizer=partial(torch.optim.SGD, lr=0.1))
        self.weight = torch.nn.Parameter(torch.ones(()))
        self.nan_from = nan_from

    def losses(self, batch):
        recon = self.weight * batch.clip.mean()
        if self.global_step >= self.nan_from:
            recon = recon * float("nan")
        return {"loss": recon + 1.0, "recon": recon, "compact": self.weight.detach() * 0}


def test_a_nan_training_loss_stops_the_run_naming_step_terms_and_last_checkpoint(tmp_path: Path):
    from vad.callbacks.checkpoint import LastCheckpoint

    trainer = tiny_trainer(2, enable_checkpointing=True,
                           callbacks=[LastCheckpoint(str(tmp_path), every_n_train_steps=1)])
    dm = tiny_synthetic({"length": 2, "target": "last"}, frames_per_video=20)
    with pytest.raises(FloatingPointError) as error:
        trainer.fit(_LossTurnsNaN(nan_from=3), datamodule=dm)
    message = str(error.value)
    assert "step 3 (epoch 0)" in message
    assert "loss=nan" in message and "recon=nan" in message and "compact=0" in message
    assert f"Last good checkpoint: {tmp_path / 'last.ckpt'}" in message
    assert torch.load(tmp_path / "last.ckpt", weights_only=False)["global_step"] == 3


class _ManualLossTurnsNaN(_LossTurnsNaN):
    """The same, stepping its optimizer itself and logging afterwards (as STD-AE does): the
    optimizer hook sees the previous step's losses, so the batch's end must check."""

    def __init__(self, nan_from: int) -> None:
        super().__init__(nan_from)
        self.automatic_optimization = False

    def training_step(self, batch, batch_idx):
        optimizer = self.optimizers()
        self.batches_seen = getattr(self, "batches_seen", 0) + 1
        losses = self.losses(batch)
        optimizer.zero_grad()
        self.manual_backward(losses["loss"])
        optimizer.step()
        self.log_losses("train", losses, len(batch.clip))


def test_a_nan_loss_stops_a_method_that_steps_its_own_optimizer():
    trainer = tiny_trainer(2)
    dm = tiny_synthetic({"length": 2, "target": "last"}, frames_per_video=20)
    module = _ManualLossTurnsNaN(nan_from=3)
    with pytest.raises(FloatingPointError, match=r"recon=nan"):
        trainer.fit(module, datamodule=dm)
    assert module.batches_seen == 4  # caught at the end of the NaN batch, not one batch later
