"""Your own footage (`data=folder`): train on normal video of your camera, score the rest.

No download, no fixed tree and no labels needed::

    python -m vad.train data=folder data.train=cam.mp4 data.train_span=[0s,20min] \\
        data.test=cam.mp4 data.test_span=[20min,null]

``data.train`` and ``data.test`` each name footage in any of these forms (or a list of them):

* a video file (``cam.mp4``; any of `vad.data.layouts.VIDEO_SUFFIXES`);
* a frame folder (``cam01/`` holding ``000.jpg, 001.jpg ...``, natural order);
* a folder of videos (video files and/or frame folders, as in the benchmarks' layouts);
* a glob (``'footage/day*/*.mp4'``; quote it for the shell), each match a video or frame folder.

A video is named after its file stem or folder name (names must be unique within a split); the
name keys ``scores.csv`` and the plots.

**Spans.** ``data.train_span`` / ``data.test_span`` keep ``[start, stop)`` of every video of the
split: a bare number counts frames, a string with a unit is a time (``"90s"``, ``"20min"``,
``"1.5h"``; ``"300f"`` is frames again), ``null`` is the start or the end. Times become frames
with the video file's own frame rate (``data.fps`` for frame folders, which have none). So the
same file can be split by time into training and test footage, and in ``scores.csv`` frame 0 of
a test video is the first frame of its span (the span is recorded in ``label_source``).

**Labels** are optional. ``data.labels`` may name any label source `vad.data.labels` reads (a
``.npy`` of 0/1 per frame, a ``gt`` ``.mat``, a ``.m``, or a folder of ``<video>.npy``); it
describes the test videos whole (frame 0 = the file's first frame), and is cut to
``data.test_span`` like the frames. Without labels the shared evaluation still writes
``scores.csv``, the score plots and detections, and skips AUC/EER (`vad.evaluation.evaluator`).
"""

from __future__ import annotations

import glob
import os
import re
from collections.abc import Sequence
from pathlib import Path

from vad.data.datamodule import VideoDataModule
from vad.data.decode import count_video_frames, video_fps
from vad.data.labels import LabelError, describe_source, load_labels
from vad.data.layouts import (
    VIDEO_SUFFIXES,
    ScannedVideo,
    frame_files,
    natural_key,
    scan_videos,
)
from vad.data.records import VideoRecord

DOCS = "docs/datasets.md#your-own-footage"
_BOUND = re.compile(r"\s*(\d+(?:\.\d*)?|\.\d+)\s*(f|s|min|h)?\s*")
_SECONDS = {"s": 1.0, "min": 60.0, "h": 3600.0}


class FolderDataError(ValueError):
    """Footage that cannot be used as given; the message names the setting and the fix."""


def _as_list(value: str | os.PathLike | Sequence | None) -> list[str]:
    if value is None:
        return []
    if isinstance(value, (str, os.PathLike)):
        return [str(value)]
    return [str(v) for v in value]


def _video_at(path: Path, key: str) -> list[ScannedVideo]:
    """The video(s) at ``path``: a video file, a frame folder or a folder of videos."""
    if path.is_file():
        if path.suffix.lower() not in VIDEO_SUFFIXES:
            raise FolderDataError(f"data.{key}: {path} is not a video file (expected one of "
                                  f"{', '.join(VIDEO_SUFFIXES)}) nor a folder. See {DOCS}.")
        return [ScannedVideo(path.stem, path, count_video_frames(path))]
    files = frame_files(path)
    if files:  # a frame folder
        return [ScannedVideo(path.name, files, len(files))]
    return scan_videos(path, f"data.{key}", docs=DOCS)


def find_footage(paths: str | Sequence[str] | None, key: str) -> list[ScannedVideo]:
    """Every video named by ``paths`` (files, frame folders, folders of videos, globs), in order.

    Raises:
        FolderDataError: Nothing given, a path or glob that matches nothing, a name used twice,
            a video without frames.
        DatasetLayoutError: A folder holding no videos.
    """
    given = _as_list(paths)
    if not given:
        raise FolderDataError(
            f"data=folder needs data.{key}=<video file | frame folder | folder of videos | "
            f"glob>, e.g. data.{key}=cam.mp4 or data.{key}='footage/*.mp4'. See {DOCS}.")
    videos: list[ScannedVideo] = []
    for spec in given:
        expanded = os.path.expanduser(spec)
        if glob.has_magic(expanded):
            matches = sorted((Path(m) for m in glob.glob(expanded)), key=natural_key)
        else:
            matches = [Path(expanded)] if Path(expanded).exists() else []
        if not matches:
            kind = "glob pattern" if glob.has_magic(expanded) else "path"
            raise FolderDataError(
                f"data.{key}: the {kind} {spec!r} matches nothing (relative paths start at "
                f"{Path.cwd()}). Give an existing video file, frame folder, folder of videos or "
                f"a glob such as 'footage/*.mp4' (quoted). See {DOCS}.")
        for match in matches:
            videos.extend(_video_at(match, key))
    seen: dict[str, ScannedVideo] = {}
    for video in videos:
        if video.num_frames == 0:
            raise FolderDataError(f"data.{key}: video {video.source} has no frames; remove it "
                                  f"or re-encode it. See {DOCS}.")
        if video.name in seen:
            raise FolderDataError(
                f"data.{key}: two videos are named {video.name!r} ({seen[video.name].source} and "
                f"{video.source}); rename one (names key scores.csv). See {DOCS}.")
        seen[video.name] = video
    return videos


