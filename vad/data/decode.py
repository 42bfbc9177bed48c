"""Decode a `VideoRecord` into resized uint8 frames ``(N, H, W, C)``.

Frame files (JPEG, PNG, TIFF, ...) are decoded with OpenCV on a small thread pool (OpenCV
releases the GIL, so two cores decode about twice as fast); video files (``.avi``, ``.mp4``) with
decord, in batches, so a long 640×360 RGB video never has to sit in memory at full resolution.
Both paths convert colour and resize the same way (OpenCV, area interpolation when shrinking),
so a dataset read from frames or from videos gives the same pixels up to codec noise.

Anything that cannot be decoded raises `CorruptVideoError` naming the file: an unreadable or
truncated frame, a video that fails to decode, or a video that yields fewer frames than its
container declares (a truncated download).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2
import numpy as np

from vad.data.records import VideoRecord

VIDEO_BATCH = 64  # frames decoded at once from a video file: bounded memory, few decord calls
IMAGE_THREADS = max(1, min(4, os.cpu_count() or 1))
_JPEG_SUFFIXES = (".jpg", ".jpeg")


class CorruptVideoError(RuntimeError):
    """A frame or video file that cannot be decoded; the message names the file."""


def _convert(frame: np.ndarray, image_size: tuple[int, int] | None, grayscale: bool) -> np.ndarray:
    """One ``(H, W)`` grey or ``(H, W, 3)`` RGB frame → ``(h, w, C)`` in the wanted size/colour."""
    if frame.ndim == 2:
        frame = frame if grayscale else cv2.cvtColor(frame, cv2.COLOR_GRAY2RGB)
    elif grayscale:
        frame = cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY)
    if image_size is not None and tuple(frame.shape[:2]) != tuple(image_size):
        height, width = image_size
        shrink = height <= frame.shape[0] and width <= frame.shape[1]
        # Area averaging is the right filter when shrinking; it degrades to nearest when enlarging.
        interpolation = cv2.INTER_AREA if shrink else cv2.INTER_LINEAR
        frame = cv2.resize(frame, (width, height), interpolation=interpolation)
    return frame.reshape(frame.shape[0], frame.shape[1], -1)


def resize_frames(
    frames: np.ndarray, image_size: tuple[int, int] | None, grayscale: bool
) -> np.ndarray:
    """Resize ``(N, H, W, C)`` uint8 frames to ``image_size = (H, W)`` and the wanted colour."""
    channels = 1 if grayscale else 3
    if len(frames) == 0:
        return np.zeros((0, *(image_size or (0, 0)), channels), np.uint8)
    out = None
    for i, frame in enumerate(frames):
        frame = _convert(np.asarray(frame)[..., 0] if frame.shape[-1] == 1 else frame,
                         image_size, grayscale)
        if out is None:
            out = np.empty((len(frames), *frame.shape), np.uint8)
        out[i] = frame
    return out


def read_image(path: Path, grayscale: bool = False) -> np.ndarray:
    """One image file as ``(H, W)`` grey or ``(H, W, 3)`` RGB uint8.

    Raises:
        CorruptVideoError: The file is missing, empty, not an image, or a truncated JPEG
            (OpenCV would silently return a partly grey frame for the latter).
    """
    path = Path(path)
    try:
        data = np.fromfile(path, dtype=np.uint8)
    except OSError as err:
        raise CorruptVideoError(f"cannot read frame {path}: {err}") from err
    if path.suffix.lower() in _JPEG_SUFFIXES and b"\xff\xd9" not in data[-32:].tobytes():
        raise CorruptVideoError(f"frame {path} is a truncated JPEG (no end-of-image marker); "
                                f"re-extract or re-download it")
    flags = cv2.IMREAD_GRAYSCALE if grayscale else cv2.IMREAD_COLOR
    frame = cv2.imdecode(data, flags) if data.size else None
    if frame is None:
        raise CorruptVideoError(f"cannot read frame {path}: the file is empty or corrupt")
    return frame if grayscale else cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)


def _frame_file_batches(
    paths: list[Path], image_size: tuple[int, int] | None, grayscale: bool, batch_size: int
) -> Iterator[np.ndarray]:
    def load(path: Path) -> np.ndarray:
        return _convert(read_image(path, grayscale), image_size, grayscale)

    with ThreadPoolExecutor(IMAGE_THREADS) as pool:
        for start in range(0, len(paths), batch_size):
            chunk = paths[start:start + batch_size]
            frames = list(pool.map(load, chunk))
            shape = frames[0].shape
            for path, frame in zip(chunk, frames, strict=True):
                if frame.shape != shape:  # only possible without resizing
                    raise CorruptVideoError(
                        f"frame {path} is {frame.shape[1]}x{frame.shape[0]} but the frames "
                        f"before it are {shape[1]}x{shape[0]}"
                    )
            yield np.stack(frames)


def container_truncation(path: Path) -> str | None:
    """Why a video file is shorter than its container says, or None if it looks whole.

    Walks the top-level RIFF chunks of an AVI or the top-level boxes of an MP4/MOV: a cut-short
    download leaves the last one claiming more bytes than the file has. Decoders do not notice
    this reliably (decord reads a truncated AVI as a shorter, valid video), so it is checked here.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    size = path.stat().st_size
    with open(path, "rb") as handle:
        offset = 0
        if suffix == ".avi":
            while offset + 12 <= size:
                handle.seek(offset)
                head = handle.read(12)
                if head[:4] != b"RIFF":
                    break
                end = offset + 8 + int.from_bytes(head[4:8], "little")
                if end > size:
                    return f"its RIFF chunk at byte {offset} ends at byte {end}, the file at {size}"
                offset = end + (end & 1)
        elif suffix in (".mp4", ".m4v", ".mov"):
            while offset + 8 <= size:
                handle.seek(offset)
                head = handle.read(16)
                box = int.from_bytes(head[:4], "big")
                if box == 1 and len(head) == 16:  # 64-bit size
                    box = int.from_bytes(head[8:16], "big")
                if box < 8:  # 0 means "to the end of the file"; smaller is not a box size
                    break
                if offset + box > size:
                    kind = head[4:8].decode("latin-1")
                    return (f"its '{kind}' box at byte {offset} ends at byte {offset + box}, "
                            f"the file at {size}")
                offset += box
    return None


