"""Disk → `VideoRecord` lists: the generic machinery every dataset's layouts are built from.

Plain functions, no torch. A dataset module (`vad.data.ped`, `vad.data.avenue`, ...) describes
its benchmark as a `DatasetInfo`: its `Layout`\\ s (how to find each tree under a root folder and
how to read it) and its default label sources. `read_dataset` takes such a description and a
root folder, finds which layout the root holds (or uses the one forced with ``layout=``), and
calls that layout's reader, which lists the training and test videos in sorted order and attaches
the test labels (`vad.data.labels`).

What lives here is what no single dataset owns:

* scanning a folder of videos (`scan_videos`: frame folders and video files, natural sort,
  hidden files skipped) and a frame folder (`frame_files`);
* the ``common`` layout most code uses, and its ``frames`` / ``videos`` restrictions:
  ``training/`` and ``testing/`` each holding ``frames/<video>/<frame>.jpg`` or
  ``videos/<video>.mp4|avi`` (frames preferred when both are there), labels ``<name>.mat``;
* auto-detection, label-source resolution and the errors that name the dataset, the path, the
  layouts tried with their trees and the section of ``docs/datasets.md`` to read.

Videos anywhere: any folder of videos may hold video files instead of frame folders (or both,
under different names); video files are counted with decord and decoded later.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import numpy as np

from vad.data.decode import count_video_frames
from vad.data.labels import LabelError, describe_source, load_labels
from vad.data.records import VideoRecord

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff")
VIDEO_SUFFIXES = (".avi", ".mp4", ".m4v", ".mov", ".mkv", ".mpg", ".mpeg", ".webm")
DOCS = "docs/datasets.md"


class DatasetLayoutError(RuntimeError):
    """A data root that holds none of the dataset's layouts, or a broken one.

    The message names the dataset, the path tried, the layouts tried (with their expected trees)
    and the section of ``docs/datasets.md`` to read.
    """


@dataclass
class DatasetRecords:
    """The videos of one dataset as found on disk.

    Attributes:
        dataset: Dataset name (``"ped2"``).
        root: The folder the layout was found in.
        layout: The layout read.
        label_source: Which labels the test records carry (file and rule), for ``metrics.json``.
        train: Training videos (normal only, no labels).
        test: Test videos with ``labels``.
    """

    dataset: str
    root: Path
    layout: str
    label_source: str
    train: list[VideoRecord]
    test: list[VideoRecord]

    def split(self, split: str) -> list[VideoRecord]:
        if split not in ("train", "test"):
            raise ValueError(f"split must be 'train' or 'test', got {split!r}")
        return self.train if split == "train" else self.test


@dataclass(frozen=True)
class Layout:
    """One tree a dataset can be stored in.

    Attributes:
        name: The ``data.layout`` value.
        tree: The expected tree in one line, printed by every error.
        find: ``find(root, info)``: the folder under ``root`` (root itself or a known subfolder)
            that holds this tree, or None.
        read: ``read(info, base, root, labels, **options)``: the `DatasetRecords` of the tree at
            ``base``; ``labels`` is ``data.labels`` (None: the layout's default).
    """

    name: str
    tree: str
    find: Callable[[Path, DatasetInfo], Path | None]
    read: Callable[..., DatasetRecords]


@dataclass(frozen=True)
class DatasetInfo:
    """Everything `read_dataset` needs to know about one benchmark; each dataset module defines
    its own (``vad.data.ped.PED2``).

    Attributes:
        name: Dataset name (``"ped2"``), used in messages and records.
        title: Human name, used in messages.
        section: Anchor of its section in ``docs/datasets.md``.
        layouts: Layouts tried by ``layout="auto"``, in order.
        forced_layouts: Further layouts used only when forced with ``data.layout=``.
        labels: Per layout name, the default label sources (relative to the layout's folder).
        options: Names of the extra reader options the dataset takes (ShanghaiTech's ``scenes``).
    """

    name: str
    title: str
    section: str
    layouts: tuple[Layout, ...]
    forced_layouts: tuple[Layout, ...] = ()
    labels: dict[str, tuple[str, ...]] = field(default_factory=dict)
    options: tuple[str, ...] = ()

    @property
    def docs(self) -> str:
        return f"{DOCS}#{self.section}"

    @property
    def valid_layouts(self) -> dict[str, Layout]:
        return {layout.name: layout for layout in (*self.layouts, *self.forced_layouts)}


# -- listing videos -------------------------------------------------------------------------------
def natural_key(path: Path) -> list:
    """Sort ``2.jpg`` before ``10.jpg`` (frames are not always zero-padded)."""
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", path.name)]


def visible(path: Path) -> bool:
    return not path.name.startswith(".")  # macOS ._ files, .DS_Store, our own temp files


def frame_files(folder: Path) -> list[Path]:
    """The image files of a frame folder, in natural order."""
    files = [p for p in folder.iterdir()
             if visible(p) and p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES]
    return sorted(files, key=natural_key)


@dataclass
class ScannedVideo:
    """A video found on disk, before labels: its name, frames (file or frame files), length."""

    name: str
    source: Path | list[Path]
    num_frames: int


def scan_videos(folder: Path, dataset: str, pattern: str | None = None,
                docs: str = DOCS) -> list[ScannedVideo]:
    """The videos in ``folder``: video files and frame folders, sorted by name.

    Args:
        folder: A split's folder of videos.
        dataset: For messages.
        pattern: Regex a video's name (file stem or folder name) must match in full; other
            entries are ignored (UCSD's ``TestNNN_gt`` mask folders).
        docs: The page (and section) messages point to.

    Raises:
        DatasetLayoutError: No videos, an empty frame folder, or a name used twice.
    """
    videos: dict[str, ScannedVideo] = {}
    for entry in sorted(folder.iterdir(), key=natural_key):
        if not visible(entry):
            continue
        if entry.is_dir():
            name = entry.name
        elif entry.is_file() and entry.suffix.lower() in VIDEO_SUFFIXES:
            name = entry.stem
        else:
            continue
        if pattern is not None and not re.fullmatch(pattern, name):
            continue
        if entry.is_dir():
            files = frame_files(entry)
            if not files:
                raise DatasetLayoutError(
                    f"{dataset}: video folder {entry} holds no frames "
                    f"({', '.join(IMAGE_SUFFIXES)}); re-extract it or remove it. See {docs}."
                )
            video = ScannedVideo(name, files, len(files))
        else:
            video = ScannedVideo(name, entry, count_video_frames(entry))
        if name in videos:
            raise DatasetLayoutError(
                f"{dataset}: video {name!r} appears twice in {folder} (as a video file and as a "
                f"frame folder); keep one. See {docs}."
            )
        videos[name] = video
    if not videos:
        what = f"matching {pattern!r} " if pattern else ""
        raise DatasetLayoutError(
            f"{dataset}: {folder} holds no videos {what}(frame folders or "
            f"{', '.join(VIDEO_SUFFIXES)} files). See {docs}."
        )
    return list(videos.values())


# -- helpers for finders --------------------------------------------------------------------------
def has_subdirs(folder: Path, pattern: str) -> bool:
    """Whether ``folder`` has a subfolder whose name matches ``pattern`` in full."""
    return folder.is_dir() and any(p.is_dir() and re.fullmatch(pattern, p.name)
                                   for p in folder.iterdir())


def candidates(root: Path, names: Sequence[str]) -> list[Path]:
    """``root`` and the subfolders ``names`` of it: where a finder looks for its tree."""
    return [root] + [root / name for name in names]


# -- labels ---------------------------------------------------------------------------------------
def resolve_labels(
    info: DatasetInfo, layout: str, base: Path, root: Path, labels: str | os.PathLike | None
) -> Path:
    """The label file or folder: ``labels`` (absolute, or relative to ``base`` or ``root``) or,
    if None, the first default source of ``layout`` that exists.

    Raises:
        DatasetLayoutError: Nothing found; the message lists every place tried.
    """
    wanted = [labels] if labels is not None else list(info.labels.get(layout, ()))
    tried = []
    for candidate in wanted:
        candidate = Path(candidate).expanduser()
        places = [candidate] if candidate.is_absolute() else [base / candidate, root / candidate]
        for place in places:
            if place.exists():
                return place
            tried.append(str(place))
    given = f"data.labels={labels}" if labels is not None else "the layout's default labels"
    raise DatasetLayoutError(
        f"{info.name}: cannot find {given}; tried {', '.join(dict.fromkeys(tried))}. Point "
        f"data.labels at the label file or folder (absolute, or relative to data.root). "
        f"See {info.docs} for the label sources of {info.title}."
    )


def train_records(videos: list[ScannedVideo]) -> list[VideoRecord]:
    return [VideoRecord(v.name, v.source, v.num_frames) for v in videos]


def test_records(videos: list[ScannedVideo], labels: list[np.ndarray],
                 extras: list[dict] | None = None) -> list[VideoRecord]:
    extras = extras if extras is not None else [{} for _ in videos]
    return [VideoRecord(v.name, v.source, v.num_frames, labels=lab, extras=extra)
            for v, lab, extra in zip(videos, labels, extras, strict=True)]


def labelled(dataset: str, test: list[ScannedVideo], source: Path) -> list[np.ndarray]:
    """The labels of ``test`` from ``source`` (`load_labels`), errors prefixed with the dataset."""
    try:
        return load_labels(source, [(v.name, v.num_frames) for v in test])
    except LabelError as err:  # add which dataset the file was read for
        raise type(err)(f"{dataset}: {err}") from err


# -- the common layout ----------------------------------------------------------------------------
COMMON_KINDS = {"common": ("frames", "videos"), "frames": ("frames",), "videos": ("videos",)}
COMMON_TREES = {
    "common": "training/{frames/<video>/<frame>.jpg | videos/<video>.mp4|avi}, "
              "testing/{frames | videos}/..., labels <name>.mat or testing/test_frame_mask/",
    "frames": "training/frames/<video>/<frame>.jpg, testing/frames/<video>/<frame>.jpg, "
              "labels <name>.mat or testing/test_frame_mask/",
    "videos": "training/videos/<video>.mp4|avi, testing/videos/<video>.mp4|avi, "
              "labels <name>.mat or testing/test_frame_mask/",
}


def _split_folder(split_dir: Path, kinds: Sequence[str]) -> Path | None:
    for kind in kinds:
        if (split_dir / kind).is_dir():
            return split_dir / kind
    return None


def find_common(root: Path, info: DatasetInfo, layout: str = "common") -> Path | None:
    kinds = COMMON_KINDS[layout]
    if all(_split_folder(root / split, kinds) for split in ("training", "testing")):
        return root
    return None


def common_videos(info: DatasetInfo, base: Path, layout: str
                  ) -> tuple[list[ScannedVideo], list[ScannedVideo]]:
    """The training and test videos of a common-layout tree at ``base``."""
    kinds = COMMON_KINDS[layout]
    return (scan_videos(_split_folder(base / "training", kinds), info.name, docs=info.docs),
            scan_videos(_split_folder(base / "testing", kinds), info.name, docs=info.docs))


def read_common(info: DatasetInfo, base: Path, root: Path, labels, layout: str = "common"
                ) -> DatasetRecords:
    train, test = common_videos(info, base, layout)
    source = resolve_labels(info, layout, base, root, labels)
    return DatasetRecords(info.name, base, layout, describe_source(source), train_records(train),
                          test_records(test, labelled(info.name, test, source)))


def common_layouts(read: Callable[..., DatasetRecords] = read_common) -> dict[str, Layout]:
    """The ``common``, ``frames`` and ``videos`` layouts, read by ``read`` (called with
    ``layout=<name>``; a dataset with extras of its own passes its reader)."""
    return {name: Layout(name, tree, partial(find_common, layout=name), partial(read, layout=name))
            for name, tree in COMMON_TREES.items()}


def common_labels(*sources: str) -> dict[str, tuple[str, ...]]:
    """The same default label sources for the three common layouts."""
    return {layout: sources for layout in COMMON_TREES}


# -- the full benchmarks' counts ------------------------------------------------------------------
@dataclass(frozen=True)
class BenchmarkCounts:
    """A benchmark as published (each dataset's file holds its own, e.g. `vad.data.ped`).

    Attributes:
        videos: ``{"train": n, "test": n}``.
        frames: Frames per split, where known.
        video_frames: Per split, the frames of each video in natural name order, where known.
    """

    videos: dict[str, int]
    frames: dict[str, int] = field(default_factory=dict)
    video_frames: dict[str, tuple[int, ...]] = field(default_factory=dict)


class DatasetCountError(DatasetLayoutError):
    """A dataset whose videos or frames are not the published benchmark's (``data.strict``)."""


def count_mismatches(found: DatasetRecords, expected: BenchmarkCounts) -> list[str]:
    """What differs between ``found`` and the published counts (empty if nothing)."""
    problems = []
    for split in ("train", "test"):
        records = found.split(split)
        if len(records) != expected.videos[split]:
            problems.append(f"{len(records)} {split} videos, the benchmark has "
                            f"{expected.videos[split]}")
            continue  # per-video counts would be compared out of step
        for record, frames in zip(records, expected.video_frames.get(split, ())):
            if record.num_frames != frames:
                problems.append(f"{split} video {record.name} has {record.num_frames} frames, "
                                f"the benchmark's has {frames}")
        total = sum(r.num_frames for r in records)
        if split in expected.frames and total != expected.frames[split]:
            problems.append(f"{total:,} {split} frames, the benchmark has "
                            f"{expected.frames[split]:,}")
    return problems


def check_counts(info: DatasetInfo, found: DatasetRecords, expected: BenchmarkCounts,
                 strict: bool) -> None:
    """Compare ``found`` with the published counts: a mismatch raises `DatasetCountError` when
    ``strict``, else is logged as a warning and the run goes on."""
    problems = count_mismatches(found, expected)
    if not problems:
        return
    listed = "; ".join(problems[:6]) + (f"; and {len(problems) - 6} more" if len(problems) > 6
                                        else "")
    message = (f"{info.title} ({found.dataset}) at {found.root} is not the full benchmark: "
               f"{listed}. A download may be incomplete: see {info.docs}. For a subset "
               "or a copy of your own, data.strict=false goes on with a warning (null: no check).")
    if strict:
        raise DatasetCountError(message)
    logging.getLogger(__name__).warning(message)


# -- entry point ----------------------------------------------------------------------------------
def _layout_help(layouts: Sequence[Layout]) -> str:
    width = max(len(layout.name) for layout in layouts)
    return "\n".join(f"  {layout.name:<{width}}  {layout.tree}" for layout in layouts)


def _env_note() -> str:
    env = os.environ.get("VAD_DATA_ROOT")
    return f" (VAD_DATA_ROOT={env})" if env else " (VAD_DATA_ROOT is not set)"


def detect_layout(info: DatasetInfo, root: str | os.PathLike, layout: str = "auto"
                  ) -> tuple[Layout, Path]:
    """The layout under ``root`` and the folder it was found in.

    Raises:
        DatasetLayoutError: ``root`` is missing, ``layout`` unknown, or no layout matches.
    """
    valid = info.valid_layouts
    root = Path(root).expanduser()
    if layout != "auto" and layout not in valid:
        raise DatasetLayoutError(
            f"{info.name}: unknown layout {layout!r}; {info.title} can be read from:\n"
            f"{_layout_help(list(valid.values()))}\nUse data.layout=auto or one of "
            f"{list(valid)}. See {info.docs}."
        )
    tried = info.layouts if layout == "auto" else (valid[layout],)
    if not root.is_dir():
        raise DatasetLayoutError(
            f"{info.title} ({info.name}): data root {root.absolute()} "
            f"{'is not a folder' if root.exists() else 'does not exist'}"
            f"{_env_note()}. Expected one of these layouts there:\n"
            f"{_layout_help(tried)}\nDownload the dataset and set data.root (or "
            f"VAD_DATA_ROOT, under which <root>/{info.name} is used). See {info.docs}."
        )
    for candidate in tried:
        base = candidate.find(root, info)
        if base is not None:
            return candidate, base
    raise DatasetLayoutError(
        f"{info.title} ({info.name}): {root.absolute()} holds none of the layouts tried:\n"
        f"{_layout_help(tried)}\nSet data.root to the folder that holds "
        f"the dataset (force a layout with data.layout=<name>). See {info.docs}."
    )


def read_dataset(
    info: DatasetInfo,
    root: str | os.PathLike,
    layout: str = "auto",
    labels: str | os.PathLike | None = None,
    **options,
) -> DatasetRecords:
    """Find and read one dataset.

    Args:
        info: The dataset (``vad.data.ped.PED2``, ``vad.data.avenue.AVENUE``, ...).
        root: The dataset's folder (``data.root``).
        layout: ``auto`` or a layout name valid for the dataset.
        labels: Label file or folder (absolute or relative to the root); None uses the layout's
            own (``Test/UCSDpedN.m``, ``<name>.mat``, ``testing/test_frame_mask``, ...).
        **options: The dataset's own reader options (`DatasetInfo.options`, e.g. ``scenes``).

    Raises:
        DatasetLayoutError: Missing root, unknown or absent layout, empty video folder, missing
            label file, an option the dataset does not take.
        LabelError: Unreadable labels; `LabelCountError` when counts disagree.
        CorruptVideoError: A video file that cannot be opened or is truncated.
    """
    unknown = sorted(set(options) - set(info.options))
    if unknown:
        raise DatasetLayoutError(f"{info.name}: the option(s) {unknown} are not read by "
                                 f"{info.title} (it takes {list(info.options) or 'none'})")
    found, base = detect_layout(info, root, layout)
    return found.read(info, base, Path(root).expanduser(), labels, **options)
