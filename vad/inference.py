"""Scoring new footage with a trained checkpoint: the input's videos, batched or streamed.

Both paths give the raw anomaly score of the evaluation (`vad.evaluation.evaluator`): every
window of the clip shape in the checkpoint's recipe (`vad.checkpoint`), window step and
``cover_end`` as for a test split, clip scores combined per frame by the run's
``eval.window_aggregation``; frames no window reaches (the first T − 1 for ``last`` targets) get
no score.

* *Batched* (`batch_scores`): the input videos become the test split of a `FootageDataModule`,
  which decodes and resizes them exactly as the training cache did (`vad.data.cache`,
  `vad.data.decode`) and batches windows through ``Trainer.predict`` on the CPU or GPU.
* *Streamed* (`stream_scorer`): frames are decoded a chunk at a time (``stream_chunk`` of
  `vad.detect`; 1 = one by one), each converted to float once, and pushed into a ring buffer;
  the windows a chunk completes are scored in one batch, and a frame's score is released as soon
  as no later window can reach it: at once for ``last``/``next`` targets, after T − 1 more frames
  for ``all`` targets (every window that holds a frame must be scored before its mean is known).
  Latent prediction uses its own `vad.models.latentpred.StreamingScorer`, which encodes each
  frame once.

Per-video min–max normalisation needs the whole video and is not used here: raw scores are
compared with a threshold calibrated on normal footage (`Threshold`).
"""

from __future__ import annotations

import glob
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from vad.data.cache import build_cache
from vad.data.clips import ClipSpec
from vad.data.datamodule import ClipBatch, VideoDataModule, float_clips
from vad.data.decode import count_video_frames, iter_record_batches
from vad.data.layouts import (
    IMAGE_SUFFIXES,
    VIDEO_SUFFIXES,
    frame_files,
    natural_key,
    scan_videos,
)
from vad.data.records import VideoRecord
from vad.evaluation.scores import AGGREGATIONS, aggregate_window_scores

DEFAULT_FPS = 25.0  # frame folders carry no frame rate


class InputError(ValueError):
    """Footage that cannot be scored; the message names the input and the fix."""


# -- the input ---------------------------------------------------------------------------------
def _video_record(path: Path) -> VideoRecord:
    num_frames = count_video_frames(path)
    if num_frames == 0:
        raise InputError(f"video {path} has no frames")
    return VideoRecord(path.stem, path, num_frames)


def input_records(spec: str) -> list[VideoRecord]:
    """The videos of ``input=``: a video file, a folder of frames, a folder of videos or frame
    folders, or a glob of frame files (one video, natural order) or of video files."""
    if any(c in spec for c in "*?["):
        matches = sorted((Path(p) for p in glob.glob(spec, recursive=True)
                          if Path(p).is_file()), key=natural_key)
        images = [p for p in matches if p.suffix.lower() in IMAGE_SUFFIXES]
        videos = [p for p in matches if p.suffix.lower() in VIDEO_SUFFIXES]
        if images and videos:
            raise InputError(f"input {spec!r} matches both frames and video files; "
                             f"give one kind")
        if images:
            return [VideoRecord(images[0].parent.name or "input", images, len(images))]
        if videos:
            return [_video_record(p) for p in videos]
        raise InputError(f"input {spec!r} matches no frame ({', '.join(IMAGE_SUFFIXES)}) or "
                         f"video ({', '.join(VIDEO_SUFFIXES)}) file")
    path = Path(spec).expanduser()
    if not path.exists():
        raise InputError(f"input {path} does not exist (input=<video file | frame folder | glob>)")
    if path.is_file():
        if path.suffix.lower() not in VIDEO_SUFFIXES:
            raise InputError(f"input {path} is not a video file ({', '.join(VIDEO_SUFFIXES)}); "
                             f"for frames give their folder or a glob")
        return [_video_record(path)]
    files = frame_files(path)
    if files:
        return [VideoRecord(path.name, files, len(files))]
    return [VideoRecord(v.name, v.source, v.num_frames) for v in scan_videos(path, "input")]


def frame_rate(record: VideoRecord) -> float:
    """Frames per second of a video file; `DEFAULT_FPS` for frames."""
    if isinstance(record.source, Path):
        import decord

        fps = decord.VideoReader(str(record.source), ctx=decord.cpu(0)).get_avg_fps()
        if fps > 0:
            return float(fps)
    return DEFAULT_FPS


