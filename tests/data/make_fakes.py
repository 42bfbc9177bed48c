"""Write tiny, faithful fakes of every dataset layout `vad` reads (seeded, deterministic).

    python tests/data/make_fakes.py OUT_DIR        # or: make fakes

Each fake has the real tree, file names and label formats (UCSD ``.tif`` + ``.m`` with a
multi-segment entry, ``gt`` ``.mat`` written with scipy, Avenue ``volLabel`` cells, ShanghaiTech
``.npy`` masks, Street Scene track files, ``.avi``/``.mp4`` written with OpenCV), a few small
frames per video, and known counts:

| fake | train videos / frames | test videos / frames | anomalous |
| --- | --- | --- | --- |
| ped1/{ucsd,frames,videos} (avi) | 3 / 30 | 4 / 40 | 23 |
| ped2/{ucsd,frames,videos} (mp4) | 2 / 18 | 3 / 27 | 12 |
| avenue/original (volLabel) | 2 / 21 | 3 / 30 | 11 (avenue.mat 12, .npy 13) |
| avenue/common (frames, avenue.mat) | 2 / 21 | 3 / 30 | 12 |
| shanghaitech (train avi, test frames) | 3 / 27 | 3 / 24 | 11 (scene 1: 2/18, 2/18, 6) |
| streetscene | 2 / 14 | 2 / 17 | 10 |

Frames show a bright square moving over a noisy background; colour datasets get a colour tint.
"""

from __future__ import annotations

import sys
from pathlib import Path

import cv2
import numpy as np
import scipy.io

SEED = 0
MARKER = ".vad_fakes"  # lets `make fakes` delete an old copy without deleting anything else
GREY_SIZE = (32, 64)   # (H, W) of the UCSD fakes (decord cannot decode frames under 64 wide)
RGB_SIZE = (36, 64)    # (H, W) of the Avenue, ShanghaiTech and Street Scene fakes

# UCSD: frames per video and the 1-based inclusive anomalous ranges of each test video.
PED1_TRAIN = [10, 10, 10]
PED1_TEST = [10, 12, 8, 10]
PED1_RANGES = [[(3, 5)], [(1, 2), (8, 10)], [(4, 8)], [(1, 10)]]               # 3+5+5+10 = 23
PED2_TRAIN = [10, 8]
PED2_TEST = [9, 10, 8]
PED2_RANGES = [[(2, 4)], [(1, 3), (6, 8)], [(5, 7)]]                             # 3+6+3 = 12

# Avenue: three label sources that disagree, as the real ones do.
AVENUE_TRAIN = [12, 9]
AVENUE_TEST = [10, 8, 12]
AVENUE_VOL_FRAMES = [[1, 2, 3], [7], [5, 6, 7, 8, 9, 10, 11]]                    # 0-based: 11
AVENUE_MAT_RANGES = [[(2, 5)], [(8, 8)], [(6, 12)]]                              # 4+1+7 = 12
AVENUE_NPY_FRAMES = [[1, 2, 3, 4, 5], [6, 7], [5, 6, 7, 8, 9, 10]]               # 5+2+6 = 13

# ShanghaiTech: names are <scene>_<number>; train from videos, test from frames.
SHANGHAI_TRAIN = {"01_001": 10, "01_002": 8, "02_001": 9}
SHANGHAI_TEST = {"01_0014": 10, "01_0015": 8, "02_0161": 6}
SHANGHAI_ANOMALOUS = {"01_0014": [2, 3, 4, 5], "01_0015": [0, 1], "02_0161": [1, 2, 3, 4, 5]}

# Street Scene: per test sequence, tracks as {track id: 1-based frames with a box}.
STREET_TRAIN = [8, 6]
STREET_TEST = [10, 7]
STREET_TRACKS = [{0: [3, 4, 5], 1: [5, 6, 7, 8]}, {0: [1, 2], 1: [6, 7]}]       # 6 + 4 = 10


