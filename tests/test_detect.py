"""Checkpoints carry their recipe; `vad.detect` scores footage with it (vad/checkpoint.py,
vad/inference.py, vad/detect.py)."""

from __future__ import annotations

import csv
import json
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from hydra.utils import instantiate

import vad.checkpoint
from tests.helpers import REPO, compose_config, tiny_trainer
from vad.checkpoint import RECIPE_KEY, RecipeError, load_model, load_recipe
from vad.data.synthetic import generate_split
from vad.detect import detect
from vad.evaluate import evaluate
from vad.inference import FootageDataModule, InputError, batch_scores, stream_video
from vad.train import train

# The default method (DESDnet) for one epoch on tiny synthetic videos: enough for everything
# but finding the anomaly (see `test_detect_finds_the_injected_anomaly`), which needs a model
# that has learned.
FRAMES, SIZE = 48, 32
TINY = [f"data.size={SIZE}", "data.num_train_videos=2", "data.num_test_videos=1",
        f"data.frames_per_video={FRAMES}", "data.val_fraction=0.2", "trainer.max_epochs=1",
        "seed=0"]
# A reduced synthetic benchmark on which it learns: 64x64, 3 training videos of 80 frames, one
# test video with an appearance anomaly (a checkered cross), 3 epochs: test AUC 0.78.
LEARNS = ["data.num_train_videos=3", "data.num_test_videos=1", "trainer.max_epochs=3", "seed=0"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    """The run dir of a tiny training run (checkpoints, metrics.json, scores.csv)."""
    run = tmp_path_factory.mktemp("detect_run")
    train(compose_config(run, *TINY, "eval.plots=false"))
    return run


def write_footage(folder: Path, frames: int, size: int) -> np.ndarray:
    """Test video 01 of the synthetic benchmark (seed 0) as lossless PNG frames; its labels."""
    (record,) = generate_split(0, 1, frames, size, anomalous=True)
    folder.mkdir(parents=True)
    for i, frame in enumerate(record.source):
        cv2.imwrite(str(folder / f"{i}.png"), frame[..., 0])
    return record.labels


@pytest.fixture(scope="module")
def footage(tmp_path_factory) -> Path:
    """The tiny run's test video as frames."""
    folder = tmp_path_factory.mktemp("footage") / "cam"
    write_footage(folder, FRAMES, SIZE)
    return folder


def best_checkpoint(run: Path) -> Path:
    return next((run / "checkpoints").glob("epoch_*.ckpt"))


def read_csv(path: Path) -> list[dict]:
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


def run_detect(out: Path, ckpt: Path, *overrides: str) -> list[dict]:
    detect(compose_config(out, f"ckpt_path={ckpt}", *overrides, config_name="detect"))
    return read_csv(out / "scores.csv")


def test_checkpoint_carries_its_recipe_and_calibrated_threshold(trained: Path):
    recipe = load_recipe(best_checkpoint(trained))
    assert recipe.config.model._target_ == "vad.models.desdnet.DESDnetModule"
    assert recipe.config.data.num_train_videos == 2
    assert recipe.config.eval.normalization == "minmax"
    pre = recipe.preprocessing
    # image_size is null in the data config (the generated size is kept): the recipe records
    # the size the model was trained at.
    assert list(pre.image_size) == [SIZE, SIZE] and pre.grayscale
    assert list(pre.value_range) == [0, 1]
    assert pre.clip.length == 5 and pre.clip.target == "last"
    assert recipe.vad_version and recipe.commit
    cal = recipe.calibration
    scores = np.asarray(cal.scores)
    # The held-out end of each training video: 2 x round(48 * 0.2) frames, of which the first
    # 4 of each are only context (clip length 5).
    assert cal.num_frames == len(scores) == 2 * (10 - 4)
    assert cal.source == "validation clips"
    assert cal.threshold == pytest.approx(np.quantile(scores, 0.99))
    assert cal.median == pytest.approx(np.median(scores))


def test_detect_equals_the_evaluation_and_streaming(trained: Path, footage: Path, tmp_path):
    folder = footage
    rows = run_detect(tmp_path / "batch", best_checkpoint(trained), f"input={folder}",
                      "render=true")
    assert len(rows) == FRAMES
    # The raw scores of the evaluation path (vad.train's test) for the same frames.
    evaluated = {int(r["frame"]): float(r["score"]) for r in read_csv(trained / "scores.csv")}
    detected = {int(r["frame"]): float(r["score"]) for r in rows if r["score"]}
    assert sorted(detected) == sorted(evaluated) == list(range(4, FRAMES))
    np.testing.assert_allclose([detected[f] for f in evaluated], list(evaluated.values()),
                               rtol=1e-5)
    # The calibrated threshold and the normalised score: anomalous exactly above it.
    result = json.loads((tmp_path / "batch" / "segments.json").read_text())
    threshold = result["threshold"]
    for r in rows[4:]:
        assert int(r["anomalous"]) == (float(r["score"]) > threshold)
        assert (float(r["score_normalized"]) > 1) == (float(r["score"]) > threshold)
    for s in result["videos"]["cam"]["segments"]:
        assert s["start_time"] == pytest.approx(s["start_frame"] / 25)
        assert s["peak_score"] == pytest.approx(max(
            float(r["score"]) for r in rows[s["start_frame"]: s["end_frame"] + 1]), rel=1e-7)
    assert (tmp_path / "batch" / "plots" / "cam.png").stat().st_size > 0
    video = cv2.VideoCapture(str(tmp_path / "batch" / "cam.mp4"))
    assert int(video.get(cv2.CAP_PROP_FRAME_COUNT)) == FRAMES
    assert not list((tmp_path / "batch").glob(".*tmp*"))  # no temporary files left

    # Streaming gives the same scores, frame by frame.
    streamed = run_detect(tmp_path / "stream", best_checkpoint(trained), f"input={folder}",
                          "stream=true")
    np.testing.assert_allclose([float(r["score"]) for r in streamed[4:]],
                               [float(r["score"]) for r in rows[4:]], rtol=1e-5)


@pytest.mark.parametrize(("method", "chunk", "step"), [
    ("convstae", 1, 1), ("convstae", 7, 1), ("convstae", 4, 3), ("latentpred", 1, 1),
    ("latentpred", 5, 1)])
def test_streaming_equals_batched(method: str, chunk: int, step: int, tmp_path):
    """Window autoencoders (every frame in T windows: released T − 1 frames late) and latent
    prediction's own streaming scorer give the batched scores (untrained weights suffice),
    frame by frame or ``chunk`` frames at a time, for every window or every ``step``-th."""
    cfg = compose_config(tmp_path, f"model={method}", "data.size=32", "data.image_size=[32,32]")
    torch.manual_seed(0)
    model = instantiate(cfg.model, _convert_="object").eval()
    if method == "latentpred":
        model.net.set_background(torch.full((1, 32, 32), 0.4))
    (record,) = generate_split(0, 1, 30, 32, anomalous=True)
    pre = {"clip": dict(cfg.model.clip), "image_size": [32, 32], "grayscale": True,
           "value_range": [0.0, 1.0], "test_window_step": step}
    datamodule = FootageDataModule([record], eval_batch_size=8, **{k: v for k, v in pre.items()})
    batched = batch_scores(tiny_trainer(1), model, datamodule)[0]
    streamed = stream_video(model, record, pre, "mean", "cpu", chunk=chunk)
    assert np.array_equal(np.isnan(batched), np.isnan(streamed))
    span = (10 if method == "convstae" else 8 + 6)  # all targets: every frame; next: t = k + 6
    assert (~np.isnan(batched)).sum() == (30 if method == "convstae" else 30 - (span - 1))
    np.testing.assert_allclose(streamed, batched, rtol=1e-5)


def test_heatmap_video_keeps_the_input_aspect_ratio(trained: Path, tmp_path):
    """A 48x32 input to a 32x32 model renders 3:2 (enlarged to 256 wide), not square."""
    (record,) = generate_split(0, 1, 12, SIZE, anomalous=True)
    folder = tmp_path / "wide"
    folder.mkdir()
    for i, frame in enumerate(record.source):
        cv2.imwrite(str(folder / f"{i}.png"), cv2.resize(frame[..., 0], (48, 32)))
    run_detect(tmp_path / "out", best_checkpoint(trained), f"input={folder}", "render=true")
    video = cv2.VideoCapture(str(tmp_path / "out" / "wide.mp4"))
    width, height = (int(video.get(p)) for p in (cv2.CAP_PROP_FRAME_WIDTH,
                                                  cv2.CAP_PROP_FRAME_HEIGHT))
    ok, frame = video.read()
    assert ok and frame.shape[:2] == (height, width) == (170, 256)
    assert width / height == pytest.approx(48 / 32, rel=0.01)


def test_window_autoencoder_edges_are_not_extreme(tmp_path):
    """A ConvSTAE scores frame 0 (one window, at position 0, where its ConvLSTM has no history)
    the highest of a static normal video; detect leaves the frames fewer windows reach than the
    others unscored (``edge_frames=drop``), so nothing at the edges is flagged and the static
    video's scores are flat."""
    run = tmp_path / "run"
    train(compose_config(run, "model=convstae", "data.size=32", "data.image_size=[32,32]",
                         "data.num_train_videos=2", "data.num_test_videos=1",
                         "data.frames_per_video=40", "trainer.max_epochs=2", "seed=0",
                         "eval.plots=false", "test=false"))
    (record,) = generate_split(0, 1, 40, 32, anomalous=False)
    static = tmp_path / "static"
    static.mkdir()
    for i in range(30):
        cv2.imwrite(str(static / f"{i}.png"), record.source[0][..., 0])
    ckpt = run / "checkpoints" / "last.ckpt"
    kept = np.array([float(r["score"]) for r in run_detect(tmp_path / "keep", ckpt,
                                                           f"input={static}", "edge_frames=keep")])
    assert np.argmax(kept) == 0  # the artefact, as the test split scores the edges
    for mode in ("batched", "streamed"):
        rows = run_detect(tmp_path / mode, ckpt, f"input={static}", "render=true",
                          f"stream={mode == 'streamed'}", "stream_chunk=4")
        scored = [float(r["score"]) for r in rows if r["score"]]
        assert [r["score"] for r in rows[:9] + rows[-9:]] == [""] * 18  # T - 1 = 9 each end
        assert len(scored) == 30 - 18
        assert np.ptp(scored) <= 1e-4 * np.mean(scored)  # the same frame: the same score
        assert not any(int(r["anomalous"]) for r in rows[:9] + rows[-9:])


def test_evaluate_needs_only_the_checkpoint(trained: Path, tmp_path):
    lone = tmp_path / "elsewhere" / "model.ckpt"
    lone.parent.mkdir()
    shutil.copy(best_checkpoint(trained), lone)
    metrics = evaluate(compose_config(tmp_path / "eval", f"ckpt_path={lone}", config_name="eval"))
    saved = json.loads((trained / "metrics.json").read_text())
    assert metrics["test/auc_micro"] == pytest.approx(saved["auc_micro"], abs=1e-6)
    module, recipe = load_model(lone)
    assert type(module).__name__ == "DESDnetModule" and not module.training


def test_a_run_without_validation_clips_calibrates_on_its_training_clips(footage: Path,
                                                                          tmp_path, monkeypatch):
    """``data.val_fraction=0`` (the DESDnet recipes): every checkpoint still carries a
    threshold, from the training clips' scores, and says so; detect needs no threshold=.
    The best checkpoint and last.ckpt hold the same weights there: they are scored once."""
    passes = []
    scores_of = vad.checkpoint.normal_scores
    monkeypatch.setattr(vad.checkpoint, "normal_scores",
                        lambda *args: passes.append(1) or scores_of(*args))
    run = tmp_path / "run"
    train(compose_config(run, *TINY, "data.val_fraction=0", "eval.plots=false", "test=false",
                         "callbacks.model_checkpoint.monitor=null"))
    assert sorted(p.name for p in (run / "checkpoints").glob("*.ckpt")) == [
        "epoch_000.ckpt", "last.ckpt"]
    assert len(passes) == 1
    assert (load_recipe(run / "checkpoints" / "epoch_000.ckpt").calibration
            == load_recipe(run / "checkpoints" / "last.ckpt").calibration)
    for ckpt in (run / "checkpoints").glob("*.ckpt"):
        cal = load_recipe(ckpt).calibration
        assert cal is not None and cal.source == "training clips", ckpt.name
        # Every frame of the 2 training videos after the first 4 (context of a clip of 5).
        assert cal.num_frames == len(cal.scores) == 2 * (FRAMES - 4)
        assert cal.threshold == pytest.approx(np.quantile(cal.scores, 0.99))
    rows = run_detect(tmp_path / "detect", run / "checkpoints" / "last.ckpt", f"input={footage}")
    assert len(rows) == FRAMES
    result = json.loads((tmp_path / "detect" / "segments.json").read_text())
    assert result["calibrated_on"] == "training clips"
    assert "training clips" in result["threshold_source"]
    assert result["threshold"] == pytest.approx(
        load_recipe(run / "checkpoints" / "last.ckpt").calibration.threshold)


def test_threshold_names_its_calibration_source():
    from vad.inference import resolve_threshold

    scores = [1.0, 2.0, 3.0, 4.0, 5.0]
    older = {"false_alarm_rate": 0.2, "threshold": 4.2, "median": 3.0, "num_frames": 5,
             "validation_scores": scores}  # written before calibrations named their source
    threshold = resolve_threshold(older, None, 0.25)  # recalibrated from the stored scores
    assert threshold.value == pytest.approx(4.0)
    assert "validation clips" in threshold.source
    training = {**older, "source": "training clips", "scores": scores}
    del training["validation_scores"]
    threshold = resolve_threshold(training, None, None)
    assert threshold.value == 4.2 and "training clips" in threshold.source
    assert "more false alarms" in threshold.source


def test_run_and_checkpoint_record_the_package_versions(trained: Path):
    import lightning
    import numpy

    from vad.results import read_run

    for versions in (json.loads((trained / "run.json").read_text())["versions"],
                     load_recipe(best_checkpoint(trained)).versions):
        assert versions["torch"] == torch.__version__
        assert versions["lightning"] == lightning.__version__
        assert versions["numpy"] == numpy.__version__ and versions["opencv"] == cv2.__version__
        assert {"python", "hydra-core", "omegaconf", "torchmetrics", "decord", "scipy"} <= set(
            versions)
    cells = read_run(trained).cells()
    assert f"torch {torch.__version__}, lightning {lightning.__version__}" in cells[-1]


def test_checkpoint_of_another_method_or_version_fails_clearly(trained: Path, tmp_path):
    ckpt = best_checkpoint(trained)
    with pytest.raises(RecipeError, match=r"holds a desdnet model .* not convstae"):
        evaluate(compose_config(tmp_path / "a", f"ckpt_path={ckpt}", "model=convstae",
                                config_name="eval"))
    checkpoint = torch.load(ckpt, map_location="cpu", weights_only=False)
    checkpoint[RECIPE_KEY]["format"] = 999
    future = tmp_path / "future.ckpt"
    torch.save(checkpoint, future)
    with pytest.raises(RecipeError, match=r"recipe format 999.*use that version, or retrain"):
        load_recipe(future)
    with pytest.raises(RecipeError, match="recipe format 999"):
        detect(compose_config(tmp_path / "b", f"ckpt_path={future}", "input=x.mp4",
                              config_name="detect"))


def test_bad_inputs_fail_with_one_line(trained: Path, tmp_path):
    ckpt = best_checkpoint(trained)
    garbage = tmp_path / "garbage.mp4"
    garbage.write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 4)
    empty = tmp_path / "empty"
    empty.mkdir()
    small = tmp_path / "small"
    small.mkdir()
    for i in range(8):
        cv2.imwrite(str(small / f"{i}.png"), np.zeros((12, 12), np.uint8))  # 32 / 12 > 2
    cases = [(tmp_path / "nope.mp4", r"does not exist"),
             (garbage, r"garbage.mp4"),
             (empty, r"holds no videos"),
             (small, r"is 12x12; the model takes 32x32 frames, more than 2x enlarged")]
    for i, (given, message) in enumerate(cases):
        out = tmp_path / f"out{i}"
        with pytest.raises(Exception, match=message):
            detect(compose_config(out, f"ckpt_path={ckpt}", f"input={given}",
                                  config_name="detect"))
        assert (out / "error.txt").exists() and not (out / "scores.csv").exists()
    with pytest.raises(InputError, match="no calibrated threshold"):
        checkpoint = torch.load(ckpt, map_location="cpu", weights_only=False)
        checkpoint[RECIPE_KEY]["calibration"] = None
        torch.save(checkpoint, tmp_path / "uncalibrated.ckpt")
        detect(compose_config(tmp_path / "c", f"ckpt_path={tmp_path / 'uncalibrated.ckpt'}",
                              f"input={small}", config_name="detect"))