def check_resolution(record: VideoRecord, image_size: Sequence[int], grayscale: bool,
                     max_upscale: float) -> tuple[int, int]:
    """``record``'s frame size ``(height, width)``; raise `InputError` when the model would see
    its frames enlarged by more than ``max_upscale`` (detail it was trained on that the footage
    does not have)."""
    first = next(iter_record_batches(record, None, grayscale, batch_size=1))
    height, width = first.shape[1:3]
    need_h, need_w = (math.ceil(s / max_upscale) for s in image_size)
    if height < need_h or width < need_w:
        raise InputError(f"input {record.name!r} ({record.source_description}) is {width}x"
                         f"{height}; the model takes {image_size[1]}x{image_size[0]} frames, "
                         f"more than {max_upscale:g}x enlarged: use footage of at least "
                         f"{need_w}x{need_h} (or raise max_upscale)")
    return int(height), int(width)


class FootageDataModule(VideoDataModule):
    """The input videos as the test split (no labels), preprocessed as the recipe says.

    Args:
        records: The input's videos (`input_records`).
        **kwargs: `VideoDataModule` arguments: the recipe's preprocessing, batch size, workers.
    """

    def __init__(self, records: list[VideoRecord], **kwargs) -> None:
        super().__init__(**kwargs)
        self.footage = records

    @property
    def label_source(self) -> str:
        return "none (footage without labels)"

    def load_records(self, split: str) -> list[VideoRecord]:
        return self.footage if split == "test" else []

    def prepare_data(self) -> None:
        build_cache(self.test_records, self.cache_dir, self.image_size, self.grayscale,
                    desc="decoding the input")


# -- batched ------------------------------------------------------------------------------------
def batch_scores(trainer, model, datamodule: FootageDataModule, how: str = "mean"
                 ) -> list[np.ndarray]:
    """Per input video, one raw score per frame (NaN where no window reaches)."""
    rows = []
    for out in trainer.predict(model, datamodule=datamodule):
        n_targets = out.frames.shape[1]
        rows.append(torch.stack([out.video.repeat_interleave(n_targets).double().cpu(),
                                 out.frames.reshape(-1).double().cpu(),
                                 out.score.reshape(-1).double().cpu()], 1))
    if not rows:
        return [np.full(r.num_frames, np.nan) for r in datamodule.test_records]
    rows = torch.cat(rows).numpy()
    return aggregate_window_scores(rows[:, 0].astype(int), rows[:, 1].astype(int), rows[:, 2],
                                   [r.num_frames for r in datamodule.test_records], how)


def fully_covered(spec: ClipSpec, num_frames: int) -> np.ndarray:
    """bool ``(N,)``: the frames a window of shape ``spec`` inside the video can hold at *each*
    of its target positions (stride 1).

    For ``last``/``next`` targets these are the frames a window reaches at all (the first
    T − 1, resp. T − 1 + offset, are not). For ``all`` targets (window autoencoders) it also
    leaves out the first and last T − 1 frames, which the test split does score but from fewer
    windows, at one end of the window only: frame 0 only at position 0, where a recurrent model
    (ConvSTAE's ConvLSTM) starts without any history and reconstructs worst, the last frame
    only at position T − 1. Such a frame's score is systematically off (frame 0 the highest of
    a static normal video); `vad.detect` leaves them unscored (``edge_frames=drop``, ours).
    """
    positions = spec.offsets[spec.target_positions] * spec.dilation
    first = int(positions.max())
    last = num_frames - 1 - (spec.span() - 1 - int(positions.min()))
    mask = np.zeros(num_frames, bool)
    mask[first:last + 1] = True
    return mask


# -- streamed -----------------------------------------------------------------------------------
class FrameAccumulator:
    """Combines what several windows give one frame (a score, or an error map) the way
    `aggregate_window_scores` does, in the same order, and releases a frame once no later window
    can reach it."""

    def __init__(self, how: str = "mean") -> None:
        if how not in AGGREGATIONS:
            raise ValueError(f"window aggregation must be one of {AGGREGATIONS}, got {how!r}")
        self.how = how
        self.pending: dict[int, list] = {}

    def add(self, frames: Sequence[int], values: Sequence) -> None:
        for frame, value in zip(frames, values):
            self.pending.setdefault(int(frame), []).append(value)

    def release(self, upto: int | None = None) -> list[tuple[int, object]]:
        """``(frame, combined value)`` of the pending frames ``<= upto`` (all with None)."""
        done = sorted(f for f in self.pending if upto is None or f <= upto)
        return [(f, self._combine(self.pending.pop(f))) for f in done]

    def _combine(self, values: list):
        if self.how == "mean":
            total = 0.0  # summed in arrival order, as np.bincount sums: the same float64 result
            for value in values:
                total = total + value
            return total / len(values)
        return (np.maximum if self.how == "max" else np.minimum).reduce(values)