def count_video_frames(path: Path) -> int:
    """Frames in a video file, from its container (no decoding).

    Raises:
        CorruptVideoError: The file cannot be opened or is truncated.
    """
    import decord

    path = Path(path)
    reason = container_truncation(path)
    if reason is not None:
        raise CorruptVideoError(f"video {path} is truncated: {reason}; re-download it")
    try:
        return len(decord.VideoReader(str(path), ctx=decord.cpu(0)))
    except (decord.DECORDError, RuntimeError) as err:
        raise CorruptVideoError(f"cannot open video {path}: {err}") from err


def video_fps(path: Path) -> float:
    """Frames per second of a video file, from its container (no decoding).

    Raises:
        CorruptVideoError: The file cannot be opened or declares no frame rate.
    """
    import decord

    path = Path(path)
    try:
        fps = float(decord.VideoReader(str(path), ctx=decord.cpu(0)).get_avg_fps())
    except (decord.DECORDError, RuntimeError) as err:
        raise CorruptVideoError(f"cannot open video {path}: {err}") from err
    if not fps > 0:
        raise CorruptVideoError(f"video {path} declares no frame rate ({fps})")
    return fps


def _video_file_batches(
    path: Path, image_size: tuple[int, int] | None, grayscale: bool, batch_size: int,
    first: int = 0, stop: int | None = None,
) -> Iterator[np.ndarray]:
    """Frames ``first .. stop - 1`` (default: all) of a video file, in batches."""
    import decord

    reason = container_truncation(path)
    if reason is not None:
        raise CorruptVideoError(f"video {path} is truncated: {reason}; re-download it")
    try:
        reader = decord.VideoReader(str(path), ctx=decord.cpu(0))
    except (decord.DECORDError, RuntimeError) as err:
        raise CorruptVideoError(f"cannot open video {path}: {err}") from err
    total = len(reader) if stop is None else min(stop, len(reader))
    for start in range(first, total, batch_size):
        indices = list(range(start, min(start + batch_size, total)))
        try:
            # Sequential indices: decord decodes forward without seeking back to a key frame.
            frames = reader.get_batch(indices).asnumpy()
        except (decord.DECORDError, RuntimeError) as err:
            raise CorruptVideoError(
                f"cannot decode frames {start}-{indices[-1]} of video {path} (of {total} "
                f"declared): {err}; the file may be truncated"
            ) from err
        yield resize_frames(frames, image_size, grayscale)


