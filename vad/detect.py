"""``python -m vad.detect ckpt_path=… input=…``: flag the anomalous frames of new footage.

The checkpoint says everything else (`vad.checkpoint`): the method, its weights, the frame size,
colour, value range and clip shape it was trained with, and a threshold calibrated on normal
footage. The input is a video file, a folder of frames, a folder of videos or a glob
(`vad.inference.input_records`); each video is scored batched (default) or, with ``stream=true``,
frame by frame as it is decoded (`vad.inference`; the same scores).

Raw scores and the threshold: a frame's raw score is the method's anomaly score, exactly as the
evaluation computes it before normalisation (``score`` in a training run's ``scores.csv``).
Per-video min–max normalisation, which the benchmarks use, needs the whole video and is not used
here. Instead the threshold is a raw score: ``threshold=`` as given, or the one calibrated at the
end of training (``false_alarm_rate`` of ``vad.train``, default 1%: that fraction of the held-out
normal validation frames of the training videos lies above it; in a run that held none out, of
the training clips' frames, which the checkpoint and the output say: `vad.checkpoint`);
``false_alarm_rate=`` here recalibrates from the normal scores stored in the checkpoint.
``score_normalized`` is (raw − m) / (threshold − m), m the median normal score: about 0 on
normal frames, 1 at the threshold; a frame is ``anomalous`` when its raw score exceeds the
threshold.

Edge frames: a window autoencoder's first and last T − 1 frames are scored by fewer windows
than the others, at one end of the window only, and their scores are systematically off (a
ConvSTAE scores frame 0 of a static normal video highest); ``edge_frames=drop`` (default, ours)
leaves them unscored like the frames no window reaches (`vad.inference.fully_covered`),
``edge_frames=keep`` scores them as the test split does.

Outputs, in the run dir (each written through a temporary file and renamed, after all scoring):
``scores.csv`` (video, frame, time, score, score_normalized, anomalous; frames no window
reaches, and edge frames, have no score), ``segments.json`` (runs of anomalous frames:
start/end frame and time, peak score; the threshold and where it came from),
``plots/<video>.png`` and, with ``render=true``, ``<video>.mp4``: the frames the model saw with
the method's per-pixel error as a heat-map (methods with an `error_map`: desdnet, convstae), at
the input video's aspect ratio (`render_size`).
"""

from __future__ import annotations

import csv
import json
import logging
from dataclasses import dataclass
from pathlib import Path

import hydra
import lightning as L
import numpy as np
import torch
from omegaconf import DictConfig

import vad  # noqa: F401  (registers OmegaConf resolvers)
from vad.checkpoint import RecipeError, load_model, method_name
from vad.data.clips import ClipSpec
from vad.evaluation.report import plot_scores
from vad.evaluation.scores import segments
from vad.inference import (
    FootageDataModule,
    FrameAccumulator,
    InputError,
    Threshold,
    batch_scores,
    check_resolution,
    frame_rate,
    fully_covered,
    input_records,
    resolve_threshold,
    stream_video,
)
from vad.models.base import VADModule
from vad.results import atomic_path
from vad.train import CONFIG_DIR
from vad.utils import exit_after_failure, task_wrapper
from vad.utils.validate import check_device

log = logging.getLogger(__name__)


@dataclass
class VideoResult:
    """The scores of one input video."""

    name: str
    fps: float
    raw: np.ndarray  # (N,), NaN where no window reaches
    normalized: np.ndarray
    anomalous: np.ndarray  # bool (N,)

    def segments(self) -> list[dict]:
        out = []
        for first, last in segments(self.anomalous):
            peak = first + int(np.nanargmax(self.raw[first:last + 1]))
            out.append({"start_frame": first, "end_frame": last,
                        "start_time": first / self.fps, "end_time": (last + 1) / self.fps,
                        "peak_frame": peak, "peak_score": float(self.raw[peak]),
                        "peak_score_normalized": float(self.normalized[peak])})
        return out


def result_of(name: str, fps: float, raw: np.ndarray, threshold: Threshold) -> VideoResult:
    bad = np.isinf(raw)
    if bad.any():
        raise FloatingPointError(f"video {name!r}: non-finite score at frame "
                                 f"{int(np.argmax(bad))}; the checkpoint may have diverged")
    return VideoResult(name, fps, raw, threshold.normalize(raw),
                       np.nan_to_num(raw, nan=-np.inf) > threshold.value)


def device_of(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    check_device(name)  # device=cuda without a GPU: one line naming device=cpu
    return torch.device(name)


# -- outputs -------------------------------------------------------------------------------------
def write_scores(path: Path, results: list[VideoResult]) -> None:
    with atomic_path(path) as tmp, tmp.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["video", "frame", "time", "score", "score_normalized", "anomalous"])
        for r in results:
            for frame, (raw, norm, flag) in enumerate(zip(r.raw, r.normalized, r.anomalous)):
                scored = not np.isnan(raw)
                writer.writerow([r.name, frame, f"{frame / r.fps:.3f}",
                                 f"{raw:.8g}" if scored else "", f"{norm:.6g}" if scored else "",
                                 int(flag)])


