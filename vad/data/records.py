"""What a dataset is, before any decoding: a list of `VideoRecord`s per split.

A record names one video, where its frames come from (a video file, a sorted list of frame
files, or frames already in memory) and, for test videos, its frame-level labels.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np


@dataclass
class VideoRecord:
    """One video of a split.

    Attributes:
        name: Video id, unique within the split (e.g. ``"01"`` or ``"01_0014"``); keys every score.
        source: A video file, a sorted list of frame files, or a ``(N, H, W, C)`` uint8 array.
        num_frames: Number of frames, known from the layout (checked against the decoded frames).
        labels: ``bool[num_frames]``, True for anomalous frames; ``None`` for training videos
            (and for unlabelled test footage).
        extras: Layout-specific extras kept reachable (pixel masks, tracks, boxes).
        frame_range: ``(start, stop)``: the record is frames ``start .. stop - 1`` of ``source``
            (a span of a longer video, `vad.data.folder`); None: all of it.
    """

    name: str
    source: Path | list[Path] | np.ndarray
    num_frames: int
    labels: np.ndarray | None = None
    extras: dict = field(default_factory=dict)
    frame_range: tuple[int, int] | None = None

    def __post_init__(self) -> None:
        if self.frame_range is not None:
            start, stop = (int(v) for v in self.frame_range)
            if not 0 <= start < stop or stop - start != self.num_frames:
                raise ValueError(f"video {self.name!r}: frame_range {self.frame_range} does not "
                                 f"span its {self.num_frames} frames")
            self.frame_range = (start, stop)
        if self.labels is not None:
            self.labels = np.asarray(self.labels, dtype=bool)
            if len(self.labels) != self.num_frames:
                raise ValueError(
                    f"video {self.name!r}: the labels cover {len(self.labels)} frames but the "
                    f"video has {self.num_frames} frames ({self.source_description})"
                )

    @property
    def source_description(self) -> str:
        if isinstance(self.source, np.ndarray):
            where = "in-memory frames"
        elif isinstance(self.source, list):
            folder = self.source[0].parent if self.source else "?"
            where = f"{len(self.source)} frame files in {folder}"
        else:
            where = str(self.source)
        if self.frame_range is not None:
            where += f", frames {self.frame_range[0]}-{self.frame_range[1] - 1}"
        return where
