"""Loader throughput on CPU: clips/s from a cold cache (decoding included) and from a warm one.

    python scripts/bench_loader.py                       # Ped2 from frames and from mp4
    python scripts/bench_loader.py --roots ../shared/data/ped2 --num-workers 0 2

For each source it builds a `Ped2DataModule` with an empty cache folder and times one pass over
the shuffled training loader including `prepare_data` (cold: every video is decoded, resized and
cached), then times a pass with a fresh DataModule on the filled cache (warm: memory-mapped
slicing and float conversion only). Results go to docs/results.md by hand.
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

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from vad.data.ped import Ped2DataModule  # noqa: E402

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"


def one_pass(dm: Ped2DataModule) -> tuple[int, float]:
    """Clips seen and seconds taken by one pass over the training loader."""
    start = time.perf_counter()
    clips = 0
    for batch in dm.train_dataloader():
        clips += batch.clip.shape[0]
    return clips, time.perf_counter() - start


def bench(root: Path, args: argparse.Namespace, num_workers: int) -> dict:
    options = dict(root=str(root), clip={"length": args.length, "target": "all"},
                   image_size=tuple(args.image_size), grayscale=True,
                   batch_size=args.batch_size, num_workers=num_workers)
    with tempfile.TemporaryDirectory(prefix="vad-bench-") as cache:
        cold = Ped2DataModule(cache_dir=cache, **options)
        start = time.perf_counter()
        cold.prepare_data()  # decode + resize + write the cache
        cold.setup("fit")
        decode_s = time.perf_counter() - start
        clips, pass_s = one_pass(cold)
        frames = sum(r.num_frames for split in ("train", "test") for r in cold.records(split))

        warm = Ped2DataModule(cache_dir=cache, **options)
        start = time.perf_counter()
        warm.prepare_data()  # finds every video cached
        warm.setup("fit")
        open_s = time.perf_counter() - start
        warm_clips, warm_s = one_pass(warm)
    return {
        "source": root.name, "layout": cold.found.layout, "workers": num_workers,
        "frames": frames, "decode_s": decode_s, "decode_fps": frames / decode_s,
        "clips": clips, "cold_clips_s": clips / (decode_s + pass_s),
        "open_s": open_s, "warm_clips_s": warm_clips / (open_s + warm_s),
        "warm_pass_clips_s": warm_clips / warm_s,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--roots", nargs="+", type=Path,
                        default=[SHARED / "ped2", SHARED / "ped2-mp4"])
    parser.add_argument("--length", type=int, default=10, help="clip length T")
    parser.add_argument("--image-size", type=int, nargs=2, default=[256, 256])
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--num-workers", type=int, nargs="+", default=[0, 2])
    parser.add_argument("--threads", type=int, default=1, help="torch threads in the main process")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    command = "python " + " ".join(shlex.quote(a) for a in sys.argv)
    print(f"command: {command}")
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
          f"torch {torch.__version__}, {torch.get_num_threads()} torch thread(s)")
    print(f"clips: T={args.length} (target all), {args.image_size[0]}x{args.image_size[1]} grey, "
          f"batch {args.batch_size}, shuffled train loader, one pass")
    header = ("source", "layout", "workers", "frames", "decode s", "decode fps", "train clips",
              "cold clips/s", "warm clips/s", "warm pass clips/s")
    print("| " + " | ".join(header) + " |")
    print("|" + " --- |" * len(header))
    for root in args.roots:
        for workers in args.num_workers:
            r = bench(root, args, workers)
            print(f"| {r['source']} | {r['layout']} | {r['workers']} | {r['frames']} | "
                  f"{r['decode_s']:.1f} | {r['decode_fps']:.0f} | {r['clips']} | "
                  f"{r['cold_clips_s']:.0f} | {r['warm_clips_s']:.0f} | "
                  f"{r['warm_pass_clips_s']:.0f} |", flush=True)


if __name__ == "__main__":
    main()
