"""Label files → per-frame ``bool`` arrays, one per test video.

Every benchmark ships its frame labels in its own format; each reader here turns one of them into
plain data, and `load_labels` picks the reader from the path and checks every array against the
frame count of its video:

* ``.m`` (UCSD's ``Test/UCSDpedN.m``): MATLAB text, one ``TestVideoFile{end+1}.gt_frame = [...]``
  per video, 1-based inclusive ranges, possibly several (``[5:90, 140:200]``);
* ``.mat`` with ``gt`` (the common layout's ``ped2.mat``, ``avenue.mat``): a 1×n cell, per video a
  2×K array of 1-based inclusive ``[start; end]`` ranges;
* ``.mat`` with ``volLabel`` (Avenue's ``N_label.mat``): a 1×n cell of pixel masks; a frame is
  anomalous if any pixel is set;
* ``.npy``: 0/1 per frame, one file per video (ShanghaiTech's ``test_frame_mask/SS_VVVV.npy``) or
  one file for all test videos concatenated in order (``frame_labels_avenue.npy``);
* ``TestNNN_gt.txt`` (Street Scene): one line per annotated box, ``<frame file> <track id> <cx>
  <cy> <w> <h>``; a frame is anomalous if it holds a box of any track.

Frame indices are 0-based here: a 1-based range ``[s, e]`` marks frames ``s-1 .. e-1``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

TRACK_COLUMNS = ("frame", "track", "cx", "cy", "w", "h")
TRACK_DTYPE = np.dtype([("frame", np.int64), ("track", np.int64), ("cx", np.float64),
                        ("cy", np.float64), ("w", np.float64), ("h", np.float64)])

Ranges = list[tuple[int, int]]
LABEL_THREADS = max(1, min(4, os.cpu_count() or 1))


class LabelError(ValueError):
    """A label file that cannot be read or does not fit the videos; the message names the file."""


class LabelCountError(LabelError):
    """Labels whose frame (or video) count disagrees with the frames on disk."""


# -- readers: one file → plain data ---------------------------------------------------------------
_M_ENTRY = re.compile(r"gt_frame\s*=\s*\[([^\]]*)\]")


def read_m_file(path: Path) -> list[Ranges]:
    """UCSD's MATLAB text labels: per video, its 1-based inclusive ranges, in file order."""
    path = Path(path)
    videos = []
    for line_number, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
        line = line.split("%", 1)[0]  # MATLAB comment
        match = _M_ENTRY.search(line)
        if match is None:
            continue
        ranges: Ranges = []
        for token in re.split(r"[,;\s]+", match.group(1).strip()):
            if not token:
                continue
            parts = token.split(":")
            try:
                numbers = [int(p) for p in parts]
            except ValueError as err:
                raise LabelError(f"{path}:{line_number}: cannot read range {token!r}") from err
            if len(numbers) == 1:  # a single frame, [7]
                numbers = numbers * 2
            if len(numbers) != 2:  # a stepped range a:s:b is not a label range
                raise LabelError(f"{path}:{line_number}: expected start:end, got {token!r}")
            ranges.append((numbers[0], numbers[1]))
        videos.append(ranges)
    if not videos:
        raise LabelError(f"{path}: no 'gt_frame = [...]' entries found; is this UCSD's .m file?")
    return videos


def _loadmat(path: Path) -> dict:
    import scipy.io

    try:
        return scipy.io.loadmat(str(path))
    except NotImplementedError as err:  # MATLAB v7.3 files are HDF5
        raise LabelError(
            f"{path}: MATLAB v7.3 (HDF5) files are not supported; re-save it with "
            f"save(..., '-v7') in MATLAB or use the dataset's original label file"
        ) from err
    except (ValueError, TypeError, OSError) as err:
        raise LabelError(f"{path}: not a readable .mat file ({err})") from err


def _cells(value: np.ndarray) -> list:
    """The entries of a MATLAB cell array saved as a 1×n (or n×1) object array."""
    if value.dtype == object:
        return list(value.ravel())
    return [value]  # a single video saved without a cell


def read_gt_mat(path: Path, key: str = "gt") -> list[Ranges]:
    """The common layout's ``gt``: per video a 2×K array of 1-based inclusive [start; end]."""
    return _gt_ranges(_loadmat(Path(path)), Path(path), key)


