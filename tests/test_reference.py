"""The no-learning references `model=framediff` and `model=background` (vad/models/framediff.py,
vad/models/background.py): known scores on footage whose answer is known, and the whole pipeline
(train → checkpoint → `vad.evaluate` / `vad.detect`) as for a learned method."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from tests.helpers import compose_config
from vad.checkpoint import load_model
from vad.data.datamodule import ClipBatch
from vad.detect import detect
from vad.evaluate import evaluate
from vad.models.background import BackgroundModule
from vad.models.framediff import FrameDiffModule
from vad.train import train

SIZE, FRAMES = 32, 30
TINY = ["data.size=32", "data.num_train_videos=2", "data.num_test_videos=2",
        "data.frames_per_video=40", "data.val_fraction=0.2", "~logger", "eval.plots=false"]


def batch_of(frames: np.ndarray) -> ClipBatch:
    """Clips ``(B, T, H, W)`` in [0, 1] as a method sees them: ``(B, 1, T, H, W)``."""
    clip = torch.as_tensor(frames, dtype=torch.float32)[:, None]
    n = len(clip)
    return ClipBatch(clip, torch.zeros(n, dtype=torch.long), torch.zeros(n, 1, dtype=torch.long),
                     torch.arange(n))


def framediff(**kwargs) -> FrameDiffModule:
    clip = {"length": 2, "target": "last", "dilation": kwargs.pop("gap", 1)}
    return FrameDiffModule(clip, **kwargs)


def test_the_score_is_the_pooled_power_of_the_difference():
    earlier = np.zeros((SIZE, SIZE))
    current = earlier.copy()
    current[:4, :4] = 0.5  # 16 of 1,024 pixels differ by 0.5
    batch = batch_of(np.stack([earlier, current])[None])
    assert framediff(power=2).score(batch).item() == pytest.approx(16 * 0.25 / SIZE**2)
    assert framediff(power=1).score(batch).item() == pytest.approx(16 * 0.5 / SIZE**2)
    # The worst 8x8 patch holds all 16 changed pixels: 16 * 0.25 / 64.
    worst = framediff(power=2, pooling="patch_max", patch_size=8).score(batch).item()
    assert worst == pytest.approx(16 * 0.25 / 64)
    static = batch_of(np.stack([current, current])[None])
    assert framediff().score(static).item() == 0.0


def test_the_background_distance_is_to_the_mean_training_frame():
    module = BackgroundModule({"length": 1, "target": "last"}, power=2)
    module.mean_frame = torch.full((1, SIZE, SIZE), 0.25)
    frame = np.full((1, 1, SIZE, SIZE), 0.25)
    assert module.score(batch_of(frame)).item() == 0.0
    frame[..., :SIZE // 2, :] = 0.75  # half the frame 0.5 away
    assert module.score(batch_of(frame)).item() == pytest.approx(0.5 * 0.25)
    with pytest.raises(RuntimeError, match="no mean training frame"):
        BackgroundModule({"length": 1, "target": "last"}).score(batch_of(frame))


def test_a_reference_trains_nothing_and_its_checkpoint_is_evaluated_like_any_other(tmp_path):
    run = tmp_path / "run"
    metrics, objects = train(compose_config(run, "model=background", *TINY))
    module = objects["model"]
    assert not module.learns and objects["trainer"].global_step == 0
    # B is the mean of every training frame, as the loader gives them.
    frames = [batch.clip[:, :, -1] for batch in module.training_batches()]
    expected = torch.cat(frames).mean(0)
    torch.testing.assert_close(module.mean_frame, expected)
    assert {p.name for p in (run / "checkpoints").iterdir()} >= {"last.ckpt"}
    for name in ("metrics.json", "scores.csv"):
        assert (run / name).exists()
    rescored = evaluate(compose_config(tmp_path / "eval", f"ckpt_path={run}/checkpoints/last.ckpt",
                                       config_name="eval"))
    assert rescored["test/auc_micro"] == pytest.approx(metrics["test/auc_micro"], abs=1e-6)
    loaded, _ = load_model(run / "checkpoints" / "last.ckpt")
    torch.testing.assert_close(loaded.mean_frame, module.mean_frame)


def write_frames(folder: Path, square_x: list[int]) -> None:
    """Grey PNG frames of a static background with an 8x8 white square at ``square_x[t]``."""
    folder.mkdir(parents=True)
    for t, x in enumerate(square_x):
        frame = np.full((SIZE, SIZE), 60, np.uint8)
        frame[12:20, x:x + 8] = 255
        cv2.imwrite(str(folder / f"{t:03d}.png"), frame)


def framediff_run(folder: Path, gap: int) -> Path:
    """The checkpoint of ``model=framediff model.clip.dilation=<gap>`` on tiny synthetic data."""
    train(compose_config(folder, "model=framediff", f"model.clip.dilation={gap}", *TINY))
    return folder / "checkpoints" / "last.ckpt"


@pytest.fixture(scope="module")
def framediff_checkpoint(tmp_path_factory) -> Path:
    return framediff_run(tmp_path_factory.mktemp("framediff_run"), 1)


def scored_frames(out: Path, ckpt: Path, footage: Path) -> dict[int, float]:
    """{frame: raw score} of `vad.detect` on ``footage``."""
    detect(compose_config(out, f"ckpt_path={ckpt}", f"input={footage}", "threshold=0.5",
                          config_name="detect"))
    with (out / "scores.csv").open(newline="") as handle:
        return {int(row["frame"]): float(row["score"]) for row in csv.DictReader(handle)
                if row["score"] != ""}


@pytest.mark.parametrize("gap", [1, 2])
def test_a_moving_square_scores_exactly_where_and_while_it_moves(framediff_checkpoint, tmp_path,
                                                                 gap):
    # Still at x = 2 until frame 9, then 3 px right per frame for frames 10-14, then still.
    xs = [2] * 10 + [2 + 3 * i for i in range(1, 6)] + [17] * (FRAMES - 15)
    write_frames(tmp_path / "cam", xs)
    ckpt = framediff_checkpoint if gap == 1 else framediff_run(tmp_path / "run", gap)
    scores = scored_frames(tmp_path / "out", ckpt, tmp_path / "cam")
    assert min(scores) == gap  # frames 0..k-1 have no frame k steps before them
    moving = {t for t, s in scores.items() if s > 0}
    # I_t differs from I_(t-k) exactly when the square moved between t-k and t.
    assert moving == set(range(10, 15 + gap - 1))


def test_a_static_video_scores_zero_everywhere(framediff_checkpoint, tmp_path):
    write_frames(tmp_path / "still", [5] * FRAMES)
    scores = scored_frames(tmp_path / "out", framediff_checkpoint, tmp_path / "still")
    assert len(scores) == FRAMES - 1 and set(scores.values()) == {0.0}


def test_the_frame_gap_must_match_the_clip():
    with pytest.raises(ValueError, match="model.clip.length=2"):
        FrameDiffModule({"length": 3, "target": "last"})


def test_per_video_diagnostics_are_in_metrics_json(framediff_checkpoint):
    run = framediff_checkpoint.parent.parent
    metrics = json.loads((run / "metrics.json").read_text())
    videos = metrics["per_video"]
    assert [v["video"] for v in videos] == ["01", "02"]
    scores = list(csv.DictReader((run / "scores.csv").open()))
    for entry in videos:
        labels = [int(r["label"]) for r in scores if r["video"] == entry["video"]]
        assert entry["frames"] == len(labels) and entry["anomalous_frames"] == sum(labels)
        assert entry["anomalous_share"] == pytest.approx(sum(labels) / len(labels))
    assert metrics["auc_macro"] == pytest.approx(np.mean([v["auc"] for v in videos]))
    assert metrics["macro_auc"] == "skip"
