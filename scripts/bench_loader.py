"""Loader throughput on CPU: vad's warm-cache loader against the papers' per-sample JPEG loader.

    python scripts/bench_loader.py                        # both settings on ../shared/data/ped2
    python scripts/bench_loader.py --settings rgb5 --rounds 8

The baseline is the loader of the papers' official codes (MNAD's and ano_pred's
``DataLoader``): per sample, per frame ``cv2.imread`` + ``cv2.resize`` + float conversion and
scaling, frames concatenated, then the default collation of a ``torch.utils.data.DataLoader``.
``vad`` is `Ped2DataModule`'s training loader on a warm cache (decoded once, memory-mapped):
each batch is gathered in one step and delivered as uint8; its float conversion happens once per
batch on the training device (`float_clips`), measured here on the CPU as a separate row.

Both loaders read the same clips (vad's training clip index: same videos, starts and order),
shuffled with the same seed, batch by batch in one process with no worker processes, interleaved
(``--batches`` batches of one, then of the other, ``--rounds`` times), so that the load of the
machine falls on both alike. Prints a markdown table (clips/s and the ratio) for docs/results.md.
"""

from __future__ import annotations

import argparse
import os
import platform
import shlex
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from vad.data.datamodule import float_clips  # noqa: E402
from vad.data.ped import Ped2DataModule  # noqa: E402

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
SETTINGS = {  # name: (clip length T, RGB, batch size)
    "rgb5": (5, True, 4),
    "grey10": (10, False, 8),
}


class NaiveClipDataset(Dataset):
    """The official codes' loader: every frame of every sample read, resized and converted."""

    def __init__(self, frame_files: list[list[Path]], index: np.ndarray, offsets: np.ndarray,
                 size: tuple[int, int], rgb: bool) -> None:
        self.frame_files, self.index, self.offsets = frame_files, index, offsets
        self.height, self.width = size
        self.flag = cv2.IMREAD_COLOR if rgb else cv2.IMREAD_GRAYSCALE

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, i: int) -> torch.Tensor:
        video, start, step = self.index[i]
        frames = []
        for t in start + self.offsets * step:
            image = cv2.imread(str(self.frame_files[video][t]), self.flag)
            image = cv2.resize(image, (self.width, self.height)).astype(np.float32)
            frames.append(image.reshape(self.height, self.width, -1) / 127.5 - 1.0)
        return torch.from_numpy(np.concatenate(frames, axis=2).transpose(2, 0, 1))


def timed_batches(iterator, count: int, convert=None) -> tuple[int, float]:
    """Clips and seconds for the next ``count`` batches of ``iterator``."""
    clips, start = 0, time.perf_counter()
    for _ in range(count):
        batch = next(iterator)
        if convert is not None:
            batch = convert(batch)
        clips += len(batch) if isinstance(batch, torch.Tensor) else len(batch.clip)
    return clips, time.perf_counter() - start


def bench(root: Path, setting: str, args: argparse.Namespace, cache: str) -> dict:
    length, rgb, batch_size = SETTINGS[setting]
    dm = Ped2DataModule(root=str(root), clip={"length": length, "target": "all"},
                        image_size=tuple(args.image_size), grayscale=not rgb,
                        value_range=(-1.0, 1.0), batch_size=batch_size, num_workers=0,
                        cache_dir=cache)
    dm.prepare_data()  # warm the cache (decoded once), outside the timing
    dm.setup("fit")
    train = dm.datasets["train"]
    naive = NaiveClipDataset([r.source for r in dm.records("train")], train.index,
                             train.offsets, tuple(args.image_size), rgb)
    if not isinstance(dm.records("train")[0].source, list):
        raise SystemExit(f"{root}: the baseline reads frame files; give a frame layout")

    def loaders():
        generator = torch.Generator().manual_seed(args.seed)
        vad_loader = dm.train_dataloader()
        vad_loader.sampler.generator = generator
        naive_loader = DataLoader(naive, batch_size=batch_size, shuffle=True, num_workers=0,
                                  generator=torch.Generator().manual_seed(args.seed))
        return iter(vad_loader), iter(naive_loader)

    totals = {"vad": [0, 0.0], "vad+float": [0, 0.0], "naive": [0, 0.0]}
    convert = lambda b: float_clips(b, dm.value_range)  # noqa: E731
    for _ in range(args.rounds):
        vad_it, naive_it = loaders()  # fresh epochs: the same clips in the same order
        vad_float_it, _ = loaders()
        for name, iterator, conversion in (("vad", vad_it, None), ("naive", naive_it, None),
                                           ("vad+float", vad_float_it, convert)):
            clips, seconds = timed_batches(iterator, args.batches, conversion)
            totals[name][0] += clips
            totals[name][1] += seconds
    rate = {name: clips / seconds for name, (clips, seconds) in totals.items()}
    return {"setting": setting, "T": length, "colour": "RGB" if rgb else "grey",
            "batch": batch_size, "clips": totals["vad"][0], **rate}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=SHARED / "ped2", help="Ped2, frame layout")
    parser.add_argument("--settings", nargs="+", default=list(SETTINGS), choices=list(SETTINGS))
    parser.add_argument("--image-size", type=int, nargs=2, default=[256, 256])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--batches", type=int, default=40, help="batches per loader per round")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    cv2.setNumThreads(1)

    print(f"command: python {' '.join(shlex.quote(a) for a in sys.argv)}")
    print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__}, "
          f"{torch.get_num_threads()} torch thread(s); load average {os.getloadavg()[0]:.1f}")
    header = ("clips", "batch", "clips timed", "naive clips/s", "vad clips/s", "ratio",
              "vad + float on CPU clips/s", "ratio")
    print("| " + " | ".join(header) + " |")
    print("|" + " --- |" * len(header))
    with tempfile.TemporaryDirectory(prefix="vad-bench-") as cache:
        for setting in args.settings:
            r = bench(args.root, setting, args, cache)
            print(f"| T={r['T']} {r['colour']} {args.image_size[0]}x{args.image_size[1]} | "
                  f"{r['batch']} | {r['clips']} | {r['naive']:.0f} | {r['vad']:.0f} | "
                  f"{r['vad'] / r['naive']:.1f}x | {r['vad+float']:.0f} | "
                  f"{r['vad+float'] / r['naive']:.1f}x |", flush=True)
    print(f"load average after: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