class ClipStream:
    """A ring buffer of frames: push uint8 frames ``(H, W, C)`` or a chunk ``(n, H, W, C)``, get
    back the ``(frame, raw score)`` pairs that became final (see the module docstring).

    Each frame is converted to float once, as it arrives (not once per window holding it); the
    windows a push completes are scored together, in batches of at most ``max_windows`` (one
    window per push when frames come one at a time). Scores are those of the batched path.

    Args:
        model: A method in eval mode, on ``device``.
        spec: The recipe's clip shape.
        value_range: The recipe's pixel value range.
        window_step: Frames between window starts (the recipe's ``test_window_step``).
        how: Window aggregation.
        device: Where frames are held and scored.
        max_windows: The most windows scored in one forward pass.
    """

    def __init__(self, model, spec: ClipSpec, value_range: Sequence[float], window_step: int = 1,
                 how: str = "mean", device: torch.device | str = "cpu",
                 max_windows: int = 32) -> None:
        self.model, self.value_range, self.window_step = model, tuple(value_range), window_step
        self.device = torch.device(device)
        self.span = spec.span()
        self.positions = spec.offsets * spec.dilation
        self.targets = self.positions[spec.target_positions]
        self.max_windows = max_windows
        self.frames: list[torch.Tensor] = []  # float (C, H, W), frames self.first, ...
        self.first = 0
        self.accumulator = FrameAccumulator(how)
        self.count = 0
        self.next_start = 0
        self.last_start = -1

    @torch.no_grad()
    def push(self, frames: np.ndarray) -> list[tuple[int, float]]:
        frames = np.asarray(frames)
        frames = frames[None] if frames.ndim == 3 else frames
        raw = torch.from_numpy(np.ascontiguousarray(frames)).to(self.device)[None]
        converted = float_clips(ClipBatch(raw, None, None, None), self.value_range).clip[0]
        self.frames.extend(converted.unbind(1))  # (C, n, H, W) → n frames (C, H, W)
        self.count += len(frames)
        starts = np.arange(self.next_start, self.count - self.span + 1, self.window_step)
        if len(starts) == 0:
            return []
        for chunk in range(0, len(starts), self.max_windows):
            self._score(starts[chunk:chunk + self.max_windows])
        self.next_start = int(starts[-1]) + self.window_step
        # Frames before the next window's start, and before the window flush with the end
        # (`finish`) if no frame came after these, are read by no later window.
        drop = min(self.next_start, self.count - self.span) - self.first
        if drop > 0:
            del self.frames[:drop]
            self.first += drop
        return self.accumulator.release(upto=int(starts[-1]))

    @torch.no_grad()
    def finish(self) -> list[tuple[int, float]]:
        """The frames still pending at the end of the video (after the window flush with its
        end, which a test split adds too: ``cover_end``)."""
        start = self.count - self.span
        if start >= 0 and start != self.last_start:
            self._score(np.array([start]))
        return self.accumulator.release()

    def _score(self, starts: np.ndarray) -> None:
        clip = torch.stack([torch.stack([self.frames[int(s + p) - self.first]
                                         for p in self.positions], dim=1) for s in starts])
        targets = starts[:, None] + self.targets[None]
        zeros = torch.zeros(len(starts), dtype=torch.long)
        batch = ClipBatch(clip, zeros, torch.from_numpy(targets), zeros)
        scores = self.model.score(batch).float().cpu().double().numpy()
        for window_targets, window_scores in zip(targets, scores):
            self.accumulator.add(window_targets, [float(s) for s in window_scores])
        self.last_start = int(starts[-1])


class LatentStream:
    """`ClipStream`'s interface over latent prediction's `StreamingScorer` (each frame encoded
    once): the score of frame t is released when frame t arrives."""

    def __init__(self, model, value_range: Sequence[float], device: torch.device | str) -> None:
        self.scorer = model.streaming_scorer()
        self.value_range, self.device = tuple(value_range), torch.device(device)
        self.count = 0

    @torch.no_grad()
    def push(self, frames: np.ndarray) -> list[tuple[int, float]]:
        frames = np.asarray(frames)
        frames = frames[None] if frames.ndim == 3 else frames
        raw = torch.from_numpy(np.ascontiguousarray(frames)).to(self.device)[None]
        images = float_clips(ClipBatch(raw, None, None, None), self.value_range).clip[0]
        out = []
        for image in images.unbind(1):  # (C, H, W), one frame at a time through the scorer
            score = self.scorer.step(image[None])
            self.count += 1
            if score is not None:
                out.append((self.count - 1, float(score[0])))
        return out

    def finish(self) -> list[tuple[int, float]]:
        return []