def write_segments(path: Path, results: list[VideoResult], threshold: Threshold,
                   summary: dict) -> None:
    data = {**summary, "threshold": threshold.value, "threshold_source": threshold.source,
            "reference_score": threshold.reference,
            "videos": {r.name: {"fps": r.fps, "num_frames": len(r.raw),
                                "scored_frames": int((~np.isnan(r.raw)).sum()),
                                "anomalous_frames": int(r.anomalous.sum()),
                                "segments": r.segments()} for r in results}}
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(data, indent=2) + "\n")


def write_plot(path: Path, result: VideoResult) -> None:
    scored = ~np.isnan(result.raw)
    with atomic_path(path) as tmp:
        plot_scores(tmp, result.name, np.flatnonzero(scored), result.normalized[scored],
                    result.anomalous[scored], threshold=1.0, score_direction="anomaly")


# -- render=true -----------------------------------------------------------------------------------
def overlay(frame: np.ndarray, heat: np.ndarray | None, flagged: bool,
            size: tuple[int, int]) -> np.ndarray:
    """A BGR frame ``(height, width, 3)`` for ``size = (width, height)``: the grey/RGB frame
    with ``heat`` (in [0, 1], or None) as a JET colour map on top, resized to ``size``, and a
    red border when the frame is flagged."""
    import cv2

    image = frame[..., 0] if frame.shape[-1] == 1 else frame
    image = (cv2.cvtColor(image, cv2.COLOR_GRAY2BGR) if image.ndim == 2
             else cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    if heat is not None:
        colours = cv2.applyColorMap((np.clip(heat, 0, 1) * 255).astype(np.uint8), cv2.COLORMAP_JET)
        image = cv2.addWeighted(image, 0.55, colours, 0.45, 0)
    image = cv2.resize(image, size, interpolation=cv2.INTER_LINEAR)
    if flagged:
        cv2.rectangle(image, (0, 0), (image.shape[1] - 1, image.shape[0] - 1), (0, 0, 255), 3)
    return image


def render_size(source: tuple[int, int], least: int = 256) -> tuple[int, int]:
    """``(width, height)`` of a rendered video for input frames ``source = (height, width)``:
    the input's aspect ratio (not the model's square input), enlarged until the longer side is
    at least ``least``, even numbers (for the codec)."""
    height, width = source
    scale = max(1.0, least / max(height, width))
    return (2 * max(1, round(width * scale / 2)), 2 * max(1, round(height * scale / 2)))


class HeatmapVideo:
    """An MP4 written frame by frame in order, each frame with its error map if it has one;
    colours run from 0 to the largest error seen so far in the video."""

    def __init__(self, path: Path, frames: np.ndarray, flagged: np.ndarray, fps: float,
                 size: tuple[int, int]) -> None:
        import cv2

        self.frames, self.flagged, self.size = frames, flagged, size
        self.writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, size)
        self.written, self.scale = 0, 0.0

    def write_until(self, last: int, maps: dict[int, np.ndarray]) -> None:
        for frame in range(self.written, last + 1):
            heat = maps.get(frame)
            if heat is not None:
                self.scale = max(self.scale, float(heat.max()))
                heat = heat / self.scale if self.scale > 0 else heat
            self.writer.write(overlay(self.frames[frame], heat, bool(self.flagged[frame]),
                                      self.size))
        self.written = max(self.written, last + 1)

    def close(self) -> None:
        self.writer.release()


