"""Numerical guards of the shared evaluation: a wrong number fails loudly instead of printing."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.test_oracle import run_oracle
from vad.data.synthetic import SyntheticDataModule
from vad.evaluation.scores import normalize


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
    command = [sys.executable, "-m", "vad.train", "model=desdnet", "data=ped2",
               f"data.root={tmp_path / 'nope'}", f"hydra.run.dir={tmp_path / 'run'}"]
    result = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True,
                            env={**os.environ, "HYDRA_FULL_ERROR": "0"})
    output = result.stdout + result.stderr
    assert result.returncode == 1
    assert "Traceback" not in output and output.count("does not exist") == 1
    assert "docs/datasets.md#ucsd-ped1-and-ped2" in output
    assert "Traceback" in (tmp_path / "run" / "error.txt").read_text()
    assert json.loads((tmp_path / "run" / "run.json").read_text())["status"] == "failed"
