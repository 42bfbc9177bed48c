"""TV-L1 optical flow of the preprocessed frames, computed once per video and cached as uint8.

Paper 004 (§IV, §V.B.2) trains a temporal autoencoder on the TV-L1 optical flow (u, v) of
consecutive frames, computed on the same preprocessed frames (resized, grey) the spatial network
sees, with the first frame of each video dropped so that frames and flows align. Here:

* **What is computed**: flow ``t`` is the TV-L1 flow from frame ``t − 1`` to frame ``t`` of the
  *cached* frames (after resizing; RGB frames are turned grey for the flow), by OpenCV's
  ``cv2.optflow.DualTVL1OpticalFlow_create`` (opencv-contrib) with its default parameters
  unless configured (``FlowConfig``). ``method: farneback`` is an explicit fallback
  (``cv2.calcOpticalFlowFarneback``), logged as such; TV-L1 is the paper's.
* **Alignment**: a flow video has as many entries as its frame video; entry 0 is a zero-motion
  placeholder that is never read, because with flow on the clip index of a split starts at
  frame 1 (`vad.data.datamodule.VideoDataModule.setup`). Frames and flows are then gathered with
  the same indices: clip frame ``t`` comes with the flow from ``t − 1`` to ``t``.
* **Storage and normalisation** (our choice; the paper does not say, and it matters: the
  autoencoders end in a sigmoid and Eq. 2 compares flow and pixel losses): each component in
  pixels (at the cached resolution) is clipped to ``±bound`` and stored as uint8
  ``q = round(127.5 + 127.5 · u / bound)`` (resolution ``2·bound/255`` px; 1/16 px at the
  default ``bound = 8``). Methods see ``q / 255`` in [0, 1] (zero motion = 0.5), as
  `vad.data.datamodule.float_clips` does for frames. A horizontal flip of a flow clip is
  therefore ``u → 1 − u`` (and the W axis reversed).
* **Cache**: ``<cache_dir>/<name>-<frame key>-flow-<flow key>.npy`` beside the frame cache, keyed
  by the frame cache key (source, size, colour) and every flow parameter; written to a temporary
  file, fsync'ed and renamed into place (as `vad.data.cache`), checked against the frame count
  and size when opened. Videos are computed in parallel threads (OpenCV releases the GIL) under
  one progress bar; the measured frames/s is logged. Without a cache dir (generated data) flows
  are computed in memory.
"""

from __future__ import annotations

import hashlib
import logging
import os
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

import cv2
import numpy as np
from tqdm.auto import tqdm

from vad.data.cache import atomic_npy, cache_key, load_frames
from vad.data.records import VideoRecord

log = logging.getLogger(__name__)

FLOW_VERSION = 1  # bump when what lands in a flow cache changes
FLOW_THREADS = max(1, min(4, os.cpu_count() or 1))


@dataclass(frozen=True)
class FlowConfig:
    """Optical-flow settings (``data.flow``); every value but the method is our choice.

    Args:
        method: ``tvl1`` (paper) or ``farneback`` (a faster fallback, logged as such).
        bound: Flow components are clipped to ±``bound`` pixels before quantisation to uint8.
        splits: Splits that get flow (``train`` covers ``val``); only the spatial network runs
            at test time, so the test split needs none (ours; add ``test`` to drop frame 0 of
            the test videos as the paper does).
        tvl1: Keyword arguments of ``cv2.optflow.DualTVL1OpticalFlow_create`` (tau, lambda_,
            theta, nscales, warps, epsilon, innnerIterations, outerIterations, scaleStep, gamma,
            medianFiltering); empty = OpenCV's defaults.
        threads: Videos computed at once.
    """

    method: str = "tvl1"
    bound: float = 8.0
    splits: tuple[str, ...] = ("train",)
    tvl1: dict = field(default_factory=dict)
    threads: int = FLOW_THREADS

    def __post_init__(self) -> None:
        if self.method not in ("tvl1", "farneback"):
            raise ValueError(f"flow.method must be tvl1 or farneback, got {self.method!r}")
        if self.bound <= 0:
            raise ValueError(f"flow.bound must be > 0, got {self.bound}")
        object.__setattr__(self, "splits", tuple(self.splits))
        object.__setattr__(self, "tvl1", dict(self.tvl1))
        bad = set(self.splits) - {"train", "test"}
        if bad:
            raise ValueError(f"flow.splits may hold train and test, got {sorted(bad)}")

    def key(self) -> str:
        """A short hash of everything that determines the stored flow."""
        params = {k: v for k, v in asdict(self).items() if k not in ("splits", "threads")}
        params["tvl1"] = sorted(self.tvl1.items())  # the same arguments in any order
        text = f"v{FLOW_VERSION};{sorted((k, str(v)) for k, v in params.items())}"
        return hashlib.sha1(text.encode()).hexdigest()[:12]


def quantise(flow: np.ndarray, bound: float) -> np.ndarray:
    """float flow in pixels ``(..., 2)`` → uint8 ``round(127.5 + 127.5 · clip(u / bound))``."""
    scaled = np.clip(flow / bound, -1.0, 1.0) * 127.5 + 127.5
    return np.rint(scaled).astype(np.uint8)


