"""Decode each video once into a resized uint8 array, on disk (memory-mapped) or in memory.

A cached video is ``<cache_dir>/<name>-<key>.npy`` where the key hashes the decoder version, the
source path(s), their sizes and modification times, the resolution, the colour mode and the
record's frame range (a span of a longer video), so that a changed source or a different
resolution never reuses a stale cache.

Nothing half-written is ever trusted:

* a file is decoded batch by batch into ``.<name>-<key>.<random>.tmp`` (a memory-mapped ``.npy``,
  so a long video never sits in memory whole), flushed, and only then renamed into place; an
  interrupted build leaves at most a ``.tmp`` file, which is never read;
* several multirun jobs may build the same cache at once: each writes its own temporary file and
  the renames are atomic, so readers see one whole file or none;
* a cached file is opened only if its header matches the record (frame count, size, colour);
  anything else (a file truncated by a full disk, a foreign file) is decoded again.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from vad.data.decode import (
    CorruptVideoError,
    decode_into,
    decode_record,
)
from vad.data.records import VideoRecord

log = logging.getLogger(__name__)

# Bump when decoding changes what lands in a cache (resize filter, colour conversion).
CACHE_VERSION = 2
CACHE_THREADS = max(1, min(4, os.cpu_count() or 1))  # videos decoded at once by `build_cache`


def cache_key(record: VideoRecord, image_size: tuple[int, int] | None, grayscale: bool) -> str:
    """A short hash of everything that determines the decoded frames."""
    digest = hashlib.sha1(f"v{CACHE_VERSION};".encode())
    paths = record.source if isinstance(record.source, list) else [record.source]
    folders: dict[Path, Path] = {}  # resolve each folder once, not each of thousands of frames
    for path in paths:
        path = Path(path)
        folder = folders.get(path.parent)
        if folder is None:
            folder = folders[path.parent] = path.parent.resolve()
        stat = path.stat()
        digest.update(f"{folder / path.name}:{stat.st_size}:{stat.st_mtime_ns};".encode())
    size = None if image_size is None else tuple(int(v) for v in image_size)
    digest.update(f"{size}:{'grey' if grayscale else 'rgb'}".encode())
    if record.frame_range is not None:  # a span of the source; whole sources keep their key
        digest.update(f";frames {record.frame_range[0]}:{record.frame_range[1]}".encode())
    return digest.hexdigest()[:16]


def cache_path(record: VideoRecord, cache_dir: Path, image_size, grayscale: bool) -> Path:
    """Where ``record``'s decoded frames live in ``cache_dir``."""
    safe_name = record.name.replace("/", "_").replace("\\", "_")
    return Path(cache_dir) / f"{safe_name}-{cache_key(record, image_size, grayscale)}.npy"


def _open_valid(path: Path, record: VideoRecord, image_size, grayscale: bool) -> np.ndarray | None:
    """The memory-mapped cache at ``path`` if it exists and fits ``record``, else None."""
    if not path.exists():
        return None
    try:
        frames = np.load(path, mmap_mode="r")
    except (ValueError, OSError, EOFError) as err:  # truncated or not an .npy file
        log.warning("ignoring unreadable cache file %s (%s); decoding again", path, err)
        return None
    channels = 1 if grayscale else 3
    fits = (
        frames.dtype == np.uint8
        and frames.ndim == 4
        and frames.shape[0] == record.num_frames
        and frames.shape[3] == channels
        and (image_size is None or tuple(frames.shape[1:3]) == tuple(image_size))
    )
    if not fits:
        log.warning("ignoring cache file %s with shape %s; decoding again", path, frames.shape)
        return None
    return frames


@contextmanager
def atomic_npy(path: Path) -> Iterator[Callable[[tuple[int, ...]], np.ndarray]]:
    """Write one uint8 ``.npy`` at ``path`` so that no reader ever sees it half-written.

    Yields ``create(shape)``, which opens the memory-mapped array to fill in a temporary file
    beside ``path``; when the block ends without an exception the array is flushed, fsynced and
    renamed into place, otherwise the temporary file is removed (and ``path`` left untouched).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=".tmp")
    os.close(fd)
    tmp = Path(tmp_name)
    opened: list[np.ndarray] = []

    def create(shape: tuple[int, ...]) -> np.ndarray:
        opened.append(np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=shape))
        return opened[-1]

    try:
        yield create
        if not opened:
            raise RuntimeError(f"nothing was written for {path}")
        opened.pop().flush()  # and close the map before the rename (required on Windows)
        with open(tmp, "rb+") as handle:
            os.fsync(handle.fileno())  # the data is on disk before the name says it is whole
        os.chmod(tmp, 0o644)  # mkstemp makes it private; a shared cache must stay readable
        os.replace(tmp, path)
    finally:
        opened.clear()
        tmp.unlink(missing_ok=True)


def _write(record: VideoRecord, path: Path, image_size, grayscale: bool) -> None:
    """Decode ``record`` into ``path`` (`atomic_npy`)."""
    with atomic_npy(path) as create:
        if decode_into(record, image_size, grayscale, create) is None:
            raise CorruptVideoError(f"video {record.name!r} ({record.source_description}) has "
                                    f"no frames")


def build_cache(
    records: Sequence[VideoRecord],
    cache_dir: Path | None,
    image_size: tuple[int, int] | None,
    grayscale: bool,
    desc: str = "decoding",
) -> None:
    """Decode the records not cached yet, with a progress bar. No-op without a cache dir.

    Raises:
        CorruptVideoError: A record cannot be decoded (nothing is left in the cache for it).
    """
    if cache_dir is None:
        return
    todo = [
        r
        for r in records
        if not isinstance(r.source, np.ndarray)
        and _open_valid(cache_path(r, cache_dir, image_size, grayscale), r, image_size,
                        grayscale) is None
    ]
    total = sum(r.num_frames for r in todo)

    def write(record: VideoRecord) -> int:
        _write(record, cache_path(record, cache_dir, image_size, grayscale), image_size,
               grayscale)
        return record.num_frames

    # decord (through ctypes) and OpenCV release the GIL: videos decode in parallel threads.
    with tqdm(total=total, desc=desc, unit="frame", disable=not todo) as bar, \
            ThreadPoolExecutor(CACHE_THREADS) as pool:
        for done in pool.map(write, todo):
            bar.update(done)


def load_frames(
    record: VideoRecord, cache_dir: Path | None, image_size, grayscale: bool
) -> np.ndarray:
    """The record's frames ``(N, H, W, C)`` uint8, memory-mapped from the cache.

    A record missing from the cache (or whose cache file does not fit it) is decoded and cached
    first; without a cache dir it is decoded into memory.
    """
    if cache_dir is None or isinstance(record.source, np.ndarray):
        return decode_record(record, image_size, grayscale)
    path = cache_path(record, cache_dir, image_size, grayscale)
    frames = _open_valid(path, record, image_size, grayscale)
    if frames is None:
        _write(record, path, image_size, grayscale)
        frames = _open_valid(path, record, image_size, grayscale)
    return frames
