"""Resuming a run in its own folder: ``python -m vad.train <same overrides> ckpt_path=last``.

``ckpt_path`` may be ``last`` (the newest run of this task that has a ``checkpoints/last.ckpt``),
a run folder, or a checkpoint file inside ``<run>/checkpoints/``; the run then goes on in that
folder (Hydra's run dir comes from `run_dir`), so checkpoints, logs, ``run.json`` and the W&B run
id (`wandb_run_id`) stay those of the interrupted run. These functions are OmegaConf resolvers
(registered in ``vad/__init__.py``) and run before anything is imported or written.
"""

from __future__ import annotations

import uuid
from pathlib import Path

LAST = "last.ckpt"


def run_dir(ckpt_path: str | None, runs: str, fresh: str) -> str:
    """The folder a training command writes to: the run ``ckpt_path`` resumes, else
    ``runs/fresh`` (a new run)."""
    if ckpt_path is None:
        return str(Path(runs) / fresh)
    if ckpt_path == "last":
        candidates = sorted(Path(runs).glob(f"*/checkpoints/{LAST}"),
                            key=lambda p: p.stat().st_mtime)
        if not candidates:
            raise FileNotFoundError(f"ckpt_path=last: no run under {runs} has "
                                    f"checkpoints/{LAST}; give the run folder instead")
        return str(candidates[-1].parent.parent)
    path = Path(ckpt_path)
    if path.is_dir():
        return str(path)
    if path.parent.name == "checkpoints":
        return str(path.parent.parent)
    return str(Path(runs) / fresh)  # a checkpoint from elsewhere: a new run starts from it


def checkpoint_file(ckpt_path: str | None, output_dir: str) -> str | None:
    """The file Lightning resumes from: ``<output_dir>/checkpoints/last.ckpt`` for ``last`` or a
    run folder, ``ckpt_path`` itself for a file."""
    if ckpt_path is None or (Path(ckpt_path).is_file() and ckpt_path != "last"):
        return ckpt_path
    last = Path(output_dir) / "checkpoints" / LAST
    if not last.exists():
        raise FileNotFoundError(f"ckpt_path={ckpt_path}: {last} does not exist (the run stopped "
                                "before its first checkpoint: start it again without ckpt_path)")
    return str(last)


def wandb_run_id(output_dir: str) -> str:
    """The W&B run id of the run in ``output_dir``, kept in ``<output_dir>/wandb_id`` so that a
    resumed run logs to the same W&B run."""
    path = Path(output_dir) / "wandb_id"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(uuid.uuid4().hex[:8])
    return path.read_text().strip()