def dequantise(q: np.ndarray, bound: float) -> np.ndarray:
    """uint8 → flow in pixels (the inverse of `quantise` up to its resolution)."""
    return (q.astype(np.float32) - 127.5) / 127.5 * bound


def _grey(frame: np.ndarray) -> np.ndarray:
    """``(H, W, C)`` uint8 → ``(H, W)`` uint8."""
    return frame[..., 0] if frame.shape[-1] == 1 else cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY)


def compute_flow(frames: np.ndarray, cfg: FlowConfig, out: np.ndarray | None = None,
                 progress=None) -> np.ndarray:
    """Flow of a whole video: uint8 ``(N, H, W, 2)``; entry t is frame t−1 → t, entry 0 zero.

    Args:
        frames: ``(N, H, W, C)`` uint8 frames (cached, preprocessed).
        cfg: The flow settings.
        out: Where to write (e.g. a memory map); allocated if None.
        progress: Called with 1 after each flow frame (a progress bar's ``update``).
    """
    n, h, w = frames.shape[:3]
    if out is None:
        out = np.empty((n, h, w, 2), dtype=np.uint8)
    out[0] = 128  # zero-motion placeholder, never read (clips start at frame 1)
    if cfg.method == "tvl1":
        tvl1 = cv2.optflow.DualTVL1OpticalFlow_create(**cfg.tvl1)
    previous = _grey(np.asarray(frames[0]))
    for t in range(1, n):
        current = _grey(np.asarray(frames[t]))
        if cfg.method == "tvl1":
            flow = tvl1.calc(previous, current, None)
        else:
            flow = cv2.calcOpticalFlowFarneback(previous, current, None, 0.5, 3, 15, 3, 5, 1.2, 0)
        out[t] = quantise(flow, cfg.bound)
        previous = current
        if progress is not None:
            progress(1)
    return out


def flow_path(record: VideoRecord, cache_dir: Path, image_size, grayscale: bool,
              cfg: FlowConfig) -> Path:
    """Where ``record``'s flow lives: beside its frame cache, keyed by both keys."""
    safe_name = record.name.replace("/", "_").replace("\\", "_")
    frame_key = cache_key(record, image_size, grayscale)
    return Path(cache_dir) / f"{safe_name}-{frame_key}-flow-{cfg.key()}.npy"


def _open_valid(path: Path, frames_shape: tuple[int, ...]) -> np.ndarray | None:
    """The memory-mapped flow at ``path`` if it exists and fits the frames, else None."""
    if not path.exists():
        return None
    try:
        flow = np.load(path, mmap_mode="r")
    except (ValueError, OSError, EOFError) as err:
        log.warning("ignoring unreadable flow cache %s (%s); computing again", path, err)
        return None
    if flow.dtype != np.uint8 or flow.shape != (*frames_shape[:3], 2):
        log.warning("ignoring flow cache %s with shape %s; computing again", path, flow.shape)
        return None
    return flow


def _write(frames: np.ndarray, path: Path, cfg: FlowConfig, progress=None) -> None:
    """Compute the flows of ``frames`` into ``path`` (`vad.data.cache.atomic_npy`)."""
    with atomic_npy(path) as create:
        compute_flow(frames, cfg, create((*frames.shape[:3], 2)), progress)


def build_flow_cache(records: Sequence[VideoRecord], cache_dir: Path | None, image_size,
                     grayscale: bool, cfg: FlowConfig, desc: str = "optical flow") -> float | None:
    """Compute the flows not cached yet (videos in parallel, one progress bar).

    Returns:
        The measured flow frames/s, or None when nothing was computed (or no cache dir).
    """
    if cache_dir is None:
        return None
    todo = []
    for record in records:
        if isinstance(record.source, np.ndarray):
            continue
        frames = load_frames(record, cache_dir, image_size, grayscale)
        path = flow_path(record, cache_dir, image_size, grayscale, cfg)
        if _open_valid(path, frames.shape) is None:
            todo.append((frames, path))
    if not todo:
        return None
    if cfg.method != "tvl1":
        log.warning("optical flow: using the %s fallback, not the paper's TV-L1", cfg.method)
    total = sum(len(frames) - 1 for frames, _ in todo)
    start = time.perf_counter()
    with tqdm(total=total, desc=desc, unit="flow") as bar, \
            ThreadPoolExecutor(max(1, cfg.threads)) as pool:
        list(pool.map(lambda job: _write(*job, cfg, bar.update), todo))
    fps = total / max(time.perf_counter() - start, 1e-9)
    log.info("optical flow (%s): %d frames in %d videos, %.1f frames/s", cfg.method, total,
             len(todo), fps)
    return fps


def load_flow(record: VideoRecord, frames: np.ndarray, cache_dir: Path | None, image_size,
              grayscale: bool, cfg: FlowConfig) -> np.ndarray:
    """The record's flow ``(N, H, W, 2)`` uint8, memory-mapped from the cache (computed first
    if missing); without a cache dir (or for in-memory records) computed into memory."""
    if cache_dir is None or isinstance(record.source, np.ndarray):
        return compute_flow(np.asarray(frames), cfg)
    path = flow_path(record, cache_dir, image_size, grayscale, cfg)
    flow = _open_valid(path, frames.shape)
    if flow is None:
        _write(frames, path, cfg)
        flow = _open_valid(path, frames.shape)
    return flow