def stream_scorer(model, preprocessing, how: str, device: torch.device | str):
    """A fresh stream for one video: `LatentStream` where the method has a streaming scorer and
    the windows are the ones it assumes (dilation 1, every window), `ClipStream` otherwise."""
    spec = ClipSpec(**preprocessing["clip"])
    window_step = int(preprocessing["test_window_step"])
    if hasattr(model, "streaming_scorer") and spec.dilation == 1 and window_step == 1:
        return LatentStream(model, preprocessing["value_range"], device)
    return ClipStream(model, spec, preprocessing["value_range"], window_step, how, device)


def stream_video(model, record: VideoRecord, preprocessing, how: str, device, on_score=None,
                 chunk: int = 1, drop_edges: bool = False) -> np.ndarray:
    """Score ``record`` as it is decoded, ``chunk`` frames at a time (1: frame by frame; more
    decode and score several frames together, each score then up to ``chunk`` − 1 frames
    later); ``on_score(frame, score)`` is called as each score becomes final. Returns the
    scores ``(N,)``, NaN where no window reaches (and, with ``drop_edges``, outside
    `fully_covered`)."""
    if chunk < 1:
        raise InputError(f"stream_chunk must be >= 1, got {chunk}")
    stream = stream_scorer(model, preprocessing, how, device)
    scores = np.full(record.num_frames, np.nan)
    kept = (fully_covered(ClipSpec(**preprocessing["clip"]), record.num_frames) if drop_edges
            else np.ones(record.num_frames, bool))

    def emit(pairs):
        for frame, score in pairs:
            if not kept[frame]:
                continue
            scores[frame] = score
            if on_score is not None:
                on_score(frame, score)

    size = tuple(preprocessing["image_size"])
    for batch in iter_record_batches(record, size, preprocessing["grayscale"], batch_size=chunk):
        for first in range(0, len(batch), chunk):  # frames in memory come as one batch
            emit(stream.push(batch[first:first + chunk]))
    emit(stream.finish())
    return scores


# -- the threshold ------------------------------------------------------------------------------
@dataclass
class Threshold:
    """A raw-score threshold and the reference the normalised score is measured from.

    ``normalized = (raw − reference) / (value − reference)``: 0 at the reference (the median raw
    score of the normal calibration frames; 0 without a calibration) and 1 at the threshold, so a
    frame is anomalous when its normalised score exceeds 1, whatever the method's score units.
    """

    value: float
    reference: float
    source: str

    def normalize(self, raw: np.ndarray) -> np.ndarray:
        return (np.asarray(raw, float) - self.reference) / (self.value - self.reference)


def resolve_threshold(calibration, threshold: float | None, false_alarm_rate: float | None
                      ) -> Threshold:
    """``threshold=`` as given, else the checkpoint's calibrated one, recomputed from its stored
    normal scores when another ``false_alarm_rate`` is asked for. The source says which normal
    frames the calibration used (`vad.checkpoint`: held-out validation clips, or the training
    clips of a run without any)."""
    reference = float(calibration["median"]) if calibration else 0.0
    if threshold is not None:
        value, source = float(threshold), "given (threshold=)"
    elif not calibration:
        raise InputError("the checkpoint has no calibrated threshold (written by a run that "
                         "did not finish, by one with false_alarm_rate=null, or by a vad older "
                         "than calibrating every checkpoint): give threshold=<raw score> (the "
                         "score column of the run's scores.csv is in the same units), or finish "
                         "the run (ckpt_path=last)")
    else:
        rate = calibration["false_alarm_rate"] if false_alarm_rate is None else false_alarm_rate
        if not 0 < rate < 1:
            raise InputError(f"false_alarm_rate must be in (0, 1), got {rate}")
        # "validation_scores": checkpoints from before calibration could use training clips.
        stored = calibration.get("scores", calibration.get("validation_scores"))
        value = (float(calibration["threshold"]) if false_alarm_rate is None else
                 float(np.quantile(np.asarray(stored), 1 - rate)))
        frames = calibration.get("source", "validation clips")
        source = (f"calibrated: exceeded by {100 * rate:g}% of the {calibration['num_frames']} "
                  f"normal frames of the {frames}")
        if frames == "training clips":
            source += (" (the run held none out: frames it was trained on, so expect more "
                       "false alarms than the rate on new footage)")
    if value == reference:
        raise InputError(f"threshold {value:g} equals the reference score (the median normal "
                         f"calibration score): give another threshold=")
    return Threshold(value, reference, source)
