"""No command unpickles a checkpoint beyond the weights-only allow-list (vad/checkpoint.py):
a checkpoint carrying a malicious pickle is refused, with one line, by every command that takes
``ckpt_path``, and the code it carries never runs."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch

from tests.helpers import REPO, compose_config, run_vad
from vad.checkpoint import SafeCheckpointIO, UnsafeCheckpointError, load_checkpoint_file
from vad.detect import detect
from vad.evaluate import evaluate
from vad.export import export
from vad.train import build, train

TINY = ["data.size=32", "data.num_train_videos=2", "data.num_test_videos=1",
        "data.frames_per_video=24", "data.val_fraction=0.2", "trainer.max_epochs=1", "seed=0",
        "eval.plots=false", "test=false"]


class CreatesFile:
    """Unpickled, it opens ``path`` for writing, creating it: the stand-in for any code a
    pickle can run."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self):
        return open, (str(self.path), "w")


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory) -> tuple[Path, Path, Path]:
    """``(clean, poisoned, marker)``: a tiny run's last.ckpt, the same with a malicious object
    among its callback states, and the file that object creates when it is unpickled."""
    root = tmp_path_factory.mktemp("safety")
    train(compose_config(root / "run", *TINY))
    clean = root / "run" / "checkpoints" / "last.ckpt"
    checkpoint = load_checkpoint_file(clean)
    marker = root / "marker"
    checkpoint["callbacks"]["Evil"] = CreatesFile(marker)
    poisoned = root / "poisoned.ckpt"
    torch.save(checkpoint, poisoned)
    # The poison works: an unrestricted load runs it.
    torch.load(poisoned, weights_only=False)
    assert marker.exists()
    marker.unlink()
    return clean, poisoned, marker


def refused(call, marker: Path) -> str:
    with pytest.raises(UnsafeCheckpointError) as info:
        call()
    message = str(info.value)
    assert "refusing to load" in message and "\n" not in message
    assert "open" in message.split("allow-list (")[1]  # the refused global is named (io.open)
    assert not marker.exists()
    return message


def test_every_command_refuses_a_malicious_checkpoint(checkpoints, tmp_path):
    clean, poisoned, marker = checkpoints
    refused(lambda: evaluate(compose_config(tmp_path / "eval", f"ckpt_path={poisoned}",
                                            config_name="eval")), marker)
    refused(lambda: detect(compose_config(tmp_path / "detect", f"ckpt_path={poisoned}",
                                          f"input={tmp_path}", config_name="detect")), marker)
    refused(lambda: export(compose_config(tmp_path / "export", f"ckpt_path={poisoned}",
                                          config_name="export")), marker)
    # Training from a checkpoint file (Lightning reads it in fit, through SafeCheckpointIO) ...
    refused(lambda: train(compose_config(tmp_path / "train", *TINY, f"ckpt_path={poisoned}")),
            marker)
    # ... and resuming a run whose last.ckpt was replaced (ckpt_path=last: the CLI test).
    run = tmp_path / "resume"
    (run / "checkpoints").mkdir(parents=True)
    (run / "checkpoints" / "last.ckpt").write_bytes(poisoned.read_bytes())
    refused(lambda: train(compose_config(run, *TINY, f"ckpt_path={run}")), marker)
    # The clean checkpoint loads.
    assert "state_dict" in load_checkpoint_file(clean)


@pytest.mark.parametrize("given", ["file", "last"])
def test_cli_refusal_is_one_line_and_exit_1(checkpoints, tmp_path, given: str):
    """``vad.train ckpt_path=<file>`` and a resume (``ckpt_path=last``) from the command line."""
    _, poisoned, marker = checkpoints
    logs = tmp_path / "logs"
    last = logs / "train" / "runs" / "2026-01-01_00-00-00" / "checkpoints" / "last.ckpt"
    last.parent.mkdir(parents=True)
    last.write_bytes(poisoned.read_bytes())
    ckpt = {"file": poisoned, "last": "last"}[given]
    proc = run_vad("train", *TINY, f"ckpt_path={ckpt}", "~logger", f"paths.log_dir={logs}",
                   cwd=tmp_path, timeout=300)
    assert proc.returncode == 1
    lines = [line for line in (proc.stdout + proc.stderr).splitlines()
             if "UnsafeCheckpointError" in line]
    path = poisoned if given == "file" else last
    assert len(lines) == 1 and f"refusing to load {path}" in lines[0], proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr and not marker.exists()


def test_trainers_read_checkpoints_weights_only(tmp_path):
    _, _, trainer, _ = build(compose_config(tmp_path, "trainer.max_epochs=1"))
    assert isinstance(trainer.strategy.checkpoint_io, SafeCheckpointIO)


def test_no_source_loads_with_weights_only_false():
    """(Saving with ``weights_only=False``, i.e. the whole training state, is fine.)"""
    pattern = re.compile(r"weights_only\s*=\s*False")
    offenders = [f"{path.relative_to(REPO)}: {line.strip()}" for folder in ("vad", "scripts")
                 for path in (REPO / folder).rglob("*.py")
                 for line in path.read_text().splitlines()
                 if pattern.search(line) and "save_checkpoint" not in line]
    assert offenders == []