def _frames(rng: np.random.Generator, n: int, size: tuple[int, int], colour: bool) -> np.ndarray:
    """``n`` frames ``(n, H, W, 3)`` uint8: a square moving right over noise."""
    height, width = size
    base = rng.integers(60, 120, size=(height, width), dtype=np.uint8).astype(np.float32)
    tint = rng.uniform(0.6, 1.4, size=3) if colour else np.ones(3)
    out = np.empty((n, height, width, 3), np.uint8)
    for t in range(n):
        frame = base + rng.normal(0, 3, base.shape)
        x = (3 * t) % (width - 8)
        frame[height // 3:height // 3 + 8, x:x + 8] = 220
        out[t] = np.clip(frame[..., None] * tint, 0, 255).astype(np.uint8)
    return out


def _write_frames(
    folder: Path, frames: np.ndarray, pattern: str, grey: bool = False, first: int = 0
) -> None:
    """Frame files named ``pattern.format(first + i)``."""
    folder.mkdir(parents=True, exist_ok=True)
    for i, frame in enumerate(frames, first):
        image = frame[..., 0] if grey else cv2.cvtColor(frame, cv2.COLOR_RGB2BGR)
        if not cv2.imwrite(str(folder / pattern.format(i)), image):
            raise RuntimeError(f"OpenCV could not write {folder / pattern.format(i)}")


def _write_video(path: Path, frames: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fourcc = cv2.VideoWriter_fourcc(*("mp4v" if path.suffix == ".mp4" else "MJPG"))
    writer = cv2.VideoWriter(str(path), fourcc, 10.0, (frames.shape[2], frames.shape[1]))
    if not writer.isOpened():
        raise RuntimeError(f"OpenCV cannot write {path}")
    for frame in frames:
        writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    writer.release()


def _gt_cell(ranges: list[list[tuple[int, int]]]) -> np.ndarray:
    """The common layout's ``gt``: a 1×n cell of 2×K [start; end] arrays."""
    cell = np.empty((1, len(ranges)), dtype=object)
    for i, video in enumerate(ranges):
        cell[0, i] = np.array(video, dtype=np.uint8).T.reshape(2, -1)
    return cell


def _m_file(name: str, ranges: list[list[tuple[int, int]]]) -> str:
    lines = ["TestVideoFile = {};"]
    for video in ranges:
        inner = ", ".join(f"{s}:{e}" for s, e in video)
        lines.append(f"TestVideoFile{{end+1}}.gt_frame = [{inner}];")
    return "\n".join(lines) + "\n"


def _mask_from_ranges(n: int, ranges: list[tuple[int, int]]) -> np.ndarray:
    mask = np.zeros(n, bool)
    for start, end in ranges:
        mask[start - 1:end] = True
    return mask


def _ucsd(out: Path, number: int, rng, train, test, ranges, suffix: str) -> None:
    """The three layouts of one UCSD dataset, with identical frames and labels."""
    name = f"ped{number}"
    train_frames = [_frames(rng, n, GREY_SIZE, False) for n in train]
    test_frames = [_frames(rng, n, GREY_SIZE, False) for n in test]

    base = out / name / "ucsd" / f"UCSDped{number}"
    # The tree of the release: 1-based frame files, pixel masks in TestNNN_gt, macOS debris.
    for i, frames in enumerate(train_frames, 1):
        _write_frames(base / "Train" / f"Train{i:03d}", frames, "{:03d}.tif", True, first=1)
    for i, frames in enumerate(test_frames, 1):
        _write_frames(base / "Test" / f"Test{i:03d}", frames, "{:03d}.tif", True, first=1)
    masks = np.zeros((test[0], *GREY_SIZE, 3), np.uint8)
    masks[np.flatnonzero(_mask_from_ranges(test[0], ranges[0])), :8, :8] = 255
    _write_frames(base / "Test" / "Test001_gt", masks, "{:03d}.bmp", grey=True)
    (base / "Train" / ".DS_Store").write_bytes(b"\0\0\0\1Bud1")
    (base / "Test" / f"UCSDped{number}.m").write_text(_m_file(name, ranges))

    common = out / name / "frames"
    for i, frames in enumerate(train_frames, 1):
        _write_frames(common / "training" / "frames" / f"{i:02d}", frames, "{:03d}.jpg", True)
    for i, frames in enumerate(test_frames, 1):
        _write_frames(common / "testing" / "frames" / f"{i:02d}", frames, "{:03d}.jpg", True)
    scipy.io.savemat(common / f"{name}.mat", {"gt": _gt_cell(ranges)})

    videos = out / name / "videos"
    for i, frames in enumerate(train_frames, 1):
        _write_video(videos / "training" / "videos" / f"{i:02d}{suffix}", frames)
    for i, frames in enumerate(test_frames, 1):
        _write_video(videos / "testing" / "videos" / f"{i:02d}{suffix}", frames)
    scipy.io.savemat(videos / f"{name}.mat", {"gt": _gt_cell(ranges)})


def _avenue(out: Path, rng) -> None:
    train_frames = [_frames(rng, n, RGB_SIZE, True) for n in AVENUE_TRAIN]
    test_frames = [_frames(rng, n, RGB_SIZE, True) for n in AVENUE_TEST]

    base = out / "avenue" / "original"
    for i, frames in enumerate(train_frames, 1):
        _write_video(base / "training_videos" / f"{i:02d}.avi", frames)
    for i, frames in enumerate(test_frames, 1):
        _write_video(base / "testing_videos" / f"{i:02d}.avi", frames)
    label_dir = base / "ground_truth_demo" / "testing_label_mask"
    label_dir.mkdir(parents=True)
    for i, (n, anomalous) in enumerate(zip(AVENUE_TEST, AVENUE_VOL_FRAMES, strict=True), 1):
        cell = np.empty((1, n), dtype=object)
        for t in range(n):
            mask = np.zeros(RGB_SIZE, np.uint8)
            if t in anomalous:
                mask[5 + t % 3, 10 + t] = 1  # a few pixels suffice: the rule is "any pixel"
            cell[0, t] = mask
        scipy.io.savemat(label_dir / f"{i}_label.mat", {"volLabel": cell})
    scipy.io.savemat(base / "avenue.mat", {"gt": _gt_cell(AVENUE_MAT_RANGES)})
    flat = np.zeros((1, sum(AVENUE_TEST)), np.int8)  # shape and dtype of the real file
    for offset, frames in zip(np.cumsum([0, *AVENUE_TEST[:-1]]), AVENUE_NPY_FRAMES, strict=True):
        flat[0, offset + np.array(frames)] = 1
    np.save(base / "frame_labels_avenue.npy", flat)

    common = out / "avenue" / "common"
    for i, frames in enumerate(train_frames, 1):
        _write_frames(common / "training" / "frames" / f"{i:02d}", frames, "{:04d}.jpg")
    for i, frames in enumerate(test_frames, 1):
        _write_frames(common / "testing" / "frames" / f"{i:02d}", frames, "{:04d}.jpg")
    scipy.io.savemat(common / "avenue.mat", {"gt": _gt_cell(AVENUE_MAT_RANGES)})


def _shanghaitech(out: Path, rng) -> None:
    base = out / "shanghaitech"
    for name, n in SHANGHAI_TRAIN.items():
        _write_video(base / "training" / "videos" / f"{name}.avi", _frames(rng, n, RGB_SIZE, True))
    for name, n in SHANGHAI_TEST.items():
        _write_frames(base / "testing" / "frames" / name, _frames(rng, n, RGB_SIZE, True),
                      "{:03d}.jpg")
        labels = np.zeros(n, np.uint8)
        labels[SHANGHAI_ANOMALOUS[name]] = 1
        (base / "testing" / "test_frame_mask").mkdir(parents=True, exist_ok=True)
        np.save(base / "testing" / "test_frame_mask" / f"{name}.npy", labels)
        pixels = np.zeros((n, *RGB_SIZE), np.uint8)
        pixels[labels.astype(bool), 4:8, 4:8] = 1
        (base / "testing" / "test_pixel_mask").mkdir(parents=True, exist_ok=True)
        np.save(base / "testing" / "test_pixel_mask" / f"{name}.npy", pixels)


def _streetscene(out: Path, rng) -> None:
    base = out / "streetscene" / "StreetScene"
    for i, n in enumerate(STREET_TRAIN, 1):
        _write_frames(base / "Train" / f"Train{i:03d}", _frames(rng, n, RGB_SIZE, True),
                      "{:05d}.jpg", first=1)
    for i, (n, tracks) in enumerate(zip(STREET_TEST, STREET_TRACKS, strict=True), 1):
        folder = base / "Test" / f"Test{i:03d}"
        _write_frames(folder, _frames(rng, n, RGB_SIZE, True), "{:05d}.jpg", first=1)
        lines = []
        for track, frame_numbers in tracks.items():
            for number in frame_numbers:
                # The second file names frames with their folder, as some copies do.
                name = f"{number:05d}.jpg" if i == 1 else f"Test{i:03d}/{number:05d}.jpg"
                cx, cy = 10.5 + 2 * number, 12.0 + track
                lines.append(f"{name} {track} {cx} {cy} 6 8")
        (folder / f"Test{i:03d}_gt.txt").write_text("\n".join(lines) + "\n")


def make_fakes(out_dir: str | Path, seed: int = SEED) -> Path:
    """Write every fake under ``out_dir`` (created; must be empty or absent) and return it.

    Roots: ``ped1/{ucsd,frames,videos}``, ``ped2/{ucsd,frames,videos}``,
    ``avenue/{original,common}``, ``shanghaitech``, ``streetscene``.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if any(out.iterdir()):
        raise FileExistsError(f"{out} is not empty; fakes are written into an empty folder")
    (out / MARKER).write_text("written by tests/data/make_fakes.py; safe to delete\n")
    rng = np.random.default_rng(seed)
    _ucsd(out, 1, rng, PED1_TRAIN, PED1_TEST, PED1_RANGES, ".avi")
    _ucsd(out, 2, rng, PED2_TRAIN, PED2_TEST, PED2_RANGES, ".mp4")
    _avenue(out, rng)
    _shanghaitech(out, rng)
    _streetscene(out, rng)
    return out


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python tests/data/make_fakes.py OUT_DIR")
    target = Path(sys.argv[1])
    if (target / MARKER).exists():  # `make fakes` rebuilds from scratch
        import shutil

        shutil.rmtree(target)
    print(f"fakes written to {make_fakes(target)}")
