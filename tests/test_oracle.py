"""End to end with an oracle model (`tests.oracle`): every number the shared evaluation writes,
checked against values computed here by hand.

The oracle runs through the real path (datamodule → ``test_step`` → `FrameEvaluator` →
``metrics.json``/``scores.csv``) for every clip target kind and with window step > 1, on the
synthetic benchmark and on the fake Ped2 layouts; and through ``vad.train`` for the checkpoint
choice.
"""

from __future__ import annotations

import csv
import json
import math
import time
from pathlib import Path

import lightning as L
import numpy as np
import pytest
from omegaconf import OmegaConf, open_dict

from tests.fakes_fixtures import make_fakes_module
from tests.helpers import compose_config, gaussian_smooth, minmax, rank_auc
from tests.oracle import CountingDataModule, oracle
from vad.data.ped import Ped2DataModule
from vad.data.synthetic import SyntheticDataModule, generate_split
from vad.evaluation.evaluator import FrameEvaluator
from vad.evaluation.scores import segments

SYNTHETIC = dict(num_train_videos=1, num_test_videos=3, frames_per_video=40, size=32, seed=0)

# (clip, test window step): every target kind, and window steps > 1.
CASES = [
    ({"length": 4, "target": "last"}, 1),
    ({"length": 4, "target": "last"}, 3),
    ({"length": 4, "target": "all"}, 3),
    ({"length": 3, "target": "next", "future_offset": 2}, 1),
    ({"length": 3, "target": "next", "future_offset": 1}, 4),
]
CASE_IDS = [f"{c['target']}-T{c['length']}-step{s}" for c, s in CASES]


# -- what the evaluation must produce, worked out without vad ---------------------------------
def scorable_frames(num_frames: int, clip: dict, step: int) -> list[int]:
    """Frames some test window targets: windows start every ``step`` frames, plus one window
    flush with the end of the video; a window's targets are its last frame (``last``), all its
    frames (``all``) or the frame ``future_offset`` after it (``next``)."""
    length, target = clip["length"], clip.get("target", "last")
    future = clip.get("future_offset", 1)
    span = length + (future if target == "next" else 0)
    last_start = num_frames - span
    if last_start < 0:
        return []
    starts = list(range(0, last_start + 1, step))
    if starts[-1] != last_start:
        starts.append(last_start)
    offsets = {"last": [length - 1], "all": range(length), "next": [length - 1 + future]}[target]
    return sorted({s + o for s in starts for o in offsets})


def run_oracle(output_dir: Path, datamodule, clip: dict, source="labels", sleep: float = 0.0,
               **eval_options) -> tuple[dict, list[dict]]:
    """Test the oracle with a real Trainer and the FrameEvaluator; the files it wrote."""
    evaluator = FrameEvaluator(output_dir=str(output_dir), plots=False, **eval_options)
    trainer = L.Trainer(accelerator="cpu", devices=1, logger=False, callbacks=[evaluator],
                        enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False)
    trainer.test(oracle(clip, source=source, sleep=sleep), datamodule=datamodule, verbose=False)
    metrics = json.loads((output_dir / "metrics.json").read_text())
    with (output_dir / "scores.csv").open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert metrics == {k: (None if isinstance(v, float) and math.isnan(v) else v)
                       for k, v in evaluator.metrics.items()}
    return metrics, rows


def keys(rows: list[dict]) -> list[tuple[str, int]]:
    return [(r["video"], int(r["frame"])) for r in rows]


def column(rows: list[dict], name: str) -> np.ndarray:
    return np.array([float(r[name]) for r in rows])


def ped2_fake_labels(names: list[str]) -> dict[str, np.ndarray]:
    """The fake Ped2 test labels from make_fakes' own constants (1-based inclusive ranges)."""
    labels = {}
    for name, n, ranges in zip(names, make_fakes_module.PED2_TEST, make_fakes_module.PED2_RANGES):
        y = np.zeros(n, bool)
        for first, last in ranges:
            y[first - 1:last] = True
        labels[name] = y
    return labels


