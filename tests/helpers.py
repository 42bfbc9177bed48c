"""Shared test helpers: config composition, skip conditions, and the evaluation by hand."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import lightning as L
import numpy as np
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from lightning import Callback
from omegaconf import DictConfig, open_dict

import vad  # noqa: F401  (resolvers)

REPO = Path(__file__).resolve().parents[1]
CONF = REPO / "conf"
SHARED_DATA = REPO.parent / "shared" / "data"


def compose_config(output_dir: Path, *overrides: str, config_name: str = "train") -> DictConfig:
    """Compose the real ``conf/`` tree as ``python -m vad.<config_name>`` would, writing to
    ``output_dir`` and logging nowhere."""
    GlobalHydra.instance().clear()
    with initialize_config_dir(str(CONF), version_base="1.3"):
        cfg = compose(config_name, overrides=list(overrides), return_hydra_config=True)
    with open_dict(cfg):
        cfg.paths.root_dir = str(REPO)
        cfg.paths.output_dir = str(output_dir)
        cfg.paths.log_dir = str(output_dir)
        cfg.paths.cache_dir = str(output_dir / "cache")
        cfg.hydra.runtime.output_dir = str(output_dir)
        cfg.hydra.job.num = 0
    HydraConfig().set_config(cfg)
    return cfg


# -- evaluation written out by hand (independent of vad.evaluation) ------------------------------
def rank_auc(scores, labels) -> float:
    """Mann-Whitney AUC: P(anomalous frame scores above a normal one), ties counting half."""
    scores, labels = np.asarray(scores, float), np.asarray(labels, bool)
    pos, neg = scores[labels], scores[~labels]
    greater = (pos[:, None] > neg[None, :]).sum() + 0.5 * (pos[:, None] == neg[None, :]).sum()
    return float(greater / (len(pos) * len(neg)))


def minmax(scores):
    """(s − min)/(max − min), zeros for a constant video."""
    scores = np.asarray(scores, float)
    span = scores.max() - scores.min()
    return (scores - scores.min()) / span if span > 0 else np.zeros_like(scores)


def gaussian_smooth(scores, sigma: float):
    """Gaussian smoothing with σ frames, kernel cut at 4σ, ends repeated (edge padding)."""
    radius = int(4 * sigma + 0.5)
    offsets = np.arange(-radius, radius + 1)
    kernel = np.exp(-0.5 * (offsets / sigma) ** 2)
    padded = np.pad(np.asarray(scores, float), radius, mode="edge")
    return np.convolve(padded, kernel / kernel.sum(), mode="valid")


def tiny_trainer(epochs: int, **kwargs):
    """A quiet CPU Trainer without checkpoints or validation, for unit-scale fits."""
    import lightning as L

    defaults = dict(accelerator="cpu", logger=False, enable_checkpointing=False,
                    enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0,
                    limit_val_batches=0)
    return L.Trainer(max_epochs=epochs, **{**defaults, **kwargs})


def tiny_synthetic(clip: dict, frames_per_video: int, **kwargs):
    """A one-video-per-split synthetic DataModule of 16x16 frames, all training frames used."""
    from vad.data.synthetic import SyntheticDataModule

    defaults = dict(clip=clip, num_train_videos=1, num_test_videos=1,
                    frames_per_video=frames_per_video, size=16, batch_size=4, eval_batch_size=8,
                    val_fraction=0.0)
    return SyntheticDataModule(**{**defaults, **kwargs})


def tiny_run(run_dir: Path, *overrides: str) -> Path:
    """A run folder as ``python -m vad.train`` leaves it (``checkpoints/last.ckpt`` and
    ``.hydra/config.yaml``) for a small synthetic model trained for two steps; its checkpoint."""
    from omegaconf import OmegaConf

    from vad.train import train

    cfg = compose_config(run_dir, "trainer.max_epochs=1", "+trainer.limit_train_batches=2",
                         "+trainer.limit_val_batches=1", "test=false", "~logger",
                         "data.num_train_videos=1", "data.num_test_videos=2",
                         "data.frames_per_video=40", "data.size=32", *overrides)
    train(cfg)
    (run_dir / ".hydra").mkdir(exist_ok=True)
    OmegaConf.save({k: v for k, v in cfg.items() if k != "hydra"}, run_dir / ".hydra/config.yaml")
    return run_dir / "checkpoints" / "last.ckpt"


def wandb_records(path: Path):
    """The records of a ``.wandb`` file as W&B's own protobuf ``Record`` messages.

    The file is W&B's transaction log: a 7-byte header (``:W&B``, magic, version), then LevelDB
    log blocks of 32 KiB, each record split into chunks with a 7-byte header (CRC, length, type:
    1 full, 2 first, 3 middle, 4 last) that never straddle a block.
    """
    import struct

    from wandb.proto import wandb_internal_pb2

    data = Path(path).read_bytes()
    assert data[:4] == b":W&B", f"{path} is not a W&B transaction log"
    block, pos, pending = 32768, 7, b""
    while pos + 7 <= len(data):
        if block - pos % block < 7:  # a block's tail too short for a header is padding
            pos += block - pos % block
            continue
        _crc, length, kind = struct.unpack("<IHB", data[pos:pos + 7])
        chunk, pos = data[pos + 7:pos + 7 + length], pos + 7 + length
        pending += chunk
        if kind in (1, 4):
            record = wandb_internal_pb2.Record()
            record.ParseFromString(pending)
            pending = b""
            yield record


class RankState(L.Callback):
    """For DDP tests: each process saves DESDnet's mask bank, centre and radius at the end of
    fitting to ``<path>/rank<r>.pt``."""

    def __init__(self, path: str) -> None:
        self.path = Path(path)

    def on_train_end(self, trainer, pl_module) -> None:
        import torch

        state = {"masks": pl_module.masks_next, "center": pl_module.hypersphere.center,
                 "radius": pl_module.hypersphere.radius}
        self.path.mkdir(parents=True, exist_ok=True)
        torch.save({k: v.detach().cpu().clone() for k, v in state.items()},
                   self.path / f"rank{trainer.global_rank}.pt")


# -- the command line, as a user runs it ----------------------------------------------------------
def run_vad(task: str, *overrides: str, cwd: Path, **popen) -> subprocess.CompletedProcess:
    """``python -m vad.<task> overrides`` in a subprocess that imports this checkout's ``vad``,
    one-message errors (no ``HYDRA_FULL_ERROR``) and W&B offline; output captured as text."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "HYDRA_FULL_ERROR": "0", "WANDB_MODE": "offline"}
    return subprocess.run([sys.executable, "-m", f"vad.{task}", *overrides], cwd=cwd, env=env,
                          capture_output=True, text=True, **popen)