def _gt_ranges(content: dict, path: Path, key: str = "gt") -> list[Ranges]:
    if key not in content:
        found = [k for k in content if not k.startswith("__")]
        raise LabelError(f"{path}: no variable {key!r} (found {found}); expected the common "
                         f"layout's gt cell of 2xK [start; end] ranges")
    videos = []
    for i, entry in enumerate(_cells(content[key])):
        array = np.asarray(entry).astype(np.int64)  # stored as uint8/uint16: widen before maths
        if array.size == 0:
            videos.append([])
            continue
        if array.shape == (2,):  # one range saved as a flat vector
            array = array.reshape(2, 1)
        if array.ndim != 2 or array.shape[0] != 2:
            raise LabelError(f"{path}: entry {i + 1} has shape {array.shape}; expected 2xK "
                             f"[start; end] ranges")
        videos.append([(int(s), int(e)) for s, e in array.T])
    return videos


def read_vol_label(path: Path) -> np.ndarray:
    """Avenue's ``volLabel`` pixel masks → ``bool[n]``: True where any pixel is set."""
    path = Path(path)
    content = _loadmat(path)
    if "volLabel" not in content:
        found = [k for k in content if not k.startswith("__")]
        raise LabelError(f"{path}: no variable 'volLabel' (found {found})")
    return np.array([bool(np.any(mask)) for mask in _cells(content["volLabel"])], dtype=bool)


def read_frame_mask(path: Path) -> np.ndarray:
    """A ``.npy`` of 0/1 frame labels → ``bool[n]`` (any shape with one non-singleton axis)."""
    path = Path(path)
    try:
        array = np.load(path, allow_pickle=False)
    except (ValueError, OSError) as err:
        raise LabelError(f"{path}: not a readable .npy frame mask ({err})") from err
    array = np.squeeze(array)
    if array.ndim != 1:
        raise LabelError(f"{path}: expected one 0/1 value per frame, got shape {array.shape}")
    values = np.unique(array)
    if not np.isin(values, (0, 1)).all():
        raise LabelError(f"{path}: expected 0/1 frame labels, found values {values[:10]}")
    return array.astype(bool)


def read_track_file(path: Path) -> np.ndarray:
    """A Street Scene ``TestNNN_gt.txt`` → structured rows (`TRACK_DTYPE`), frames 0-based.

    Each line is ``<frame file> <track id> <center x> <center y> <width> <height>``, the frame
    file's name starting with its 1-based number (``00042.jpg``), the track ids 0-based. This is
    the format read by the dataset authors' own label script and by the public RBDC/TBDC
    evaluation code (Georgescu et al., ``compute_tbdc_rbdc.py``).
    """
    path = Path(path)
    rows = []
    for line_number, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
        fields = line.replace(",", " ").split()
        if not fields:
            continue
        match = re.match(r"\d+", Path(fields[0].replace("\\", "/")).name)
        if match is None or len(fields) != 6:
            raise LabelError(f"{path}:{line_number}: expected '<frame file> <track> <cx> <cy> "
                             f"<w> <h>', got {line.strip()!r}")
        try:
            rows.append((int(match.group()) - 1, int(fields[1]), *map(float, fields[2:6])))
        except ValueError as err:
            raise LabelError(f"{path}:{line_number}: cannot read {line.strip()!r}") from err
    return np.array(rows, dtype=TRACK_DTYPE)


# -- arrays of the right length -------------------------------------------------------------------
def ranges_to_mask(ranges: Ranges, num_frames: int, video: str, source: Path | str) -> np.ndarray:
    """1-based inclusive ranges → ``bool[num_frames]``; a range past the video raises."""
    mask = np.zeros(num_frames, dtype=bool)
    for start, end in ranges:
        if start < 1 or end < start:
            raise LabelError(f"{source}: video {video!r} has an invalid range [{start}:{end}]")
        if end > num_frames:
            raise LabelCountError(
                f"{source}: the labels of video {video!r} reach frame {end} but the video has "
                f"{num_frames} frames; the label file does not belong to these frames"
            )
        mask[start - 1:end] = True
    return mask


def track_mask(tracks: np.ndarray, num_frames: int, video: str, source: Path | str) -> np.ndarray:
    """Frames holding a box of any track → ``bool[num_frames]``; a box past the video raises."""
    mask = np.zeros(num_frames, dtype=bool)
    if len(tracks):
        last = int(tracks["frame"].max())
        if last >= num_frames or int(tracks["frame"].min()) < 0:
            raise LabelCountError(
                f"{source}: video {video!r} has a box on frame {last + 1} but the video has "
                f"{num_frames} frames"
            )
        mask[tracks["frame"]] = True
    return mask


def check_length(labels: np.ndarray, num_frames: int, video: str, source: Path | str) -> np.ndarray:
    """``labels`` if it has one value per frame, else `LabelCountError` naming both counts."""
    if len(labels) != num_frames:
        raise LabelCountError(
            f"{source}: the labels of video {video!r} cover {len(labels)} frames but the video "
            f"has {num_frames} frames; the video may be truncated or the labels belong to "
            f"another copy of the dataset"
        )
    return labels