def test_cli_failure_is_one_line_and_exit_1(trained: Path, tmp_path):
    out = tmp_path / "cli"
    proc = subprocess.run(
        [sys.executable, "-m", "vad.detect", f"ckpt_path={best_checkpoint(trained)}",
         f"input={tmp_path / 'missing.mp4'}", f"hydra.run.dir={out}"],
        cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1
    errors = [line for line in (proc.stdout + proc.stderr).splitlines() if "InputError" in line]
    assert len(errors) == 1 and "missing.mp4 does not exist" in errors[0]
    assert "Traceback" not in proc.stderr and (out / "error.txt").exists()


def test_detect_finds_the_injected_anomaly(tmp_path):
    run = tmp_path / "run"
    train(compose_config(run, *LEARNS, "eval.plots=false"))
    labels = write_footage(tmp_path / "cam", 80, 64)
    rows = run_detect(tmp_path / "detect", best_checkpoint(run), f"input={tmp_path / 'cam'}")
    flagged = np.array([int(r["anomalous"]) for r in rows], bool)
    segments = json.loads((tmp_path / "detect" / "segments.json").read_text()
                          )["videos"]["cam"]["segments"]
    # With the calibrated threshold, flagged frames are anomalous more often than frames at
    # random (seen: 28 of the 32 flagged vs 51 of the 80 frames), and the highest peak lies on
    # the anomaly.
    assert flagged.any() and labels[flagged].mean() > labels.mean()
    top = max(segments, key=lambda s: s["peak_score"])
    assert labels[top["peak_frame"]]
