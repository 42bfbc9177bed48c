"""`VideoDataModule`: the one LightningDataModule every dataset shares.

A dataset subclass only says where its videos are (`load_records`). This class turns records into
clips: it decodes each video once (`prepare_data` fills the cache), memory-maps the frames in
`setup`, and builds three clip indices:

* ``train``: windows over the first ``1 - val_fraction`` of each training video, with stride
  augmentation;
* ``val``: windows over the held-out end of each training video (checkpoint selection never
  sees test labels);
* ``test``: every scorable target frame of every test video, once per window start.

Batches are `ClipBatch` named tuples. The loader gathers each batch from one uint8 store per split
(`FrameStore`) in one step and delivers it as uint8; float conversion and the ``(B, C, T, H, W)``
layout happen once per batch on the training device (`on_after_batch_transfer`).

Optical flow (``flow``, off by default): the TV-L1 flow of consecutive cached frames
(`vad.data.flow`), cached beside the frames, held in a second uint8 store per split and gathered
with the same indices; the clip index of a split with flow starts at frame 1 (the first frame of
each video has no flow), and batches carry it in ``ClipBatch.flow``.

Test-time distortions (``set_test_distortion``, the robustness suite of ``vad.evaluate``): the
test frames are distorted as the test store is built (`vad.data.distortions`), so methods see
distorted clips without knowing; a subsampling distortion keeps every d-th frame, and
`test_records` then hold the kept frames' labels.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import replace
from functools import cached_property
from pathlib import Path
from typing import NamedTuple

import lightning as L
import numpy as np
import torch
from lightning.fabric.utilities.apply_func import move_data_to_device
from torch.utils.data import DataLoader, Dataset, RandomSampler

from vad.data.cache import build_cache, load_frames
from vad.data.clips import ClipSpec, build_clip_index
from vad.data.distortions import Distortion
from vad.data.flow import FlowConfig, build_flow_cache, load_flow
from vad.data.layouts import (
    BenchmarkCounts,
    DatasetInfo,
    DatasetRecords,
    check_counts,
    read_dataset,
)
from vad.data.records import VideoRecord
from vad.utils.rng import rng_states, set_rng_states


class ClipBatch(NamedTuple):
    """A batch of clips, in one of two forms.

    The loader delivers *raw* batches: ``clip`` is uint8 ``(B, T', H, W, C)``, as stored, so that
    a batch is a quarter of its float size to gather, pin, copy between worker processes and send
    to the device. On the training device `VideoDataModule.on_after_batch_transfer` turns it into
    the form every method sees: ``clip`` float ``(B, C, T', H, W)`` in ``value_range``
    (`float_clips`); T' = T (+1 for ``next``).

    Attributes:
        clip: The frames (see above).
        video: ``(B,)`` index of the video in the split's record list.
        frames: ``(B, n_targets)`` frame indices (0-based) of the target frames.
        index: ``(B,)`` index of the clip in its split (keys per-sample state such as masks).
        flow: None unless the datamodule has ``flow`` on for the split: raw, uint8
            ``(B, T', H, W, 2)`` (quantised u, v; `vad.data.flow`); as methods see it, float
            ``(B, 2, T', H, W)`` in [0, 1] (zero motion = 0.5). Entry t is the flow from clip
            frame t − 1 (one frame before the clip for t = 0) to clip frame t.
    """

    clip: torch.Tensor
    video: torch.Tensor
    frames: torch.Tensor
    index: torch.Tensor
    flow: torch.Tensor | None = None


def float_clips(batch: ClipBatch, value_range: Sequence[float]) -> ClipBatch:
    """A raw batch as methods see it: uint8 ``(B, T', H, W, C)`` → float ``(B, C, T', H, W)``
    mapped linearly from [0, 255] to ``value_range``, on the batch's device; a uint8 ``flow``
    ``(B, T', H, W, 2)`` → float ``(B, 2, T', H, W)`` ``q / 255`` in [0, 1] (whatever
    ``value_range``: the flow's own scale, `vad.data.flow`). Float batches pass through
    unchanged."""
    if batch.clip.dtype != torch.uint8:
        return batch
    low, high = value_range
    uint8 = batch.clip.permute(0, 4, 1, 2, 3)
    # A fresh tensor, not `.contiguous()`: with C = 1 that keeps the permuted strides, which send
    # convolutions down their channels-last kernels (other numerics than the plain layout).
    clip = torch.empty(uint8.shape, device=uint8.device).copy_(uint8)
    batch = batch._replace(clip=clip.mul_((high - low) / 255.0).add_(low))
    if batch.flow is not None and batch.flow.dtype == torch.uint8:
        flow_uint8 = batch.flow.permute(0, 4, 1, 2, 3)
        flow = torch.empty(flow_uint8.shape, device=flow_uint8.device).copy_(flow_uint8)
        batch = batch._replace(flow=flow.mul_(1.0 / 255.0))
    return batch


class FrameStore:
    """Every decoded frame of one split, from which a batch of clips is gathered in one step.

    Frames that are in memory (generated videos) are concatenated into one contiguous uint8
    array ``(N, H, W, C)``, and ``device_resident`` frames into one tensor on the training device;
    a batch is then one vectorised index (``np.take``, several times faster than indexing a CPU
    tensor). Memory-mapped cache files stay one per video (concatenating them would copy the whole
    cache, tens of GB for ShanghaiTech): a clip's evenly spaced frames are one strided slice of its
    video's map, copied straight into the preallocated uint8 batch. No per-sample conversion
    either way.

    Args:
        videos: Per video, ``(N_v, H, W, C)`` uint8 frames (arrays or memory maps).
        device: Hold the concatenated frames on this device (``device_resident``); None keeps
            them on the host.
    """

    def __init__(self, videos: Sequence[np.ndarray], device: torch.device | str | None = None
                 ) -> None:
        self.lengths = np.array([len(v) for v in videos], dtype=np.int64)
        self.first_frame = np.concatenate([[0], np.cumsum(self.lengths)[:-1]]).astype(np.int64)
        self.frame_shape = tuple(videos[0].shape[1:])
        self.videos: Sequence[np.ndarray] = ()
        self.frames: np.ndarray | torch.Tensor | None = None
        if device is not None:
            self.frames = torch.from_numpy(np.concatenate(videos)).to(device)
        elif not any(isinstance(v, np.memmap) for v in videos):
            self.frames = np.concatenate(videos)
        else:
            self.videos = videos

    def __len__(self) -> int:
        return len(self.lengths)

    def video(self, i: int) -> np.ndarray | torch.Tensor:
        """All frames of video ``i``."""
        if self.frames is None:
            return self.videos[i]
        return self.frames[self.first_frame[i]: self.first_frame[i] + self.lengths[i]]

    def gather(self, video: np.ndarray, frames: np.ndarray) -> torch.Tensor:
        """uint8 ``(B, T', H, W, C)``: frames ``frames[b]`` of video ``video[b]``."""
        shape = (*frames.shape, *self.frame_shape)
        if isinstance(self.frames, torch.Tensor):
            flat = torch.from_numpy((self.first_frame[video][:, None] + frames).reshape(-1))
            return self.frames[flat.to(self.frames.device, non_blocking=True)].reshape(shape)
        if self.frames is not None:
            flat = (self.first_frame[video][:, None] + frames).reshape(-1)
            return torch.from_numpy(np.take(self.frames, flat, axis=0).reshape(shape))
        out = np.empty(shape, dtype=np.uint8)
        for b, (v, f) in enumerate(zip(video, frames)):
            spacing = f[1] - f[0] if len(f) > 1 else 1
            if spacing > 0 and np.all(np.diff(f) == spacing):
                out[b] = self.videos[v][f[0]: f[-1] + 1: spacing]
            else:
                np.take(self.videos[v], f, axis=0, out=out[b])
        return torch.from_numpy(out)


class ClipDataset(Dataset):
    """Clips of one split; the loader asks for a whole batch at once (`__getitems__`).

    Args:
        store: The split's frames.
        index: ``int64[N, 3]`` rows ``(video, start, step)`` from `build_clip_index`.
        spec: The clip shape.
        flow_store: The split's optical flows (`vad.data.flow`), indexed like ``store``; None
            (the default) gives batches without ``flow``.
    """

    def __init__(self, store: FrameStore, index: np.ndarray, spec: ClipSpec,
                 flow_store: FrameStore | None = None) -> None:
        self.store = store
        self.flow_store = flow_store
        self.index = index
        self.spec = spec
        self.offsets = spec.offsets
        self.targets = spec.offsets[spec.target_positions]

    @property
    def frame_size(self) -> tuple[int, int]:
        """``(H, W)`` of the frames."""
        return self.store.frame_shape[:2]

    def __len__(self) -> int:
        return len(self.index)

    def __getitems__(self, indices: Sequence[int]) -> ClipBatch:
        """The raw batch of clips ``indices``, gathered in one step (see `ClipBatch`)."""
        indices = np.asarray(indices, dtype=np.int64)
        video, start, step = self.index[indices].T
        frames = start[:, None] + self.offsets[None] * step[:, None]
        targets = start[:, None] + self.targets[None] * step[:, None]
        flow = None if self.flow_store is None else self.flow_store.gather(video, frames)
        return ClipBatch(self.store.gather(video, frames), torch.from_numpy(video),
                         torch.from_numpy(targets), torch.from_numpy(indices), flow)

    def __getitem__(self, i: int) -> ClipBatch:
        """One raw clip, without the batch axis: ``clip`` uint8 ``(T', H, W, C)``."""
        return ClipBatch(*(None if field is None else field[0]
                           for field in self.__getitems__([i])))


class ShuffleSampler(RandomSampler):
    """`torch.utils.data.RandomSampler`, resumable in the middle of an epoch.

    As there, each epoch draws one seed from the global torch generator and shuffles with it, so
    a run gives the same batches as with ``shuffle=True`` (and DDP still sees a shuffled loader);
    the seed is kept, so that a resumed epoch can shuffle the same way again and skip the clips
    already trained on (`ResumableDataLoader`).
    """

    def __init__(self, data_source: Dataset) -> None:
        super().__init__(data_source)
        self.epoch_seed: int | None = None
        self._resume: tuple[int, int] | None = None

    def resume(self, epoch_seed: int, skip: int) -> None:
        """Make the next epoch the one shuffled with ``epoch_seed``, from its clip ``skip``."""
        self._resume = (epoch_seed, skip)

    def __iter__(self):
        if self._resume is None:
            self.epoch_seed, skip = int(torch.empty((), dtype=torch.int64).random_().item()), 0
        else:
            (self.epoch_seed, skip), self._resume = self._resume, None
        generator = torch.Generator()
        generator.manual_seed(self.epoch_seed)
        yield from torch.randperm(self.num_samples, generator=generator).tolist()[skip:]


class ResumableDataLoader(DataLoader):
    """The training loader: Lightning saves its `state_dict` in every checkpoint and, when a run
    resumes in the middle of an epoch, calls `load_state_dict`, so the epoch goes on with the
    same clip order from the next unseen batch, and with the global random generators as they
    were when the checkpoint was written (starting this loader, like any DataLoader, draws from
    them). Without a `ShuffleSampler` (e.g. DDP's DistributedSampler) the epoch restarts."""

    batches_done = 0
    _resume: dict | None = None

    def __iter__(self):
        iterator = super().__iter__()
        self.batches_done = 0
        if self._resume is not None:
            self.batches_done = self._resume["batches_done"]
            set_rng_states(self._resume["rng"])
            self._resume = None
        return _CountingIterator(iterator, self)

    def state_dict(self) -> dict:
        return {"epoch_seed": getattr(self.sampler, "epoch_seed", None),
                "batches_done": self.batches_done, "rng": rng_states()}

    def load_state_dict(self, state: dict) -> None:
        if isinstance(self.sampler, ShuffleSampler) and state["epoch_seed"] is not None:
            self.sampler.resume(state["epoch_seed"], state["batches_done"] * self.batch_size)
            self._resume = state


class _CountingIterator:
    """A DataLoader iterator that counts the batches it has handed out (into ``loader``)."""

    def __init__(self, iterator, loader: ResumableDataLoader) -> None:
        self.iterator = iterator
        self.loader = loader

    def __iter__(self):
        return self

    def __next__(self):
        batch = next(self.iterator)
        self.loader.batches_done += 1
        return batch


def _batch_as_is(batch: ClipBatch) -> ClipBatch:
    """``collate_fn``: `ClipDataset.__getitems__` already returns a whole batch."""
    return batch


AUTO_WORKERS_MAX = 4


def available_cores() -> int:
    """The CPU cores this process may run on (its affinity mask, e.g. a cluster job's share)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


def resolve_workers(num_workers: int | str, device: str, cores: int | None = None) -> int:
    """``data.num_workers``; ``auto`` (ours) → 0 when training on the CPU or on a machine of 2
    cores or fewer, where worker processes compete with the training step for the cores and
    slow it down (README, "Data path and speed"); else min(4, cores − 1), one core left for the
    main process.

    Args:
        num_workers: A count, or ``"auto"``.
        device: The training device's type (``cpu``, ``cuda``, ...).
        cores: Cores available (default: this process's, `available_cores`).
    """
    if num_workers != "auto":
        return int(num_workers)
    cores = available_cores() if cores is None else cores
    if device == "cpu" or cores <= 2:
        return 0
    return min(AUTO_WORKERS_MAX, cores - 1)


class VideoDataModule(L.LightningDataModule):
    """Shared clip pipeline; subclasses implement `load_records`.

    Args:
        clip: Clip shape, usually ``${model.clip}``: ``length``, ``target``, ``dilation``,
            ``future_offset`` (see `vad.data.clips`).
        image_size: ``[H, W]`` after resizing; ``None`` keeps the source size.
        grayscale: One channel if True, RGB otherwise.
        value_range: Pixel values are mapped linearly from [0, 255] to this range.
        batch_size: Training batch size.
        eval_batch_size: Batch size for validation and test.
        num_workers: DataLoader workers, or ``auto`` (`resolve_workers`: 0 when training on
            the CPU or with 2 cores or fewer, else min(4, cores − 1)).
        val_fraction: Held-out end of each training video used for ``val/loss``.
        train_strides: Temporal augmentation strides for training clips.
        test_window_step: Frames between test window starts (1 scores every window).
        cache_dir: Where decoded videos are cached; ``None`` decodes into memory.
        pin_memory: Pin host memory for faster host-to-GPU copies.
        device_resident: Hold every decoded frame (uint8) on the training device, so that clips
            are sliced there and training is never input-bound (Ped2 at 256×256 grey is about
            300 MB); needs ``num_workers: 0``.
        flow: Optical flow for the splits in ``flow.splits`` (`vad.data.flow.FlowConfig`
            arguments); None (default) = off, nothing changes.
    """

    def __init__(
        self,
        clip: dict | ClipSpec,
        image_size: Sequence[int] | None = (256, 256),
        grayscale: bool = True,
        value_range: Sequence[float] = (0.0, 1.0),
        batch_size: int = 8,
        eval_batch_size: int = 16,
        num_workers: int | str = 0,
        val_fraction: float = 0.1,
        train_strides: Sequence[int] = (1,),
        test_window_step: int = 1,
        cache_dir: str | None = None,
        pin_memory: bool = False,
        device_resident: bool = False,
        flow: dict | FlowConfig | None = None,
    ) -> None:
        super().__init__()
        self.flow = (flow if flow is None or isinstance(flow, FlowConfig)
                     else FlowConfig(**flow))
        self.spec = clip if isinstance(clip, ClipSpec) else ClipSpec(**clip)
        self.image_size = tuple(image_size) if image_size is not None else None
        self.grayscale = grayscale
        self.value_range = tuple(value_range)
        self.batch_size = batch_size
        self.eval_batch_size = eval_batch_size
        self.num_workers = num_workers
        self.val_fraction = val_fraction
        self.train_strides = tuple(train_strides)
        self.test_window_step = test_window_step
        self.cache_dir = Path(cache_dir) if cache_dir else None
        self.pin_memory = pin_memory and not device_resident
        self.device_resident = device_resident
        if device_resident and num_workers not in (0, "auto"):
            raise ValueError("device_resident data is sliced on the device: set num_workers=0")
        self.datasets: dict[str, ClipDataset] = {}
        self.test_distortion: Distortion | None = None  # the robustness suite's (evaluate)
        self._records: dict[str, list[VideoRecord]] = {}

    # -- what a dataset subclass provides ---------------------------------------------------------
    def load_records(self, split: str) -> list[VideoRecord]:
        """The videos of ``split`` (``"train"`` or ``"test"``); test records carry labels."""
        raise NotImplementedError

    @property
    def label_source(self) -> str:
        """Which label file or rule the test labels come from (recorded in ``metrics.json``)."""
        return type(self).__name__

    # -- shared pipeline --------------------------------------------------------------------------
    def records(self, split: str) -> list[VideoRecord]:
        if split not in self._records:
            self._records[split] = self.load_records(split)
            if not self._records[split]:
                raise RuntimeError(f"{type(self).__name__}: the {split} split has no videos")
        return self._records[split]

    @property
    def test_records(self) -> list[VideoRecord]:
        """The test videos as scored: under a subsampling `test_distortion`, only the kept
        frames, with their labels."""
        records = self.records("test")
        if self.test_distortion is None:
            return records
        kept = [self.test_distortion.kept(r.num_frames) for r in records]
        return [replace(r, num_frames=len(k), labels=None if r.labels is None else r.labels[k])
                for r, k in zip(records, kept)]

    def set_test_distortion(self, distortion: Distortion | None) -> None:
        """Score the test split through ``distortion`` (`vad.data.distortions`; None: clean
        frames) from the next test run on: the test clips are rebuilt in `setup`."""
        if distortion is not None and self.has_flow("test"):
            raise ValueError("test-time distortions do not recompute the test split's optical "
                             "flow: evaluate without data.flow on the test split")
        self.test_distortion = distortion
        self.datasets.pop("test", None)

    def prepare_data(self) -> None:
        for split in ("train", "test"):
            build_cache(self.records(split), self.cache_dir, self.image_size, self.grayscale,
                        desc=f"caching {type(self).__name__} {split}")
            if self.has_flow(split):
                build_flow_cache(self.records(split), self.cache_dir, self.image_size,
                                 self.grayscale, self.flow,
                                 desc=f"optical flow {type(self).__name__} {split}")

    def has_flow(self, split: str) -> bool:
        """Whether batches of ``split`` (``train`` also covers ``val``) carry optical flow."""
        return self.flow is not None and split in self.flow.splits

    def _flow_store(self, split: str, store: FrameStore) -> FrameStore | None:
        if not self.has_flow(split):
            return None
        def host_frames(i: int) -> np.ndarray:
            frames = store.video(i)
            return frames.cpu().numpy() if isinstance(frames, torch.Tensor) else frames

        flows = [load_flow(r, host_frames(i), self.cache_dir, self.image_size, self.grayscale,
                           self.flow)
                 for i, r in enumerate(self.records(split))]
        device = store.frames.device if isinstance(store.frames, torch.Tensor) else None
        return FrameStore(flows, device=device if self.device_resident else None)

    def _store(self, split: str) -> FrameStore:
        frames = [load_frames(r, self.cache_dir, self.image_size, self.grayscale)
                  for r in self.records(split)]
        if split == "test" and self.test_distortion is not None:
            frames = [self.test_distortion.frames(f, i) for i, f in enumerate(frames)]
        if not self.device_resident:
            return FrameStore(frames)
        device = self.trainer.strategy.root_device if self.trainer is not None else "cpu"
        return FrameStore(frames, device=device)

    def mean_frame(self, split: str = "train") -> torch.Tensor:
        """Per-pixel mean of every frame of ``split``'s videos, ``(C, H, W)`` float32 in
        ``value_range`` (a background frame; computed from the uint8 cache, video by video)."""
        total, count = None, 0
        for record in self.records(split):
            frames = load_frames(record, self.cache_dir, self.image_size, self.grayscale)
            video_sum = np.asarray(frames, dtype=np.float64).sum(axis=0)
            total = video_sum if total is None else total + video_sum
            count += len(frames)
        low, high = self.value_range
        mean = torch.from_numpy(total / count).float().permute(2, 0, 1)
        return mean * (high - low) / 255.0 + low

    def _validation_cut(self, num_frames: int) -> int:
        """First held-out frame of a training video: at least one clip span is held out (if
        ``val_fraction > 0``) so that every video yields validation clips when it can."""
        if self.val_fraction <= 0:
            return num_frames
        held_out = max(int(round(num_frames * self.val_fraction)), self.spec.span())
        return num_frames - held_out if num_frames - held_out >= self.spec.span() else num_frames

    def setup(self, stage: str | None = None) -> None:
        if stage in (None, "fit", "validate") and "train" not in self.datasets:
            store = self._store("train")
            flow_store = self._flow_store("train", store)
            first = 1 if flow_store is not None else 0  # frame 0 has no flow
            cuts = [self._validation_cut(n) for n in store.lengths]
            train_ranges = [(i, first, cut) for i, cut in enumerate(cuts)]
            val_ranges = [(i, cut, n) for i, (cut, n) in enumerate(zip(cuts, store.lengths))]
            train_index = build_clip_index(train_ranges, self.spec, strides=self.train_strides)
            val_index = build_clip_index(val_ranges, self.spec)
            if len(train_index) == 0:
                raise RuntimeError(
                    f"{type(self).__name__}: no training clip fits: videos are shorter than a "
                    f"clip span of {self.spec.span()} frames"
                )
            self.datasets["train"] = ClipDataset(store, train_index, self.spec, flow_store)
            self.datasets["val"] = ClipDataset(store, val_index, self.spec, flow_store)
            if len(val_index) == 0 and self.trainer is not None:
                # No held-out frames (data.val_fraction=0): validation is skipped outright
                # rather than run over an empty loader, which Lightning reports on every run
                # ("Total length of `DataLoader` across ranks is zero").
                self.trainer.limit_val_batches = 0
        if stage in (None, "test", "predict") and "test" not in self.datasets:
            store = self._store("test")
            flow_store = self._flow_store("test", store)
            first = 1 if flow_store is not None else 0
            ranges = [(i, first, n) for i, n in enumerate(store.lengths)]
            index = build_clip_index(ranges, self.spec, window_step=self.test_window_step,
                                     cover_end=True)
            self.datasets["test"] = ClipDataset(store, index, self.spec, flow_store)

    def calibration_clips(self) -> tuple[str, ClipDataset]:
        """Normal footage to calibrate a detection threshold on (`vad.checkpoint`), as
        ``(source, clips)``: ``("validation clips", the val split)``, or in a run without one
        (``val_fraction=0``) ``("training clips", every window of the training videos, window
        step 1, in order)``. Needs the ``fit`` setup."""
        val = self.datasets["val"]
        if len(val):
            return "validation clips", val
        train = self.datasets["train"]
        first = 1 if train.flow_store is not None else 0  # frame 0 has no flow
        ranges = [(i, first, cut) for i, cut in
                  enumerate(self._validation_cut(n) for n in train.store.lengths)]
        return "training clips", ClipDataset(train.store, build_clip_index(ranges, self.spec),
                                             self.spec, train.flow_store)

    def eval_loader(self, dataset: ClipDataset) -> DataLoader:
        """An in-order loader of ``dataset`` with the evaluation batch size."""
        return self._loader(dataset, shuffle=False)

    @property
    def workers(self) -> int:
        """The worker processes each loader gets (``num_workers``, ``auto`` resolved for the
        trainer's device; none for device-resident data or without a trainer)."""
        if self.device_resident:
            return 0
        device = self.trainer.strategy.root_device.type if self.trainer is not None else "cpu"
        return resolve_workers(self.num_workers, device)

    def _loader(self, split: str | ClipDataset, shuffle: bool) -> DataLoader:
        dataset = self.datasets[split] if isinstance(split, str) else split
        workers = self.workers
        return (ResumableDataLoader if shuffle else DataLoader)(
            dataset,
            batch_size=self.batch_size if split == "train" else self.eval_batch_size,
            sampler=ShuffleSampler(dataset) if shuffle else None,
            collate_fn=_batch_as_is,
            num_workers=workers,
            pin_memory=self.pin_memory,
            persistent_workers=workers > 0,
            drop_last=False,
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", shuffle=False)

    def predict_dataloader(self) -> DataLoader:
        return self._loader("test", shuffle=False)

    def on_after_batch_transfer(self, batch: ClipBatch, dataloader_idx: int) -> ClipBatch:
        """Raw uint8 batch → float ``(B, C, T', H, W)`` in ``value_range``, once per batch, on
        the training device (`float_clips`)."""
        return float_clips(batch, self.value_range)

    def transfer(self, batch: ClipBatch, device: torch.device | str) -> ClipBatch:
        """A loader's batch as a training step sees it (for loops outside the trainer, such as a
        pass over the training set in a hook): moved to ``device``, then `float_clips`."""
        return self.on_after_batch_transfer(move_data_to_device(batch, device), 0)


class DiskVideoDataModule(VideoDataModule):
    """A benchmark read from disk by `vad.data.layouts.read_dataset`.

    Subclasses set ``dataset`` (their module's `DatasetInfo`) and their defaults only.

    Args:
        root: The dataset folder (``data.root``).
        layout: ``auto`` or a layout name valid for the dataset (see its module).
        labels: Label file or folder, absolute or relative to ``root``; None uses the layout's own.
        strict: Compare what is found with the published benchmark (``benchmark``): True fails
            on a mismatch, naming the video and both counts; False warns and goes on; None (the
            default here; the ``conf/data`` files say True) does not compare. Never compared
            for a subset (reader options such as ShanghaiTech's ``scenes``).
        **kwargs: `VideoDataModule` arguments.
    """

    dataset: DatasetInfo
    benchmark: BenchmarkCounts | None = None  # the published counts (each dataset's file)

    def __init__(self, root: str, layout: str = "auto", labels: str | None = None,
                 strict: bool | None = None,
                 **kwargs) -> None:
        super().__init__(**kwargs)
        self.root = root
        self.layout = layout
        self.labels = labels
        self.strict = strict

    @property
    def read_options(self) -> dict:
        """The dataset's own reader options (`DatasetInfo.options`), e.g. ShanghaiTech's scenes."""
        return {}

    @cached_property
    def found(self) -> DatasetRecords:
        """The dataset as found on disk (read once), compared with ``benchmark`` (``strict``)."""
        options = self.read_options
        found = read_dataset(self.dataset, self.root, self.layout, self.labels, **options)
        subset = any(value is not None for value in options.values())
        if self.strict is not None and self.benchmark is not None and not subset:
            check_counts(self.dataset, found, self.benchmark, self.strict)
        return found

    @property
    def label_source(self) -> str:
        return self.found.label_source

    def load_records(self, split: str) -> list[VideoRecord]:
        return self.found.split(split)