def parse_bound(value: int | float | str | None, fps: float | None, what: str) -> int | None:
    """A span bound in frames: ``1200`` or ``"1200f"`` frames, ``"20s"``/``"2min"``/``"1h"`` a
    time (``round(seconds × fps)``), None open.

    Raises:
        FolderDataError: Unreadable, negative, or a time with no known frame rate.
    """
    if value is None:
        return None
    if isinstance(value, bool):
        raise FolderDataError(f"{what}: {value!r} is not a frame count or time")
    if isinstance(value, (int, float)):
        if value < 0 or value != int(value):
            raise FolderDataError(f"{what}: {value!r} is not a frame count (a whole number >= 0; "
                                  f"times take a unit, e.g. '20s')")
        return int(value)
    match = _BOUND.fullmatch(str(value))
    if match is None:
        raise FolderDataError(f"{what}: cannot read {value!r}; use frames (1200, '1200f') or a "
                              f"time ('90s', '20min', '1.5h'), or null for open")
    number, unit = float(match.group(1)), match.group(2) or "f"
    if unit == "f":
        if number != int(number):
            raise FolderDataError(f"{what}: {value!r} is not a whole number of frames")
        return int(number)
    if fps is None:
        raise FolderDataError(f"{what}: the time {value!r} needs a frame rate, and frame folders "
                              f"have none: set data.fps=<frames per second> or give the span in "
                              f"frames (e.g. [0, 3000])")
    return int(round(number * _SECONDS[unit] * fps))


def apply_span(video: ScannedVideo, span: Sequence | None, fps: float | None, key: str
               ) -> tuple[int, int]:
    """``(start, stop)`` frames of ``video`` that ``span`` (``[start, stop]`` bounds) keeps.

    Raises:
        FolderDataError: A span that is not two bounds, or keeps no frame of the video.
    """
    if span is None:
        return 0, video.num_frames
    if isinstance(span, (str, bytes)) or len(span) != 2:
        raise FolderDataError(f"data.{key}_span must be [start, stop] (e.g. [0s, 20min] or "
                              f"[1200, null]), got {span!r}")
    what = f"data.{key}_span of {video.name}"
    start = parse_bound(span[0], fps, what) or 0
    stop = parse_bound(span[1], fps, what)
    stop = video.num_frames if stop is None else min(stop, video.num_frames)
    if start >= stop:
        rate = f" at {fps:g} fps" if fps else ""
        raise FolderDataError(
            f"{what}: {list(span)} keeps no frame of {video.source} ({video.num_frames} frames"
            f"{rate}, {_duration(video.num_frames, fps)}). See {DOCS}.")
    return start, stop


def _duration(num_frames: int, fps: float | None) -> str:
    return f"{num_frames / fps:.1f} s" if fps else "no frame rate known"


class FolderDataModule(VideoDataModule):
    """Your own footage (`data=folder`); see the module docstring for the forms and spans.

    Args:
        train: Normal training footage: video file(s), frame folder(s), folder(s) of videos or
            glob(s).
        test: Footage to score, in the same forms (may be the training file with another span).
        train_span: ``[start, stop]`` kept of every training video (frames, or times such as
            ``"20min"``); None keeps all.
        test_span: The same for the test videos.
        labels: Optional label source for the test videos (whole videos, before ``test_span``);
            None: no labels, so no AUC.
        fps: Frame rate of frame folders, for time spans (video files know their own).
        **kwargs: `VideoDataModule` arguments.
    """

    def __init__(
        self,
        train: str | Sequence[str] | None = None,
        test: str | Sequence[str] | None = None,
        train_span: Sequence | None = None,
        test_span: Sequence | None = None,
        labels: str | None = None,
        fps: float | None = None,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        self.paths = {"train": train, "test": test}
        self.spans = {"train": train_span, "test": test_span}
        self.labels = labels
        self.fps = fps
        self._described: dict[str, str] = {}

    def _fps(self, video: ScannedVideo) -> float | None:
        return self.fps if isinstance(video.source, list) else video_fps(video.source)

    def load_records(self, split: str) -> list[VideoRecord]:
        videos = find_footage(self.paths[split], split)
        span = self.spans[split]
        spans = [apply_span(v, span, self._fps(v) if span is not None else None, split)
                 for v in videos]
        labels = self._labels(videos, spans) if split == "test" else [None] * len(videos)
        self._described[split] = "; ".join(
            f"{v.name} frames {a}-{b - 1}" for v, (a, b) in zip(videos, spans)
            if (a, b) != (0, v.num_frames)) or "whole videos"
        return [VideoRecord(v.name, v.source, b - a, labels=y,
                            frame_range=None if (a, b) == (0, v.num_frames) else (a, b))
                for v, (a, b), y in zip(videos, spans, labels)]

    def _labels(self, videos: list[ScannedVideo], spans: list[tuple[int, int]]) -> list:
        if self.labels is None:
            return [None] * len(videos)
        source = Path(self.labels).expanduser()
        if not source.exists():
            raise FolderDataError(f"data.labels={self.labels} does not exist (relative paths "
                                  f"start at {Path.cwd()}). See {DOCS}.")
        try:
            whole = load_labels(source, [(v.name, v.num_frames) for v in videos])
        except LabelError as err:
            raise type(err)(f"data=folder: {err} (labels describe whole test videos, before "
                            f"data.test_span)") from err
        return [y[a:b] for y, (a, b) in zip(whole, spans)]

    @property
    def label_source(self) -> str:
        labels = describe_source(Path(self.labels)) if self.labels else "no labels"
        return f"{labels}; test {self._described.get('test', 'not read yet')}"