def multirun(cwd: Path, *overrides: str, task: str = "train",
             timeout: float = 600) -> tuple[subprocess.CompletedProcess, Path]:
    """``python -m vad.<task> -m overrides`` as a user types it, started in ``cwd`` (a fresh
    folder): no ``hydra.sweep.dir``, no ``PROJECT_ROOT``, so the sweep goes to the default
    ``<cwd>/outputs/<task_name>/multiruns/<date>_<time>_<id>/``. Returns the finished process and
    that folder (``cwd/no-sweep-dir`` when the command made none)."""
    env = {k: v for k, v in os.environ.items() if k != "PROJECT_ROOT"}
    env.update(PYTHONPATH=str(REPO), HYDRA_FULL_ERROR="0", WANDB_MODE="offline")
    result = subprocess.run([sys.executable, "-m", f"vad.{task}", "-m", *overrides], cwd=cwd,
                            env=env, capture_output=True, text=True, timeout=timeout)
    sweeps = sorted((cwd / "outputs").glob("*/multiruns/*"))  # <task_name>: train, eval
    assert len(sweeps) <= 1, sweeps
    return result, sweeps[0] if sweeps else cwd / "no-sweep-dir"


class KillAtStep(Callback):
    """SIGKILLs its own process when a training step starts with ``global_step == step``: a run
    killed by the machine, at a point a test can rely on."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_train_batch_start(self, trainer, *args) -> None:
        if trainer.global_step == self.step:
            os.kill(os.getpid(), signal.SIGKILL)