def iter_record_batches(
    record: VideoRecord, image_size: tuple[int, int] | None, grayscale: bool,
    batch_size: int | None = None,
) -> Iterator[np.ndarray]:
    """The record's frames (its ``frame_range`` of the source, if set) as consecutive
    ``(n, H, W, C)`` uint8 batches of at most ``batch_size`` frames from files (`VIDEO_BATCH` by
    default; 1: frame by frame, as a stream delivers them; frames in memory come as one batch)."""
    first, stop = record.frame_range or (0, None)
    batch_size = batch_size or VIDEO_BATCH
    if isinstance(record.source, np.ndarray):
        yield resize_frames(record.source[first:stop], image_size, grayscale)
    elif isinstance(record.source, list):
        yield from _frame_file_batches(record.source[first:stop], image_size, grayscale,
                                       batch_size)
    else:
        yield from _video_file_batches(Path(record.source), image_size, grayscale, batch_size,
                                       first, stop)


def check_frame_count(record: VideoRecord, found: int) -> None:
    """Raise `CorruptVideoError` unless ``found == record.num_frames``."""
    if found != record.num_frames:
        raise CorruptVideoError(
            f"video {record.name!r} ({record.source_description}): decoded {found} frames, "
            f"expected {record.num_frames}; the file may be truncated"
        )


def decode_into(
    record: VideoRecord,
    image_size: tuple[int, int] | None,
    grayscale: bool,
    allocate: Callable[[tuple[int, ...]], np.ndarray],
) -> np.ndarray | None:
    """Decode ``record`` batch by batch into ``allocate((num_frames, H, W, C))``.

    Returns None for a video without frames. Raises `CorruptVideoError` when the decoded frame
    count differs from ``record.num_frames`` or the frame size changes inside the video.
    """
    out, filled = None, 0
    for batch in iter_record_batches(record, image_size, grayscale):
        if out is None:
            out = allocate((record.num_frames, *batch.shape[1:]))
        if filled + len(batch) > len(out):
            check_frame_count(record, filled + len(batch))  # raises: more than declared
        if batch.shape[1:] != out.shape[1:]:
            raise CorruptVideoError(f"video {record.name!r} ({record.source_description}): "
                                    f"frame size changes from {out.shape[1:3]} to "
                                    f"{batch.shape[1:3]}")
        out[filled:filled + len(batch)] = batch
        filled += len(batch)
    check_frame_count(record, filled)
    return out


def decode_record(
    record: VideoRecord, image_size: tuple[int, int] | None, grayscale: bool
) -> np.ndarray:
    """Decode every frame of ``record``, resized, as ``(N, H, W, C)`` uint8.

    Raises:
        CorruptVideoError: a frame or video cannot be decoded, or the decoded frame count
            differs from ``record.num_frames``.
    """
    out = decode_into(record, image_size, grayscale, lambda shape: np.empty(shape, np.uint8))
    if out is None:  # a record with zero frames that claims zero frames
        channels = 1 if grayscale else 3
        return np.zeros((0, *(image_size or (0, 0)), channels), np.uint8)
    return out