def _check_video_count(entries: Sequence, videos: Sequence[tuple[str, int]], source: Path) -> None:
    if len(entries) != len(videos):
        raise LabelCountError(
            f"{source}: holds labels for {len(entries)} videos but the test split has "
            f"{len(videos)} videos ({', '.join(name for name, _ in videos[:5])}...); the label "
            f"file does not belong to these videos"
        )


# -- dispatch -------------------------------------------------------------------------------------
def _per_video_file(directory: Path, name: str) -> Path | None:
    """The label file of video ``name`` in a folder of per-video files, if any."""
    candidates = [f"{name}.npy", f"{name}_label.mat", f"{name}.mat"]
    if name.isdigit():  # Avenue: video "01" → "1_label.mat"
        candidates += [f"{int(name)}_label.mat", f"{int(name)}.npy"]
    for candidate in candidates:
        if (directory / candidate).is_file():
            return directory / candidate
    return None


def _read_per_video(path: Path, num_frames: int, video: str) -> np.ndarray:
    if path.suffix == ".npy":
        return check_length(read_frame_mask(path), num_frames, video, path)
    if path.suffix == ".mat":
        return check_length(read_vol_label(path), num_frames, video, path)
    raise LabelError(f"{path}: unknown per-video label format {path.suffix!r}")


def describe_source(path: Path) -> str:
    """A one-line description of a label source, recorded with every result."""
    path = Path(path).resolve()  # recorded with results: say exactly which file
    if path.is_dir():
        if any(path.glob("*_label.mat")):
            return f"volLabel any-pixel masks ({path})"
        return f"per-video frame masks ({path})"
    kind = {".m": "UCSD .m ranges", ".npy": "concatenated 0/1 frame labels"}.get(path.suffix)
    if path.suffix == ".mat":
        kind = "volLabel any-pixel masks" if path.name.endswith("_label.mat") else "gt .mat ranges"
    return f"{kind or 'labels'} ({path})"


def load_labels(source: Path, videos: Sequence[tuple[str, int]]) -> list[np.ndarray]:
    """Frame labels of the test videos ``[(name, num_frames), ...]`` (in split order).

    Args:
        source: A ``.m`` or ``gt`` ``.mat`` file (one entry per video, in sorted video order), a
            single ``.npy`` (all videos concatenated in order), or a folder of per-video files
            (``<name>.npy``, ``<N>_label.mat``).
        videos: Name and frame count of each test video.

    Raises:
        LabelError: The file cannot be read or a video has no labels.
        LabelCountError: Frame or video counts disagree (the message names both).
    """
    source = Path(source)
    if source.is_dir():
        paths = []
        for name, _ in videos:
            path = _per_video_file(source, name)
            if path is None:
                raise LabelError(f"{source}: no label file for test video {name!r} (looked for "
                                 f"{name}.npy, {name}_label.mat)")
            paths.append(path)
        # Avenue's volLabel files inflate to 3.5 GB of masks in all: ~15 s on one core. zlib
        # releases the GIL, so a few threads cut that (each holds one file's masks at a time).
        with ThreadPoolExecutor(LABEL_THREADS) as pool:
            return list(pool.map(_read_per_video, paths, [n for _, n in videos],
                                 [name for name, _ in videos]))
    if not source.is_file():
        raise LabelError(f"label source {source} does not exist")
    if source.suffix == ".m":
        entries = read_m_file(source)
    elif source.suffix == ".mat":
        content = _loadmat(source)
        if "volLabel" in content:  # one Avenue video's masks given as the source
            _check_video_count([source], videos, source)
            return [_read_per_video(source, videos[0][1], videos[0][0])]
        entries = _gt_ranges(content, source)
    elif source.suffix == ".npy":
        flat = read_frame_mask(source)
        total = sum(n for _, n in videos)
        if len(flat) != total:
            raise LabelCountError(
                f"{source}: holds {len(flat)} frame labels but the {len(videos)} test videos "
                f"have {total} frames together; the file does not belong to these videos"
            )
        cuts = np.cumsum([n for _, n in videos])[:-1]
        return list(np.split(flat, cuts))
    else:
        raise LabelError(f"{source}: unknown label format {source.suffix!r} (expected .m, .mat, "
                         f".npy or a folder of per-video files)")
    _check_video_count(entries, videos, source)
    return [ranges_to_mask(ranges, n, name, source)
            for ranges, (name, n) in zip(entries, videos, strict=True)]
