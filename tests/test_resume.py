"""Exact resume: a run SIGKILLed inside an epoch and resumed with ``ckpt_path=last`` ends with
the same checkpoint choice, scores and metrics as the same run never stopped."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from tests.helpers import run_vad

# DESDnet on a tiny synthetic set: 2 x 15 training clips, batch 4 → 8 steps per epoch. The centre
# is fitted after epoch 1 and erasure masks are used from epoch 2 on, so a kill in epoch 2 needs
# the mask bank, the epoch's SVDD distances, the loader's position and the RNG to come back.
TINY = ["model=desdnet", "data.num_train_videos=2", "data.num_test_videos=2",
        "data.frames_per_video=24", "data.size=32", "data.batch_size=4", "trainer.max_epochs=3",
        "eval.plots=false", "~logger", "callbacks.last_checkpoint.every_n_train_steps=3"]
KILLED_AT = 11  # a step of epoch 2 (steps 9..16), after last.ckpt at step 9 (every 3 steps)


def test_a_killed_run_resumes_to_the_same_metrics(tmp_path: Path):
    whole = run_vad("train", *TINY, f"hydra.run.dir={tmp_path / 'whole'}", cwd=tmp_path)
    assert whole.returncode == 0, whole.stderr[-3000:]

    runs = tmp_path / "outputs" / "train" / "runs"
    killed = run_vad("train", *TINY, f"paths.log_dir={tmp_path / 'outputs'}",
                     "+callbacks.kill._target_=tests.helpers.KillAtStep",
                     f"+callbacks.kill.step={KILLED_AT}", cwd=tmp_path)
    assert killed.returncode == -9, killed.stderr[-3000:]
    (run_dir,) = runs.iterdir()
    last = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=False)
    assert last["global_step"] == 9 and last["epoch"] == 1  # written inside epoch 2
    assert json.loads((run_dir / "run.json").read_text())["status"] == "running"
    assert not (run_dir / "metrics.json").exists()

    resumed = run_vad("train", *TINY, f"paths.log_dir={tmp_path / 'outputs'}", "ckpt_path=last",
                      cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert list(runs.iterdir()) == [run_dir]  # went on in the same folder
    assert "dirpath has changed" not in resumed.stdout + resumed.stderr

    expected = json.loads((tmp_path / "whole" / "metrics.json").read_text())
    got = json.loads((run_dir / "metrics.json").read_text())
    for key in ("auc_micro", "auc_micro_raw", "auc_macro", "eer"):
        assert got[key] == expected[key], key
    assert (run_dir / "scores.csv").read_text() == (tmp_path / "whole" / "scores.csv").read_text()
    info = json.loads((run_dir / "run.json").read_text())
    assert info["status"] == "ok" and info["commands"] == 2


@pytest.mark.parametrize("given", ["last", "run", "file"])
def test_ckpt_path_names_the_run_to_go_on_with(tmp_path: Path, given: str):
    from vad.resume import checkpoint_file, run_dir

    runs = tmp_path / "runs"
    last = runs / "2026-01-01_00-00-00" / "checkpoints" / "last.ckpt"
    last.parent.mkdir(parents=True)
    last.write_bytes(b"")
    ckpt_path = {"last": "last", "run": str(last.parent.parent), "file": str(last)}[given]
    folder = run_dir(ckpt_path, str(runs), "new")
    assert folder == str(last.parent.parent)
    assert checkpoint_file(ckpt_path, folder) == str(last)
    assert run_dir(None, str(runs), "new") == str(runs / "new")
    with pytest.raises(FileNotFoundError, match="no run under"):
        run_dir("last", str(tmp_path / "empty"), "new")


def test_a_resumed_run_keeps_its_wandb_run_id(tmp_path: Path):
    from omegaconf import OmegaConf

    from tests.helpers import compose_config
    from vad.utils.loggers import WandbLogger

    cfg = compose_config(tmp_path, "logger=wandb")
    first = OmegaConf.to_container(cfg.logger.wandb, resolve=True)["id"]
    again = compose_config(tmp_path, "logger=wandb", "ckpt_path=last")
    assert OmegaConf.to_container(again.logger.wandb, resolve=True)["id"] == first
    assert (tmp_path / "wandb_id").read_text() == first
    other = compose_config(tmp_path / "other", "logger=wandb")
    assert OmegaConf.to_container(other.logger.wandb, resolve=True)["id"] != first
    # Lightning's logger passes anonymous=None, which wandb answers with a warning on every run.
    assert "anonymous" not in WandbLogger(id=first, offline=True, save_dir=str(tmp_path))._wandb_init