# -- the oracle on the synthetic benchmark ------------------------------------------------------
@pytest.mark.parametrize(("clip", "step"), CASES, ids=CASE_IDS)
def test_label_oracle_scores_every_scorable_frame_exactly(tmp_path: Path, clip: dict, step: int):
    dm = SyntheticDataModule(clip=clip, test_window_step=step, eval_batch_size=16, **SYNTHETIC)
    metrics, rows = run_oracle(tmp_path, dm, clip)

    records = generate_split(0, 3, 40, 32, anomalous=True)  # the same videos, made afresh
    expected = [(r.name, f) for r in records for f in scorable_frames(r.num_frames, clip, step)]
    labels = {r.name: r.labels for r in records}
    truth = np.array([labels[v][f] for v, f in expected], float)
    assert keys(rows) == expected  # one row per scorable (video, frame), keyed by frame index
    np.testing.assert_array_equal(column(rows, "label"), truth)
    np.testing.assert_array_equal(column(rows, "score"), truth)  # the oracle's score is the label
    normalized = np.concatenate([minmax(truth[[v == r.name for v, _ in expected]])
                                 for r in records])
    np.testing.assert_array_equal(column(rows, "score_normalized"), normalized)

    assert metrics["excluded_frames"] == 3 * 40 - len(expected)
    assert metrics["num_frames"] == len(expected)
    assert metrics["num_anomalous_frames"] == int(truth.sum())
    assert metrics["auc_micro"] == metrics["auc_micro_raw"] == metrics["auc_macro"] == 1.0
    assert metrics["eer"] == 0.0
    assert metrics["macro_num_videos"] == 3 and metrics["macro_skipped_videos"] == []


def test_shifted_oracle_gives_the_hand_computed_auc(tmp_path: Path):
    """Scores one frame early (each frame gets its successor's label): AUC below 1, by hand."""
    clip = {"length": 4, "target": "last"}
    dm = SyntheticDataModule(clip=clip, eval_batch_size=16, **SYNTHETIC)
    metrics, rows = run_oracle(tmp_path, dm, clip,
                               source=lambda recs: [np.append(r.labels[1:], r.labels[-1])
                                                    for r in recs])
    records = generate_split(0, 3, 40, 32, anomalous=True)
    scores, labels, normalized = [], [], []
    for r in records:
        frames = np.arange(3, r.num_frames)
        s = np.append(r.labels[1:], r.labels[-1])[frames].astype(float)
        scores.append(s)
        normalized.append(minmax(s))
        labels.append(r.labels[frames])
    np.testing.assert_array_equal(column(rows, "score"), np.concatenate(scores))
    np.testing.assert_array_equal(column(rows, "label"), np.concatenate(labels))
    by_hand = rank_auc(np.concatenate(normalized), np.concatenate(labels))
    assert by_hand < 0.99
    assert metrics["auc_micro"] == pytest.approx(by_hand, abs=1e-6)
    macro = np.mean([rank_auc(s, y) for s, y in zip(normalized, labels)])
    assert metrics["auc_macro"] == pytest.approx(macro, abs=1e-6)


@pytest.mark.parametrize(("clip", "step"), CASES, ids=CASE_IDS)
def test_clip_pixels_are_the_frames_the_batch_names(tmp_path: Path, clip: dict, step: int):
    """With frame t painted t, the oracle reads each target frame's index off the clip's pixels:
    the scores must equal the frame column (clip content, target positions and frame indices
    agree), and windows of one frame average to that frame."""
    labels = [np.arange(23) % 7 < 2, np.arange(17) % 5 == 3]
    dm = CountingDataModule(test_labels=labels, clip=clip, test_window_step=step,
                            eval_batch_size=5)
    metrics, rows = run_oracle(tmp_path, dm, clip, source="pixels")
    expected = [(f"v{i}", f) for i, y in enumerate(labels)
                for f in scorable_frames(len(y), clip, step)]
    assert keys(rows) == expected
    np.testing.assert_array_equal(column(rows, "score"), [f for _, f in expected])
    np.testing.assert_array_equal(column(rows, "label"),
                                  [labels[int(v[1:])][f] for v, f in expected])
    assert metrics["excluded_frames"] == 23 + 17 - len(expected)


def test_frame_oracle_with_overlapping_windows_keeps_frame_indices(tmp_path: Path):
    clip = {"length": 5, "target": "all"}
    dm = SyntheticDataModule(clip=clip, test_window_step=2, eval_batch_size=7, **SYNTHETIC)
    _, rows = run_oracle(tmp_path, dm, clip, source="frame", normalization="none")
    np.testing.assert_array_equal(column(rows, "score"), [f for _, f in keys(rows)])
    np.testing.assert_array_equal(column(rows, "score_normalized"), [f for _, f in keys(rows)])
    assert len(rows) == 3 * 40


