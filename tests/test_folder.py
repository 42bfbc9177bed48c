"""`data=folder`: a user's own footage (video files, frame folders, globs), time spans, optional
labels, and the shared evaluation without labels."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from tests.helpers import compose_config
from vad.data.decode import CorruptVideoError, decode_record
from vad.data.folder import FolderDataError, FolderDataModule, parse_bound
from vad.data.labels import LabelCountError
from vad.data.layouts import DatasetLayoutError
from vad.evaluate import evaluate
from vad.train import train

FPS = 10.0
NUM_FRAMES = 60
SIZE = 32
CLIP = {"length": 4, "target": "last"}


def _frames(num_frames: int, seed: int = 0) -> np.ndarray:
    """A bright square sliding over noise: ``(N, SIZE, SIZE, 3)`` uint8."""
    rng = np.random.default_rng(seed)
    frames = rng.integers(40, 80, (num_frames, SIZE, SIZE, 3), dtype=np.uint8)
    for t in range(num_frames):
        x = t % (SIZE - 8)
        frames[t, 12:20, x:x + 8] = 220
    return frames


def write_video(path: Path, frames: np.ndarray, fps: float = FPS) -> Path:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps,
                             (frames.shape[2], frames.shape[1]))
    for frame in frames:
        writer.write(frame[..., ::-1])
    writer.release()
    return path


def write_frame_folder(folder: Path, frames: np.ndarray) -> Path:
    folder.mkdir(parents=True)
    for i, frame in enumerate(frames):  # not zero-padded: natural order must hold
        cv2.imwrite(str(folder / f"{i}.png"), frame[..., ::-1])
    return folder


@pytest.fixture(scope="module")
def footage(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("footage")
    write_video(root / "cam.mp4", _frames(NUM_FRAMES))
    write_frame_folder(root / "frames" / "door", _frames(20, seed=1))
    (root / "videos").mkdir()
    write_video(root / "videos" / "a.mp4", _frames(30, seed=2))
    write_video(root / "videos" / "b.mp4", _frames(25, seed=3))
    return root


def _module(**kwargs) -> FolderDataModule:
    return FolderDataModule(clip=CLIP, image_size=None, grayscale=True, **kwargs)


def test_every_form_of_footage(footage):
    file = _module(train=str(footage / "cam.mp4"), test=str(footage / "frames/door"))
    assert [(r.name, r.num_frames) for r in file.records("train")] == [("cam", NUM_FRAMES)]
    assert [(r.name, r.num_frames) for r in file.records("test")] == [("door", 20)]
    assert [p.name for p in file.records("test")[0].source[:3]] == ["0.png", "1.png", "2.png"]
    assert file.records("test")[0].labels is None
    folder = _module(train=str(footage / "videos"), test=[str(footage / "videos/b.mp4"),
                                                          str(footage / "frames/*")])
    assert [(r.name, r.num_frames) for r in folder.records("train")] == [("a", 30), ("b", 25)]
    assert [r.name for r in folder.records("test")] == ["b", "door"]
    glob = _module(train=str(footage / "videos/*.mp4"), test=str(footage / "cam.mp4"))
    assert [r.name for r in glob.records("train")] == ["a", "b"]


def test_time_spans_cut_exact_frames(footage):
    video = str(footage / "cam.mp4")
    dm = _module(train=video, train_span=["0s", "3s"], test=video, test_span=["3s", None])
    train, test = dm.records("train")[0], dm.records("test")[0]
    assert (train.num_frames, train.frame_range) == (30, (0, 30))  # 3 s at 10 fps
    assert (test.num_frames, test.frame_range) == (30, (30, 60))
    assert "cam frames 30-59" in dm.label_source
    whole = decode_record(_module(train=video, test=video).records("test")[0], None, True)
    np.testing.assert_array_equal(decode_record(test, None, True), whole[30:60])
    mixed = _module(train=video, train_span=["1.5s", 40], test=video,
                    test_span=["0.05min", "5.5s"]).records
    assert mixed("train")[0].frame_range == (15, 40)
    assert mixed("test")[0].frame_range == (30, 55)


def test_frame_folder_spans_use_data_fps(footage):
    door = str(footage / "frames/door")
    with pytest.raises(FolderDataError, match=r"needs a frame rate.*data.fps"):
        _module(train=door, train_span=[0, "1s"], test=door).records("train")
    dm = _module(train=door, train_span=[0, "1s"], test=door, test_span=["1s", None], fps=5)
    assert dm.records("train")[0].num_frames == 5
    test = dm.records("test")[0]
    assert test.num_frames == 15
    whole = decode_record(_module(train=door, test=door).records("test")[0], None, True)
    np.testing.assert_array_equal(decode_record(test, None, True), whole[5:])


def test_labels_describe_whole_videos_and_follow_the_span(footage, tmp_path):
    truth = np.zeros(NUM_FRAMES, np.uint8)
    truth[40:50] = 1
    np.save(tmp_path / "cam.npy", truth)
    video = str(footage / "cam.mp4")
    dm = _module(train=video, test=video, test_span=["3s", None], labels=str(tmp_path / "cam.npy"))
    labels = dm.records("test")[0].labels
    assert len(labels) == 30 and np.flatnonzero(labels).tolist() == list(range(10, 20))
    assert "concatenated 0/1 frame labels" in dm.label_source
    np.save(tmp_path / "short.npy", truth[:30])
    with pytest.raises(LabelCountError, match="before data.test_span"):
        _module(train=video, test=video, labels=str(tmp_path / "short.npy")).records("test")


@pytest.mark.parametrize("value, frames", [(12, 12), ("12", 12), ("12f", 12), ("2s", 20),
                                           ("0.5min", 300), ("0.01h", 360), (None, None)])
def test_parse_bound(value, frames):
    assert parse_bound(value, FPS, "span") == frames


def test_clear_errors(footage, tmp_path):
    video = str(footage / "cam.mp4")
    with pytest.raises(FolderDataError, match=r"glob pattern '.*nowhere/\*.mp4' matches nothing"):
        _module(train=str(tmp_path / "nowhere/*.mp4"), test=video).records("train")
    with pytest.raises(FolderDataError, match=r"path '.*missing.mp4' matches nothing"):
        _module(train=video, test=str(tmp_path / "missing.mp4")).records("test")
    with pytest.raises(FolderDataError, match=r"data=folder needs data.train="):
        _module(test=video).records("train")
    with pytest.raises(FolderDataError, match=r"keeps no frame of .*cam.mp4 \(60 frames at 10 fps"):
        _module(train=video, train_span=["10s", None], test=video).records("train")
    with pytest.raises(FolderDataError, match=r"cannot read '5 minutes'"):
        _module(train=video, train_span=[0, "5 minutes"], test=video).records("train")
    (tmp_path / "notes.txt").write_text("not a video")
    with pytest.raises(FolderDataError, match=r"notes.txt is not a video file"):
        _module(train=str(tmp_path / "notes.txt"), test=video).records("train")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetLayoutError, match=r"empty holds no videos"):
        _module(train=str(tmp_path / "empty"), test=video).records("train")
    with pytest.raises(FolderDataError, match=r"two videos are named 'cam'"):
        _module(train=[video, video], test=video).records("train")


def test_zero_frame_video_is_refused(tmp_path):
    empty = write_video(tmp_path / "blank.mp4", np.zeros((0, SIZE, SIZE, 3), np.uint8))
    # OpenCV writes a container without a video stream: decord cannot open it.
    with pytest.raises(CorruptVideoError, match=r"cannot open video .*blank.mp4"):
        _module(train=str(empty), test=str(empty)).records("train")


def _train_on_footage(tmp_path: Path, footage: Path, *overrides: str) -> tuple[dict, Path]:
    video = footage / "cam.mp4"
    cfg = compose_config(
        tmp_path, "data=folder", "model=convstae", f"data.train={video}", "data.train_span=[0s,3s]",
        f"data.test={video}", "data.test_span=[3s,null]", "data.image_size=[32,32]",
        "data.num_workers=0", "data.batch_size=4", "model.clip.length=4", "trainer.max_epochs=1",
        "+trainer.limit_train_batches=2", "+trainer.limit_val_batches=1", *overrides)
    metrics, _ = train(cfg)
    return metrics, tmp_path


def test_train_and_score_without_labels(footage, tmp_path, caplog):
    with caplog.at_level("INFO"):
        metrics, run = _train_on_footage(tmp_path, footage, "eval.threshold=0.5")
    assert "no labels" in caplog.text and "AUC, EER" in caplog.text
    assert not any("auc" in key or "eer" in key for key in metrics)
    saved = json.loads((run / "metrics.json").read_text())
    assert saved["labelled"] is False and "auc_micro" not in saved
    assert saved["num_frames"] == 30 and saved["excluded_frames"] == 0  # target "all": every frame
    assert "no labels; test cam frames 30-59" in saved["label_source"]
    rows = (run / "scores.csv").read_text().splitlines()
    assert rows[0] == "video,frame,score,score_normalized,label" and len(rows) == 31
    assert all(row.startswith("cam,") and row.endswith(",") for row in rows[1:])
    assert (run / "plots" / "regularity_cam.png").exists() and not (run / "plots/roc.png").exists()
    # A threshold still gives detections, but no precision/recall without labels.
    assert (run / "detections.csv").exists() and "detection_precision" not in saved
    # Re-scoring the saved scores (no model) reads the empty label column back as "no labels".
    rescored = evaluate(compose_config(tmp_path / "rescore", f"scores_csv={run / 'scores.csv'}",
                                       "ckpt_path=unused", config_name="eval"))
    assert rescored["test/num_frames"] == 30 and not any("auc" in key for key in rescored)


def test_train_and_score_with_labels(footage, tmp_path):
    truth = np.zeros(NUM_FRAMES, np.uint8)
    truth[45:52] = 1
    np.save(tmp_path / "cam_labels.npy", truth)
    metrics, run = _train_on_footage(tmp_path, footage, f"data.labels={tmp_path}/cam_labels.npy",
                                     "eval.plots=false")
    assert 0.0 <= metrics["test/auc_micro"] <= 1.0
    saved = json.loads((run / "metrics.json").read_text())
    assert saved["labelled"] is True and saved["num_anomalous_frames"] == 7
