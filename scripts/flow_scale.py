"""How the flow scale ``data.flow.bound`` sets the size of paper 004's temporal loss L_t.

The flow network sees each TV-L1 component clipped to ±bound px and mapped to [0, 1] (zero motion
= 0.5, `vad.data.flow.quantise`); the spatial network sees grey frames in [0, 1]. Eq. 2–3 compare
their per-sample MAEs, so the bound decides how much the teacher can say. For the first
``--frames`` frames of every training video (cached frames, as training sees them) this prints,
per bound, the MAE of the zero-motion reconstruction (every flow value that of zero motion, 128/255: the flow stream's
"untrained" loss), the share of clipped components and of moving pixels (|u| or |v| > 0.1 px);
and beside it the frames' MAE of the mean-frame reconstruction (the spatial stream's
untrained loss), both per pixel over the same frames.

    python scripts/flow_scale.py --root ../shared/data/ped2 --size 64 --frames 24
"""

from __future__ import annotations

import argparse
import tempfile

import cv2
import numpy as np

from vad.data.cache import load_frames
from vad.data.flow import FlowConfig, quantise
from vad.data.ped import Ped2DataModule

BOUNDS = (0.25, 0.5, 1.0, 1.5, 2.0, 4.0, 8.0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", default="../shared/data/ped2")
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--frames", type=int, default=24)
    args = parser.parse_args()
    cv2.setNumThreads(1)
    size = (args.size, args.size)
    dm = Ped2DataModule(root=args.root, clip={"length": 16, "target": "all"}, image_size=size)
    tvl1 = cv2.optflow.DualTVL1OpticalFlow_create(**FlowConfig().tvl1)  # OpenCV's defaults
    flows, frames = [], []
    with tempfile.TemporaryDirectory() as cache:
        for record in dm.records("train"):
            video = np.asarray(load_frames(record, cache, size, True))[: args.frames + 1, ..., 0]
            flows += [tvl1.calc(a, b, None) for a, b in zip(video[:-1], video[1:])]
            frames.append(video[1:].astype(np.float32) / 255.0)
    flow = np.stack(flows)  # (N, H, W, 2) px
    frames = np.concatenate(frames)
    background = frames.mean(axis=0)
    print(f"{len(flow)} flows of {len(frames) // args.frames} videos at {args.size}x{args.size}; "
          f"|u|,|v| px: mean {np.abs(flow).mean():.3f}, 99th pct {np.percentile(np.abs(flow), 99):.2f}"
          f", max {np.abs(flow).max():.2f}; moving pixels (|u| or |v| > 0.1 px) "
          f"{(np.abs(flow) > 0.1).any(-1).mean():.3f}")
    print(f"frames: MAE of the mean-frame reconstruction {np.abs(frames - background).mean():.4f}")
    print("bound px | zero-motion flow MAE | clipped components")
    for bound in BOUNDS:
        q = quantise(flow, bound).astype(np.float32) / 255.0
        still = float(quantise(np.zeros(1), bound)[0]) / 255.0  # 128/255
        print(f"{bound:8.2f} | {np.abs(q - still).mean():.4f} | {(np.abs(flow) > bound).mean():.5f}")


if __name__ == "__main__":
    main()