@torch.no_grad()
def render(output_dir: Path, model, datamodule: FootageDataModule, results: list[VideoResult],
           how: str, device: torch.device, source_sizes: list[tuple[int, int]]) -> None:
    """``<video>.mp4`` per input video (`HeatmapVideo`): each frame with its per-pixel error map,
    combined over the windows that score the frame as its score is, at the input video's
    aspect ratio (``source_sizes``: its ``(height, width)``; `render_size`)."""
    dataset = datamodule.datasets["test"]
    model.to(device).eval()
    for video, result in enumerate(results):
        frames = dataset.store.video(video)
        frames = frames.cpu().numpy() if isinstance(frames, torch.Tensor) else frames
        clips = np.flatnonzero(dataset.index[:, 0] == video)
        accumulator = FrameAccumulator(how)
        with atomic_path(output_dir / f"{result.name}.mp4") as tmp:
            out = HeatmapVideo(tmp, frames, result.anomalous, result.fps,
                               render_size(source_sizes[video]))
            try:
                for chunk in np.array_split(clips, max(1, len(clips) // datamodule.eval_batch_size)):
                    if len(chunk) == 0:
                        continue
                    batch = datamodule.transfer(dataset.__getitems__(chunk), device)
                    maps = model.error_map(batch).float().cpu().numpy()
                    for targets, clip_maps in zip(batch.frames.cpu().numpy(), maps):
                        accumulator.add(targets, list(clip_maps))
                    # Windows come in start order: no later one reaches a frame up to this start.
                    start = int(dataset.index[chunk[-1], 1])
                    out.write_until(start, dict(accumulator.release(upto=start)))
                out.write_until(len(frames) - 1, dict(accumulator.release()))
            finally:
                out.close()


def onset_logger(name: str, threshold: Threshold):
    """``on_score`` for a stream: logs each frame where the score rises above the threshold."""
    above = False

    def on_score(frame: int, score: float) -> None:
        nonlocal above
        if score > threshold.value and not above:
            log.info("%s: anomaly from frame %d (score %.4g)", name, frame, score)
        above = score > threshold.value

    return on_score


# -- the command ---------------------------------------------------------------------------------
@task_wrapper
def detect(cfg: DictConfig) -> dict:
    model, recipe = load_model(cfg.ckpt_path)
    method = method_name(recipe.config.model._target_)
    if recipe.preprocessing is None:
        raise RecipeError(f"{cfg.ckpt_path} was written before checkpoints carried their "
                          f"preprocessing; retrain it with this version of vad")
    if cfg.render and type(model).error_map is VADModule.error_map:
        raise InputError(f"render=true needs a per-pixel error map, which {method} does not "
                         f"have (desdnet and convstae do): drop render=true")
    threshold = resolve_threshold(recipe.calibration, cfg.threshold, cfg.false_alarm_rate)
    pre = recipe.preprocessing
    records = input_records(str(cfg.input))
    source_sizes = [check_resolution(record, pre.image_size, pre.grayscale, cfg.max_upscale)
                    for record in records]
    how = recipe.config.eval.window_aggregation
    device = device_of(cfg.device)
    datamodule = FootageDataModule(
        records, clip=dict(pre.clip), image_size=list(pre.image_size), grayscale=pre.grayscale,
        value_range=list(pre.value_range), test_window_step=pre.test_window_step,
        flow=None if pre.flow is None else dict(pre.flow), eval_batch_size=cfg.batch_size,
        num_workers=cfg.num_workers, cache_dir=cfg.get("cache_dir"))
    log.info("%s checkpoint (vad %s, commit %s); threshold %.6g, %s", method,
             recipe.vad_version, recipe.commit, threshold.value, threshold.source)
    if cfg.edge_frames not in ("drop", "keep"):
        raise InputError(f"edge_frames must be drop or keep, got {cfg.edge_frames!r}")
    drop_edges = cfg.edge_frames == "drop"
    if cfg.stream:
        if datamodule.has_flow("test"):
            raise InputError(f"stream=true does not compute optical flow, which this {method} "
                             f"checkpoint reads at test time: use stream=false")
        model.to(device)
        raw_scores = [stream_video(model, r, pre, how, device, onset_logger(r.name, threshold),
                                   chunk=int(cfg.stream_chunk), drop_edges=drop_edges)
                      for r in records]
    else:
        trainer = L.Trainer(accelerator=device.type, devices=1, logger=False,
                            enable_checkpointing=False, enable_model_summary=False,
                            default_root_dir=cfg.paths.output_dir)
        raw_scores = batch_scores(trainer, model, datamodule, how)
        if drop_edges:
            for raw in raw_scores:
                raw[~fully_covered(ClipSpec(**pre.clip), len(raw))] = np.nan
    results = [result_of(r.name, cfg.fps or frame_rate(r), raw, threshold)
               for r, raw in zip(records, raw_scores)]

    output_dir = Path(cfg.paths.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    if cfg.render:
        datamodule.setup("predict")
        render(output_dir, model, datamodule, results, how, device, source_sizes)
    calibration = recipe.calibration
    summary = {"ckpt_path": str(cfg.ckpt_path), "method": method, "input": str(cfg.input),
               "stream": bool(cfg.stream),
               "calibrated_on": (None if cfg.threshold is not None or not calibration
                                 else calibration.get("source", "validation clips"))}
    (output_dir / "plots").mkdir(exist_ok=True)
    for result in results:
        write_plot(output_dir / "plots" / f"{result.name}.png", result)
    write_segments(output_dir / "segments.json", results, threshold, summary)
    write_scores(output_dir / "scores.csv", results)
    flagged = sum(int(r.anomalous.sum()) for r in results)
    log.info("%d of %d frames anomalous in %d segment(s); scores in %s/scores.csv", flagged,
             sum(len(r.raw) for r in results), sum(len(r.segments()) for r in results),
             output_dir)
    return {"anomalous_frames": flagged, "threshold": threshold.value}


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="detect.yaml")
def main(cfg: DictConfig) -> None:
    try:
        detect(cfg)
    except Exception:
        exit_after_failure()
        raise


if __name__ == "__main__":
    main()