# -- the oracle on a fake layout ------------------------------------------------------------------
@pytest.mark.parametrize("layout", ["frames", "ucsd"])
def test_label_oracle_on_fake_ped2(tmp_path: Path, fakes_root: Path, layout: str):
    clip = {"length": 3, "target": "last"}
    dm = Ped2DataModule(root=str(fakes_root / "ped2" / layout), clip=clip, image_size=None,
                        cache_dir=None, num_workers=0, eval_batch_size=4)
    metrics, rows = run_oracle(tmp_path, dm, clip)
    names = ["01", "02", "03"] if layout == "frames" else ["Test001", "Test002", "Test003"]
    labels = ped2_fake_labels(names)
    expected = [(v, f) for v in names for f in range(2, len(labels[v]))]
    assert keys(rows) == expected
    truth = [labels[v][f] for v, f in expected]
    np.testing.assert_array_equal(column(rows, "label"), truth)
    np.testing.assert_array_equal(column(rows, "score"), truth)
    assert metrics["excluded_frames"] == 3 * 2
    assert metrics["num_frames"] == 27 - 6
    assert metrics["num_anomalous_frames"] == sum(truth) == 12 - 3  # 01: frame 1, 02: 0 and 1
    assert metrics["auc_micro"] == metrics["auc_macro"] == 1.0 and metrics["eer"] == 0.0


def test_macro_auc_skips_a_one_class_video_on_fake_ped2(tmp_path: Path, fakes_root: Path):
    """T = 6 leaves video 01 only normal frames 5..8 (its anomaly is frames 1..3): the macro AUC
    is the mean over 02 and 03 alone, not a 0.5 for 01."""
    clip = {"length": 6, "target": "last"}
    dm = Ped2DataModule(root=str(fakes_root / "ped2" / "frames"), clip=clip, image_size=None,
                        cache_dir=None, num_workers=0)
    # Video 02 ranked imperfectly: its frame 9 (normal) scores as high as its anomalies.
    table = lambda recs: [r.labels | (np.arange(r.num_frames) == 9) for r in recs]  # noqa: E731
    metrics, rows = run_oracle(tmp_path, dm, clip, source=table)
    assert metrics["excluded_frames"] == 15
    assert metrics["macro_num_videos"] == 2 and metrics["macro_skipped_videos"] == ["01"]
    # 02: frames 5..9, anomalous 5, 6, 7 (score 1); normals 8 (score 0) and 9 (score 1, a tie).
    auc_02 = rank_auc(np.array([1.0, 1, 1, 0, 1]), np.array([1, 1, 1, 0, 0], bool))
    assert auc_02 == 0.75
    assert metrics["auc_macro"] == pytest.approx((auc_02 + 1.0) / 2, abs=1e-6)


@pytest.mark.parametrize("direction", ["regularity", "anomaly"])
def test_normalised_then_smoothed_then_thresholded_on_fake_ped2(tmp_path: Path, fakes_root: Path,
                                                                 direction: str):
    clip = {"length": 3, "target": "last"}
    dm = Ped2DataModule(root=str(fakes_root / "ped2" / "frames"), clip=clip, image_size=None,
                        cache_dir=None, num_workers=0)
    values = lambda n, y: 3 + 2 * y + 0.25 * (np.arange(n) % 3)  # noqa: E731
    sigma, theta = 1.5, 0.3
    metrics, rows = run_oracle(
        tmp_path, dm, clip, source=lambda recs: [values(r.num_frames, r.labels) for r in recs],
        normalization="minmax", smoothing_sigma=sigma, threshold=theta, score_direction=direction)
    labels = ped2_fake_labels(["01", "02", "03"])
    raw = {v: values(len(y), y)[2:] for v, y in labels.items()}
    smoothed = {v: gaussian_smooth(minmax(s), sigma) for v, s in raw.items()}  # normalise first
    np.testing.assert_allclose(column(rows, "score"), np.concatenate(list(raw.values())), rtol=1e-7)
    np.testing.assert_allclose(column(rows, "score_normalized"),
                               np.concatenate(list(smoothed.values())), rtol=1e-6, atol=1e-7)
    truth = np.concatenate([y[2:] for y in labels.values()])
    assert metrics["auc_micro"] == pytest.approx(
        rank_auc(np.concatenate(list(smoothed.values())), truth), abs=1e-6)
    smoothed_raw = np.concatenate([gaussian_smooth(s, sigma) for s in raw.values()])
    assert metrics["auc_micro_raw"] == pytest.approx(rank_auc(smoothed_raw, truth), abs=1e-6)

    flags = {v: (1 - s < theta) if direction == "regularity" else (s > theta)
             for v, s in smoothed.items()}
    with (tmp_path / "detections.csv").open(newline="") as handle:
        found = [(r["video"], int(r["first_frame"]), int(r["last_frame"]))
                 for r in csv.DictReader(handle)]
    # Segments are frame indices (the first scorable frame is frame 2), as in scores.csv.
    assert found == [(v, a + 2, b + 2) for v, f in flags.items() for a, b in segments(f)]
    assert metrics["threshold"] == theta and metrics["score_direction"] == direction


