"""Disk → `VideoRecord` lists: the layouts the benchmarks are distributed in, auto-detected.

Plain functions, no torch. `read_dataset` takes a dataset name and a root folder, finds which of
that dataset's layouts the root holds (or uses the one forced with ``layout=``), lists the
training and test videos in sorted order and attaches the test labels (`vad.data.labels`).

Layouts (the expected trees, also printed by every error):

* ``ucsd``: UCSD's own release, ``UCSDpedN/Train/TrainNNN/NNN.tif``, ``UCSDpedN/Test/TestNNN/``,
  labels ``Test/UCSDpedN.m``. ``TestNNN_gt`` pixel-mask folders are not videos; each test
  record keeps its mask folder in ``extras["pixel_masks"]``.
* ``common``: the layout most code uses, ``training/`` and ``testing/`` each holding
  ``frames/<video>/<frame>.jpg`` or ``videos/<video>.mp4|avi`` (frames preferred when both are
  there), labels ``<name>.mat`` (``gt``) or, for ShanghaiTech, ``testing/test_frame_mask/``.
  ShanghaiTech's own release (``training/videos`` + ``testing/frames``) is this layout.
* ``frames`` / ``videos``: ``common`` restricted to ``frames/`` or to ``videos/`` in both splits.
* ``avenue``: CUHK Avenue's own release, ``training_videos/NN.avi``, ``testing_videos/NN.avi``,
  labels ``ground_truth_demo/testing_label_mask/N_label.mat`` (``volLabel``).
* ``streetscene``: ``StreetScene/Train/TrainNNN/*.jpg``, ``Test/TestNNN/*.jpg`` and per test
  sequence ``Test/TestNNN/TestNNN_gt.txt`` (tracks and boxes kept in ``extras["tracks"]``).

Videos anywhere: any folder of videos may hold video files instead of frame folders (or both,
under different names); video files are counted with decord and decoded later.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from vad.data.decode import count_video_frames
from vad.data.labels import (
    LabelError,
    describe_source,
    load_labels,
    read_track_file,
    track_mask,
)
from vad.data.records import VideoRecord

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff")
VIDEO_SUFFIXES = (".avi", ".mp4", ".m4v", ".mov", ".mkv", ".mpg", ".mpeg", ".webm")
DOCS = "docs/datasets.md"

LAYOUTS: dict[str, str] = {
    "ucsd": "UCSDpedN/Train/TrainNNN/NNN.tif, UCSDpedN/Test/TestNNN/NNN.tif, "
            "UCSDpedN/Test/UCSDpedN.m",
    "common": "training/{frames/<video>/<frame>.jpg | videos/<video>.mp4|avi}, "
              "testing/{frames | videos}/..., labels <name>.mat or testing/test_frame_mask/",
    "frames": "training/frames/<video>/<frame>.jpg, testing/frames/<video>/<frame>.jpg, "
              "labels <name>.mat or testing/test_frame_mask/",
    "videos": "training/videos/<video>.mp4|avi, testing/videos/<video>.mp4|avi, "
              "labels <name>.mat or testing/test_frame_mask/",
    "avenue": "training_videos/NN.avi, testing_videos/NN.avi, "
              "ground_truth_demo/testing_label_mask/N_label.mat",
    "streetscene": "StreetScene/Train/TrainNNN/NNNNN.jpg, StreetScene/Test/TestNNN/NNNNN.jpg, "
                   "StreetScene/Test/TestNNN/TestNNN_gt.txt",
}


@dataclass(frozen=True)
class DatasetInfo:
    """What `read_dataset` needs to know about one benchmark.

    Attributes:
        title: Human name, used in messages.
        section: Anchor of its section in ``docs/datasets.md``.
        layouts: Layouts tried by ``layout="auto"``, in order.
        labels: Per layout, the default label sources (relative to the layout's folder).
    """

    title: str
    section: str
    layouts: tuple[str, ...]
    labels: dict[str, tuple[str, ...]] = field(default_factory=dict)


def _common_labels(name: str) -> dict[str, tuple[str, ...]]:
    return {layout: (f"{name}.mat",) for layout in ("common", "frames", "videos")}


DATASETS: dict[str, DatasetInfo] = {
    "ped1": DatasetInfo("UCSD Ped1", "ucsd-ped1-and-ped2", ("ucsd", "common"),
                        {"ucsd": ("Test/UCSDped1.m",), **_common_labels("ped1")}),
    "ped2": DatasetInfo("UCSD Ped2", "ucsd-ped1-and-ped2", ("ucsd", "common"),
                        {"ucsd": ("Test/UCSDped2.m",), **_common_labels("ped2")}),
    "avenue": DatasetInfo("CUHK Avenue", "cuhk-avenue", ("avenue", "common"),
                          {"avenue": ("ground_truth_demo/testing_label_mask",),
                           **_common_labels("avenue")}),
    "shanghaitech": DatasetInfo(
        "ShanghaiTech Campus", "shanghaitech-campus", ("common",),
        {layout: ("testing/test_frame_mask", "test_frame_mask")
         for layout in ("common", "frames", "videos")}),
    "streetscene": DatasetInfo("Street Scene", "street-scene", ("streetscene",)),
}


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


# -- listing videos -------------------------------------------------------------------------------
def _natural_key(path: Path) -> list:
    """Sort ``2.jpg`` before ``10.jpg`` (frames are not always zero-padded)."""
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", path.name)]


def _visible(path: Path) -> bool:
    return not path.name.startswith(".")  # macOS ._ files, .DS_Store, our own temp files


def frame_files(folder: Path) -> list[Path]:
    """The image files of a frame folder, in natural order."""
    files = [p for p in folder.iterdir()
             if _visible(p) and p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES]
    return sorted(files, key=_natural_key)


@dataclass
class _Video:
    name: str
    source: Path | list[Path]
    num_frames: int


def scan_videos(folder: Path, dataset: str, pattern: str | None = None) -> list[_Video]:
    """The videos in ``folder``: video files and frame folders, sorted by name.

    Args:
        folder: A split's folder of videos.
        dataset: For messages.
        pattern: Regex a video's name (file stem or folder name) must match in full; other
            entries are ignored (UCSD's ``TestNNN_gt`` mask folders).

    Raises:
        DatasetLayoutError: No videos, an empty frame folder, or a name used twice.
    """
    info = DATASETS.get(dataset)
    section = f"{DOCS}#{info.section}" if info else DOCS
    videos: dict[str, _Video] = {}
    for entry in sorted(folder.iterdir(), key=_natural_key):
        if not _visible(entry):
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
                    f"({', '.join(IMAGE_SUFFIXES)}); re-extract it or remove it. See {section}."
                )
            video = _Video(name, files, len(files))
        else:
            video = _Video(name, entry, count_video_frames(entry))
        if name in videos:
            raise DatasetLayoutError(
                f"{dataset}: video {name!r} appears twice in {folder} (as a video file and as a "
                f"frame folder); keep one. See {section}."
            )
        videos[name] = video
    if not videos:
        what = f"matching {pattern!r} " if pattern else ""
        raise DatasetLayoutError(
            f"{dataset}: {folder} holds no videos {what}(frame folders or "
            f"{', '.join(VIDEO_SUFFIXES)} files). See {section}."
        )
    return list(videos.values())


# -- finding a layout -----------------------------------------------------------------------------
def _has_subdirs(folder: Path, pattern: str) -> bool:
    return folder.is_dir() and any(p.is_dir() and re.fullmatch(pattern, p.name)
                                   for p in folder.iterdir())


def _candidates(root: Path, names: Sequence[str]) -> list[Path]:
    return [root] + [root / name for name in names]


def _find_ucsd(root: Path, dataset: str) -> Path | None:
    number = dataset[-1]
    for base in _candidates(root, [f"UCSDped{number}",
                                   f"UCSD_Anomaly_Dataset.v1p2/UCSDped{number}"]):
        if _has_subdirs(base / "Train", r"Train\d+") and _has_subdirs(base / "Test", r"Test\d+"):
            return base
    return None


def _split_folder(split_dir: Path, kinds: Sequence[str]) -> Path | None:
    for kind in kinds:
        if (split_dir / kind).is_dir():
            return split_dir / kind
    return None


_COMMON_KINDS = {"common": ("frames", "videos"), "frames": ("frames",), "videos": ("videos",)}


def _find_common(root: Path, layout: str) -> Path | None:
    kinds = _COMMON_KINDS[layout]
    for base in _candidates(root, []):
        if all(_split_folder(base / split, kinds) for split in ("training", "testing")):
            return base
    return None


def _find_avenue(root: Path, dataset: str) -> Path | None:
    for base in _candidates(root, ["Avenue Dataset", "Avenue_Dataset", "avenue", "Avenue"]):
        if (base / "training_videos").is_dir() and (base / "testing_videos").is_dir():
            return base
    return None


def _find_streetscene(root: Path, dataset: str) -> Path | None:
    for base in _candidates(root, ["StreetScene"]):
        if _has_subdirs(base / "Train", r"Train\d+") and _has_subdirs(base / "Test", r"Test\d+"):
            return base
    return None


_FINDERS: dict[str, Callable[[Path, str], Path | None]] = {
    "ucsd": _find_ucsd,
    "common": lambda root, dataset: _find_common(root, "common"),
    "frames": lambda root, dataset: _find_common(root, "frames"),
    "videos": lambda root, dataset: _find_common(root, "videos"),
    "avenue": _find_avenue,
    "streetscene": _find_streetscene,
}


def _valid_layouts(dataset: str) -> tuple[str, ...]:
    info = DATASETS[dataset]
    if "common" in info.layouts:
        return (*info.layouts, "frames", "videos")
    return info.layouts


def _layout_help(dataset: str, layouts: Sequence[str]) -> str:
    width = max(len(name) for name in layouts)
    return "\n".join(f"  {name:<{width}}  {LAYOUTS[name]}" for name in layouts)


def _env_note() -> str:
    env = os.environ.get("VAD_DATA_ROOT")
    return f" (VAD_DATA_ROOT={env})" if env else " (VAD_DATA_ROOT is not set)"


# -- labels ---------------------------------------------------------------------------------------
def _resolve_labels(
    dataset: str, layout: str, base: Path, root: Path, labels: str | os.PathLike | None
) -> Path:
    info = DATASETS[dataset]
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
        f"{dataset}: cannot find {given}; tried {', '.join(dict.fromkeys(tried))}. Point "
        f"data.labels at the label file or folder (absolute, or relative to data.root). "
        f"See {DOCS}#{info.section} for the label sources of {info.title}."
    )


def _test_records(videos: list[_Video], labels: list[np.ndarray], extras: list[dict]) -> list:
    return [VideoRecord(v.name, v.source, v.num_frames, labels=lab, extras=extra)
            for v, lab, extra in zip(videos, labels, extras, strict=True)]


def _train_records(videos: list[_Video]) -> list[VideoRecord]:
    return [VideoRecord(v.name, v.source, v.num_frames) for v in videos]


def _labelled(dataset: str, test: list[_Video], source: Path) -> list[np.ndarray]:
    try:
        return load_labels(source, [(v.name, v.num_frames) for v in test])
    except LabelError as err:  # add which dataset the file was read for
        raise type(err)(f"{dataset}: {err}") from err


# -- readers, one per layout ----------------------------------------------------------------------
def _read_ucsd(dataset: str, base: Path, root: Path, labels, **_) -> DatasetRecords:
    train = scan_videos(base / "Train", dataset, r"Train\d+")
    test = scan_videos(base / "Test", dataset, r"Test\d+")
    if labels is None:  # the .m file may be named differently in other copies
        default = base / "Test" / f"UCSDped{dataset[-1]}.m"
        found = sorted((base / "Test").glob("*.m"))
        if not default.exists() and len(found) == 1:
            labels = found[0]
    source = _resolve_labels(dataset, "ucsd", base, root, labels)
    extras = []
    for video in test:
        masks = base / "Test" / f"{video.name}_gt"
        extras.append({"pixel_masks": masks} if masks.is_dir() else {})
    return DatasetRecords(dataset, base, "ucsd", describe_source(source), _train_records(train),
                          _test_records(test, _labelled(dataset, test, source), extras))


def _scene(name: str) -> int | None:
    match = re.match(r"(\d+)_", name)
    return int(match.group(1)) if match else None


def _read_common(
    dataset: str, base: Path, root: Path, labels, layout: str = "common",
    scenes: Sequence[int] | None = None, **_,
) -> DatasetRecords:
    kinds = _COMMON_KINDS[layout]
    train = scan_videos(_split_folder(base / "training", kinds), dataset)
    test = scan_videos(_split_folder(base / "testing", kinds), dataset)
    if scenes is not None:  # ShanghaiTech: videos are named <scene>_<number>
        wanted = {int(s) for s in scenes}
        train = [v for v in train if _scene(v.name) in wanted]
        test = [v for v in test if _scene(v.name) in wanted]
        if not train or not test:
            raise DatasetLayoutError(
                f"{dataset}: no {'training' if not train else 'test'} video of scenes "
                f"{sorted(wanted)} under {base} (videos are named <scene>_<number>, e.g. 01_001)"
            )
    source = _resolve_labels(dataset, layout, base, root, labels)
    extras = []
    for video in test:
        extra: dict = {}
        if _scene(video.name) is not None:
            extra["scene"] = _scene(video.name)
        pixel = base / "testing" / "test_pixel_mask" / f"{video.name}.npy"
        if pixel.is_file():
            extra["pixel_mask_file"] = pixel
        extras.append(extra)
    return DatasetRecords(dataset, base, layout, describe_source(source), _train_records(train),
                          _test_records(test, _labelled(dataset, test, source), extras))


def _read_avenue(dataset: str, base: Path, root: Path, labels, **_) -> DatasetRecords:
    train = scan_videos(base / "training_videos", dataset)
    test = scan_videos(base / "testing_videos", dataset)
    source = _resolve_labels(dataset, "avenue", base, root, labels)
    extras = []
    for video in test:
        extra = {}
        if source.is_dir() and video.name.isdigit():  # volLabel: the pixel masks themselves
            mask = source / f"{int(video.name)}_label.mat"
            if mask.is_file():
                extra["pixel_mask_file"] = mask
        extras.append(extra)
    return DatasetRecords(dataset, base, "avenue", describe_source(source),
                          _train_records(train),
                          _test_records(test, _labelled(dataset, test, source), extras))


def _read_streetscene(dataset: str, base: Path, root: Path, labels, **_) -> DatasetRecords:
    if labels is not None:
        raise DatasetLayoutError(f"{dataset}: Street Scene's labels are its track files "
                                 f"Test/TestNNN/TestNNN_gt.txt; data.labels must be null")
    train = scan_videos(base / "Train", dataset, r"Train\d+")
    test = scan_videos(base / "Test", dataset, r"Test\d+")
    label_arrays, extras = [], []
    for video in test:
        track_file = base / "Test" / video.name / f"{video.name}_gt.txt"
        if not track_file.is_file():
            raise DatasetLayoutError(
                f"{dataset}: test sequence {video.name} has no track file {track_file}; the "
                f"download is incomplete. See {DOCS}#{DATASETS[dataset].section}."
            )
        try:
            tracks = read_track_file(track_file)
            label_arrays.append(track_mask(tracks, video.num_frames, video.name, track_file))
        except LabelError as err:
            raise type(err)(f"{dataset}: {err}") from err
        extras.append({"tracks": tracks, "track_file": track_file})
    source = (f"Street Scene track files, a frame is anomalous if it holds a box "
              f"({(base / 'Test').resolve()})")
    return DatasetRecords(dataset, base, "streetscene", source, _train_records(train),
                          _test_records(test, label_arrays, extras))


_READERS: dict[str, Callable[..., DatasetRecords]] = {
    "ucsd": _read_ucsd,
    "common": _read_common,
    "frames": lambda *a, **k: _read_common(*a, **{**k, "layout": "frames"}),
    "videos": lambda *a, **k: _read_common(*a, **{**k, "layout": "videos"}),
    "avenue": _read_avenue,
    "streetscene": _read_streetscene,
}


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


def check_counts(found: DatasetRecords, expected: BenchmarkCounts, strict: bool) -> None:
    """Compare ``found`` with the published counts: a mismatch raises `DatasetCountError` when
    ``strict``, else is logged as a warning and the run goes on."""
    problems = count_mismatches(found, expected)
    if not problems:
        return
    info = DATASETS[found.dataset]
    listed = "; ".join(problems[:6]) + (f"; and {len(problems) - 6} more" if len(problems) > 6
                                        else "")
    message = (f"{info.title} ({found.dataset}) at {found.root} is not the full benchmark: "
               f"{listed}. A download may be incomplete: see {DOCS}#{info.section}. For a subset "
               "or a copy of your own, data.strict=false goes on with a warning (null: no check).")
    if strict:
        raise DatasetCountError(message)
    logging.getLogger(__name__).warning(message)


# -- entry point ----------------------------------------------------------------------------------
def detect_layout(dataset: str, root: str | os.PathLike, layout: str = "auto") -> tuple[str, Path]:
    """The layout under ``root`` and the folder it was found in.

    Raises:
        DatasetLayoutError: ``root`` is missing, ``layout`` unknown, or no layout matches.
    """
    if dataset not in DATASETS:
        raise DatasetLayoutError(f"unknown dataset {dataset!r}; expected one of "
                                 f"{sorted(DATASETS)}")
    info = DATASETS[dataset]
    valid = _valid_layouts(dataset)
    root = Path(root).expanduser()
    section = f"{DOCS}#{info.section}"
    if layout != "auto" and layout not in valid:
        raise DatasetLayoutError(
            f"{dataset}: unknown layout {layout!r}; {info.title} can be read from:\n"
            f"{_layout_help(dataset, valid)}\nUse data.layout=auto or one of {list(valid)}. "
            f"See {section}."
        )
    tried = info.layouts if layout == "auto" else (layout,)
    if not root.is_dir():
        raise DatasetLayoutError(
            f"{info.title} ({dataset}): data root {root.absolute()} "
            f"{'is not a folder' if root.exists() else 'does not exist'}"
            f"{_env_note()}. Expected one of these layouts there:\n"
            f"{_layout_help(dataset, tried)}\nDownload the dataset and set data.root (or "
            f"VAD_DATA_ROOT, under which <root>/{dataset} is used). See {section}."
        )
    for name in tried:
        base = _FINDERS[name](root, dataset)
        if base is not None:
            return name, base
    raise DatasetLayoutError(
        f"{info.title} ({dataset}): {root.absolute()} holds none of the layouts tried:\n"
        f"{_layout_help(dataset, tried)}\nSet data.root to the folder that holds "
        f"the dataset (force a layout with data.layout=<name>). See {section}."
    )


def read_dataset(
    dataset: str,
    root: str | os.PathLike,
    layout: str = "auto",
    labels: str | os.PathLike | None = None,
    scenes: Sequence[int] | None = None,
) -> DatasetRecords:
    """Find and read one dataset.

    Args:
        dataset: ``ped1``, ``ped2``, ``avenue``, ``shanghaitech`` or ``streetscene``.
        root: The dataset's folder (``data.root``).
        layout: ``auto`` or a layout name from `LAYOUTS` valid for the dataset.
        labels: Label file or folder (absolute or relative to the root); None uses the layout's
            own (``Test/UCSDpedN.m``, ``<name>.mat``, ``testing/test_frame_mask``, ...).
        scenes: ShanghaiTech only: keep the videos of these scene numbers (None: all).

    Raises:
        DatasetLayoutError: Missing root, unknown or absent layout, empty video folder, missing
            label file.
        LabelError: Unreadable labels; `LabelCountError` when counts disagree.
        CorruptVideoError: A video file that cannot be opened or is truncated.
    """
    found, base = detect_layout(dataset, root, layout)
    if scenes is not None and dataset != "shanghaitech":
        raise DatasetLayoutError(f"{dataset}: the scenes option is for shanghaitech only")
    return _READERS[found](dataset, base, Path(root).expanduser(), labels, scenes=scenes)
