"""Where clips are, kept as data apart from decoding (cf. pytorchvideo's ``ClipInfo``).

A clip is ``length`` frames taken every ``step = stride * dilation`` frames from ``start``. Its
*target* frames are the frames a method reconstructs or predicts, and so the frames it scores:

* ``last``: the last frame of the window (reconstruction of I_t from I_{t-Δ}..I_t, e.g. DESDnet);
* ``all``: every frame of the window (window autoencoders, e.g. ConvSTAE);
* ``next``: the frame ``future_offset`` steps after the window, appended to the clip as its last
  frame (future-frame prediction, e.g. latent prediction).

Frames that no clip targets (the first ``length - 1`` frames of each video for ``last``) are
unscorable; the evaluation excludes them from scores and labels alike and reports the count.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

TARGET_KINDS = ("last", "all", "next")


@dataclass(frozen=True)
class ClipSpec:
    """Shape of a clip in time.

    Args:
        length: Frames in the input window (T).
        target: ``last``, ``all`` or ``next`` (see module docstring).
        dilation: Frame step inside a window, before any stride augmentation.
        future_offset: For ``next``: how many steps after the last input frame the target lies.
    """

    length: int
    target: str = "last"
    dilation: int = 1
    future_offset: int = 1

    def __post_init__(self) -> None:
        if self.length < 1:
            raise ValueError(f"clip length must be >= 1, got {self.length}")
        if self.target not in TARGET_KINDS:
            raise ValueError(f"clip target must be one of {TARGET_KINDS}, got {self.target!r}")
        if self.dilation < 1 or self.future_offset < 1:
            raise ValueError("clip dilation and future_offset must be >= 1")

    @property
    def offsets(self) -> np.ndarray:
        """Frame offsets of the loaded clip, in units of ``step``."""
        window = np.arange(self.length)
        if self.target == "next":
            return np.append(window, self.length - 1 + self.future_offset)
        return window

    @property
    def target_positions(self) -> np.ndarray:
        """Positions of the target frames inside the loaded clip."""
        if self.target == "last":
            return np.array([self.length - 1])
        if self.target == "all":
            return np.arange(self.length)
        return np.array([self.length])

    def span(self, stride: int = 1) -> int:
        """Frames from the first to the last loaded frame, inclusive."""
        return int(self.offsets[-1]) * stride * self.dilation + 1


def build_clip_index(
    ranges: Sequence[tuple[int, int, int]],
    spec: ClipSpec,
    window_step: int = 1,
    strides: Sequence[int] = (1,),
    cover_end: bool = False,
) -> np.ndarray:
    """All clips inside the given frame ranges.

    Args:
        ranges: ``(video, first_frame, end_frame)`` per range, ``end_frame`` exclusive.
        spec: The clip shape.
        window_step: Frames between consecutive window starts.
        strides: Temporal augmentation: each stride ``s`` adds the clips read every ``s * dilation``
            frames (Hasan et al.'s "various strides").
        cover_end: Add a last window flush with the end of each range, so that a ``window_step``
            larger than 1 still reaches every frame of the video.

    Returns:
        ``int64[N, 3]`` rows ``(video, start, step)``; a clip's frames are
        ``start + spec.offsets * step``.
    """
    rows = []
    for video, first, end in ranges:
        for stride in strides:
            step = stride * spec.dilation
            last_start = end - spec.span(stride)
            if last_start < first:
                continue
            starts = np.arange(first, last_start + 1, window_step)
            if cover_end and starts[-1] != last_start:
                starts = np.append(starts, last_start)
            rows.append(np.stack([np.full_like(starts, video), starts, np.full_like(starts, step)], 1))
    if not rows:
        return np.zeros((0, 3), dtype=np.int64)
    return np.concatenate(rows).astype(np.int64)
