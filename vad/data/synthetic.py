"""A small synthetic benchmark that needs no download: moving shapes on a textured background.

Modelled on the moving-digits experiment of the latent-prediction paper (paper 003, §6.2). Each
video is seen by the same fixed camera: one static smoothed-noise background (the scene, drawn
from the seed) with sensor noise, crossed from left to right by objects of two *normal* shapes
(square, disc) at normal speeds, in the scene's horizontal lanes. Training
videos are normal only. In every test video one of the normal objects is anomalous instead:

* ``appearance``: a shape and texture never seen in training (a checkered cross) moving at
  normal speed;
* ``fast``: a seen shape moving at 2.5-3.5x the normal speed (so, as through a real shutter,
  blurred along its motion);
* ``reverse``: a seen shape moving against the usual direction (right to left).

A frame is anomalous while any pixel of the anomalous object is on screen. All shapes have about
the same area and mean brightness, so an untrained model sees no more "stuff" in anomalous frames and
sits near AUC 0.5. The generator is deterministic given its seed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.ndimage import gaussian_filter

from vad.data.datamodule import VideoDataModule
from vad.data.records import VideoRecord

NORMAL_SHAPES = ("square", "disc")
ANOMALY_KINDS = ("appearance", "fast", "reverse")
OBJECT_BRIGHTNESS = 200.0
CHECKER_CONTRAST = 70.0  # the anomalous texture alternates brightness ± this, same mean
EXPOSURE_SAMPLES = 5  # sub-frame positions averaged over one frame interval (motion blur)
OBJECT_RADIUS = 5.5  # pixels at size 64; every shape has about (2r)^2 pixels of area
NORMAL_SPEED = (0.8, 1.4)  # pixels per frame at size 64
FAST_FACTOR = (2.5, 3.5)


@dataclass
class MovingObject:
    shape: str
    y: float
    x0: float
    vx: float
    t0: int
    anomalous: bool = False

    def x(self, t: int) -> float:
        return self.x0 + self.vx * (t - self.t0)


def _shape_mask(shape: str, dy: np.ndarray, dx: np.ndarray, r: float) -> np.ndarray:
    if shape == "square":
        return (np.abs(dx) <= r) & (np.abs(dy) <= r)
    if shape == "disc":
        return dx**2 + dy**2 <= (1.13 * r) ** 2  # same area as the square
    if shape == "cross":
        arm, half_width = 1.25 * r, 0.5 * r
        return ((np.abs(dx) <= arm) & (np.abs(dy) <= half_width)) | (
            (np.abs(dy) <= arm) & (np.abs(dx) <= half_width)
        )
    raise ValueError(f"unknown shape {shape!r}")


def _lane_objects(rng, size, num_frames, lanes, radius) -> list[MovingObject]:
    """A steady stream of normal objects entering each lane from the left, already in its steady
    state at frame 0 (streams start one slow crossing earlier)."""
    objects = []
    crossing = int((size + 2 * radius) / (NORMAL_SPEED[0] * size / 64))
    for y in lanes:
        t = -crossing - int(rng.integers(0, 30))
        while t < num_frames:
            speed = rng.uniform(*NORMAL_SPEED) * size / 64
            objects.append(MovingObject(str(rng.choice(NORMAL_SHAPES)), y, -radius, speed, t))
            t += int(rng.integers(18, 34))
    return objects


@dataclass
class Scene:
    """What a fixed camera sees in every video: the background and the lanes."""

    background: np.ndarray
    lanes: np.ndarray

    @classmethod
    def generate(cls, rng: np.random.Generator, size: int) -> Scene:
        background = gaussian_filter(rng.normal(0, 1, (size, size)), sigma=size / 16)
        background = 90 + 25 * background / (background.std() + 1e-8)
        return cls(background, np.linspace(0.25, 0.75, 3) * size + rng.uniform(-2, 2, 3))


def generate_video(
    rng: np.random.Generator,
    scene: Scene,
    num_frames: int,
    anomaly: str | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """One video ``(num_frames, size, size, 1)`` uint8 and its ``bool[num_frames]`` labels."""
    size = scene.background.shape[0]
    radius = OBJECT_RADIUS * size / 64
    background, lanes = scene.background, scene.lanes
    objects = _lane_objects(rng, size, num_frames, lanes, radius)
    if anomaly is not None:
        # Turn one normal object into the anomaly rather than adding one, so that anomalous
        # frames hold as many objects (and bright pixels) as normal ones.
        t_anomaly = int(rng.integers(num_frames // 4, num_frames // 2))
        obj = min(objects, key=lambda o: abs(o.t0 - t_anomaly))
        obj.anomalous = True
        if anomaly == "appearance":
            obj.shape = "cross"
        elif anomaly == "fast":
            obj.vx *= rng.uniform(*FAST_FACTOR)
        elif anomaly == "reverse":
            obj.x0, obj.vx = size + radius, -obj.vx
        else:
            raise ValueError(f"unknown anomaly kind {anomaly!r}; expected one of {ANOMALY_KINDS}")

    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    checker = np.where(((yy // 2 + xx // 2) % 2) == 0, CHECKER_CONTRAST, -CHECKER_CONTRAST)
    exposure = np.linspace(-0.5, 0.5, EXPOSURE_SAMPLES)
    frames = np.empty((num_frames, size, size, 1), dtype=np.uint8)
    labels = np.zeros(num_frames, dtype=bool)
    for t in range(num_frames):
        frame = background.copy()
        for obj in objects:
            x = obj.x(t)
            reach = 1.3 * radius + abs(obj.vx)
            if t < obj.t0 or x + reach < 0 or x - reach > size:
                continue
            box = (slice(max(int(obj.y - reach), 0), int(obj.y + reach) + 2),
                   slice(max(int(x - reach), 0), int(x + reach) + 2))
            coverage = np.mean([_shape_mask(obj.shape, yy[box] - obj.y, xx[box] - obj.x(t + s),
                                            radius) for s in exposure], axis=0)
            if coverage.any():
                brightness = OBJECT_BRIGHTNESS + (checker[box] if obj.shape == "cross" else 0.0)
                frame[box] += coverage * (brightness - frame[box])
                labels[t] |= obj.anomalous
        frame += rng.normal(0, 4, frame.shape)
        frames[t, ..., 0] = np.clip(frame, 0, 255).astype(np.uint8)
    return frames, labels


def generate_split(
    seed: int, num_videos: int, num_frames: int, size: int, anomalous: bool
) -> list[VideoRecord]:
    """Deterministic videos of one split; test videos cycle through `ANOMALY_KINDS`.

    The scene depends on ``seed`` alone; the objects of each split on ``(seed, split)``.
    """
    scene = Scene.generate(np.random.default_rng(seed), size)
    rng = np.random.default_rng([seed, int(anomalous)])
    records = []
    for i in range(num_videos):
        kind = ANOMALY_KINDS[i % len(ANOMALY_KINDS)] if anomalous else None
        frames, labels = generate_video(rng, scene, num_frames, kind)
        records.append(VideoRecord(
            name=f"{i + 1:02d}", source=frames, num_frames=num_frames,
            labels=labels if anomalous else None, extras={"anomaly": kind},
        ))
    return records


class SyntheticDataModule(VideoDataModule):
    """The embedded default benchmark (`data=synthetic`); see the module docstring.

    Args:
        num_train_videos: Normal training videos.
        num_test_videos: Test videos, each with one anomaly (kinds cycle).
        frames_per_video: Frames in every video.
        size: Generated frame size (square); ``image_size`` may resize it.
        seed: Generator seed: the scene, and the objects of each split.
        **kwargs: `VideoDataModule` arguments.
    """

    def __init__(
        self,
        num_train_videos: int = 8,
        num_test_videos: int = 6,
        frames_per_video: int = 80,
        size: int = 64,
        seed: int = 0,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        self.num_videos = {"train": num_train_videos, "test": num_test_videos}
        self.frames_per_video = frames_per_video
        self.size = size
        self.seed = seed

    @property
    def label_source(self) -> str:
        return f"synthetic generator (seed {self.seed})"

    def load_records(self, split: str) -> list[VideoRecord]:
        return generate_split(
            self.seed, self.num_videos[split], self.frames_per_video,
            self.size, anomalous=split == "test",
        )
