"""Test-time distortions for the robustness suite (paper 003, §5): brightness, blur, noise, rain
and frame subsampling.

Each distortion is a small pure function of one video's frames ``(N, H, W, C)``, uint8 in
[0, 255] or float in [0, 1], returning frames of the same dtype and range (clipped); random
ones take a ``seed`` and are deterministic under it. Levels are in units that do not depend on
the dtype (a fraction of the full range, pixels, a factor). `Distortion` is one (kind, level)
pair as the data module applies it to every test video (`VideoDataModule.set_test_distortion`),
so that methods never know about it.

Paper 003 used the Automold toolkit for rain and brightness and subsampled training *and* test
videos; here everything is applied to test frames only, with our own simple rain model: the
question asked is how a model trained on clean footage copes with distorted footage.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.ndimage import gaussian_filter


def _full_scale(frames: np.ndarray) -> float:
    return 255.0 if frames.dtype == np.uint8 else 1.0


def _like(values: np.ndarray, frames: np.ndarray) -> np.ndarray:
    """Float ``values`` back to the dtype and range of ``frames`` (rounded and clipped)."""
    full = _full_scale(frames)
    values = np.clip(values, 0.0, full)
    return np.rint(values).astype(np.uint8) if frames.dtype == np.uint8 else values.astype(
        frames.dtype)


def brightness(frames: np.ndarray, factor: float) -> np.ndarray:
    """Every pixel times ``factor`` (1 = unchanged; 0.5 half as bright), clipped."""
    return _like(frames.astype(np.float32) * factor, frames)


def blur(frames: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian blur of each frame with standard deviation ``sigma`` pixels (0 = unchanged)."""
    if sigma <= 0:
        return frames.copy()
    return _like(gaussian_filter(frames.astype(np.float32), sigma=(0, sigma, sigma, 0)), frames)


def noise(frames: np.ndarray, std: float, seed: int = 0) -> np.ndarray:
    """Additive Gaussian noise, independent per pixel, of standard deviation ``std`` times the
    full range (0.05 on uint8: 12.75 grey levels), clipped."""
    rng = np.random.default_rng(seed)
    full = _full_scale(frames)
    return _like(frames.astype(np.float32)
                 + rng.normal(0.0, std * full, frames.shape).astype(np.float32), frames)


def rain(frames: np.ndarray, density: float, seed: int = 0, length: int = 9,
         slant: float = 0.3, opacity: float = 0.7) -> np.ndarray:
    """Synthetic rain: straight bright streaks, new ones in every frame.

    Args:
        frames: ``(N, H, W, C)``.
        density: Fraction of the pixels covered by streaks (0 = unchanged).
        seed: Streak positions.
        length: Streak length in pixels (rows).
        slant: Columns moved per row (wind).
        opacity: A streak pixel becomes ``(1 - opacity) · x + opacity · white``.
    """
    if density <= 0:
        return frames.copy()
    rng = np.random.default_rng(seed)
    count, height, width = frames.shape[:3]
    streaks = max(1, int(round(density * height * width / length)))
    mask = np.zeros((count, height, width), dtype=bool)
    steps = np.arange(length)
    for i in range(count):
        rows = rng.integers(-length, height, streaks)[:, None] + steps[None]
        cols = np.rint(rng.integers(0, width, streaks)[:, None] + slant * steps[None]).astype(int)
        inside = (rows >= 0) & (rows < height) & (cols >= 0) & (cols < width)
        mask[i, rows[inside], cols[inside]] = True
    values = frames.astype(np.float32)
    values[mask] = (1 - opacity) * values[mask] + opacity * _full_scale(frames)
    return _like(values, frames)


def subsample_indices(num_frames: int, step: int) -> np.ndarray:
    """The frames kept when only every ``step``-th frame is (0, step, 2·step, ...)."""
    if step < 1:
        raise ValueError(f"subsampling step must be >= 1, got {step}")
    return np.arange(0, num_frames, step)


def subsample(frames: np.ndarray, step: int) -> np.ndarray:
    """Every ``step``-th frame (1 = unchanged): a camera at 1/``step`` of the frame rate."""
    return frames[subsample_indices(len(frames), step)]


# Distortion kind → (function of (frames, level, seed), the level that changes nothing).
KINDS = {
    "brightness": (lambda frames, level, seed: brightness(frames, level), 1.0),
    "blur": (lambda frames, level, seed: blur(frames, level), 0.0),
    "noise": (noise, 0.0),
    "rain": (rain, 0.0),
    "subsample": (lambda frames, level, seed: subsample(frames, int(level)), 1),
}


@dataclass(frozen=True)
class Distortion:
    """One distortion at one level, applied to every test video (video ``i`` seeded with
    ``seed + i``, so runs repeat exactly)."""

    kind: str
    level: float
    seed: int = 0

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"distortion must be one of {sorted(KINDS)}, got {self.kind!r}")

    @property
    def name(self) -> str:
        return f"{self.kind}_{self.level:g}"

    @property
    def is_identity(self) -> bool:
        return self.level == KINDS[self.kind][1]

    def frames(self, frames: np.ndarray, video: int) -> np.ndarray:
        """Video ``video``'s frames ``(N, H, W, C)``, distorted."""
        return KINDS[self.kind][0](np.asarray(frames), self.level, self.seed + video)

    def kept(self, num_frames: int) -> np.ndarray:
        """Indices of the source frames that remain (and keep their labels)."""
        if self.kind == "subsample":
            return subsample_indices(num_frames, int(self.level))
        return np.arange(num_frames)