def test_inference_fps_counts_the_frames_over_the_test_loop(tmp_path: Path):
    clip = {"length": 3, "target": "last"}
    labels = [np.arange(20) % 4 == 0]
    dm = CountingDataModule(test_labels=labels, clip=clip, eval_batch_size=6)
    started = time.perf_counter()
    metrics, _ = run_oracle(tmp_path, dm, clip, source="pixels", sleep=0.1)
    wall = time.perf_counter() - started
    batches = math.ceil(18 / 6)
    assert metrics["num_frames"] == 18
    assert 18 / wall <= metrics["inference_fps"] <= 18 / (batches * 0.1)


# -- checkpoint choice through vad.train ----------------------------------------------------------
def train_oracle(output_dir: Path, monitor: str | None) -> tuple[dict, dict]:
    """``vad.train`` for 2 epochs with the oracle and `SpoilLastEpoch`: epoch 0 ranks every frame
    right (val/loss 0), epoch 1 backwards (val/loss 4)."""
    from vad.train import train

    cfg = compose_config(output_dir, "trainer.max_epochs=2", "eval.plots=false", "~logger",
                         "data.num_train_videos=1", "data.num_test_videos=2",
                         "data.frames_per_video=30", "data.size=32")
    with open_dict(cfg):
        cfg.model = OmegaConf.create({"_target_": "tests.oracle.OracleModule",
                                      "clip": {"length": 3, "target": "last"}})
        cfg.callbacks.spoil = {"_target_": "tests.oracle.SpoilLastEpoch"}
        cfg.callbacks.model_checkpoint.monitor = monitor
        cfg.false_alarm_rate = None  # the oracle scores test frames only: no calibration
    return train(cfg)


@pytest.mark.parametrize(("monitor", "tested", "auc"),
                         [("val/loss", "epoch_000.ckpt", 1.0), (None, "epoch_001.ckpt", 0.0)])
def test_train_tests_the_best_checkpoint(tmp_path: Path, monitor, tested: str, auc: float):
    """With ``monitor: val/loss`` ``vad.train`` must test the best checkpoint (epoch 0: AUC 1),
    not the last weights (AUC 0); the recipes with ``monitor: null`` test the last epoch."""
    metrics, objects = train_oracle(tmp_path, monitor)
    assert metrics["test/auc_micro"] == auc
    assert Path(objects["trainer"].ckpt_path).name == tested
    assert objects["model"].gain.item() == (1.0 if auc == 1.0 else -1.0)


def test_last_ckpt_holds_the_last_epoch(tmp_path: Path):
    import torch

    train_oracle(tmp_path, "val/loss")
    last = torch.load(tmp_path / "checkpoints" / "last.ckpt", map_location="cpu",
                      weights_only=False)
    assert last["epoch"] == 1 and last["state_dict"]["gain"].item() == -1.0


@pytest.mark.parametrize("overrides", [["experiment=desdnet_ped2"], ["sweep=desdnet_erasure"]])
def test_recipes_that_test_the_last_epoch_say_so(tmp_path: Path, overrides: list[str]):
    cfg = compose_config(tmp_path, *overrides)
    assert cfg.callbacks.model_checkpoint.monitor is None
    assert cfg.callbacks.model_checkpoint.save_top_k == 1  # top-1 without a monitor: the latest
