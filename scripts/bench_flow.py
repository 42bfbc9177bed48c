"""TV-L1 optical-flow speed on the CPU (paper 004's temporal stream; vad/data/flow.py).

Decodes the first training video of a dataset at the given size (grey) into a temporary cache,
then times `vad.data.flow.compute_flow` on its first ``--frames`` frame pairs, one video in one
thread (per-core speed; `build_flow_cache` runs ``FlowConfig.threads`` videos at once).

    python scripts/bench_flow.py --root ../shared/data/ped2 --size 128 --frames 40
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

import cv2
import numpy as np

from vad.data.cache import load_frames
from vad.data.flow import FlowConfig, compute_flow
from vad.data.ped import Ped2DataModule


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", default="../shared/data/ped2")
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--frames", type=int, default=40)
    parser.add_argument("--method", default="tvl1")
    args = parser.parse_args()
    cv2.setNumThreads(1)
    dm = Ped2DataModule(root=args.root, clip={"length": 16, "target": "all"},
                        image_size=(args.size, args.size))
    record = dm.records("train")[0]
    with tempfile.TemporaryDirectory() as cache:
        frames = np.asarray(load_frames(record, cache, (args.size, args.size), True))
    frames = frames[: args.frames + 1]
    cfg = FlowConfig(method=args.method)
    start = time.perf_counter()
    compute_flow(frames, cfg)
    seconds = time.perf_counter() - start
    print(f"{args.method} {args.size}x{args.size}: {len(frames) - 1} flows in {seconds:.1f} s = "
          f"{(len(frames) - 1) / seconds:.2f} frames/s (1 thread; load {os.getloadavg()[0]:.1f})")


if __name__ == "__main__":
    main()
