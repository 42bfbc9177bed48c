"""Does a DESDnet checkpoint predict I_t better than copying I_(t-1)? (issue 23, hypothesis 6)

Frame differencing (`model=framediff`, k = 1) scores a frame by the error of the prediction
"nothing moved": Î_t = I_(t-1). A DESDnet that has learned normal motion should reconstruct the
test frames of normal scenes with a *lower* error than that copy; one whose error is at the
copy's level ranks frames like frame differencing at best. For the test clips of the first
``--videos`` videos (every ``--step``-th clip, eval mode, raw inputs as at test time) this prints,
per video and overall:

* ``model``: the mean squared error of Î_t (the whole-frame score's raw value);
* ``copy``: the mean squared error of I_(t-1) against I_t;
* ``ratio``: model / copy (below 1: better than copying the last frame);
* ``static``: the share of the model's squared error on pixels that did not change between
  I_(t-1) and I_t (|I_t - I_(t-1)| below ``--still`` of the value range): error on the
  background, which no motion explains.

The frames go through the recipe's preprocessing (size, grey, value range).

    python scripts/desdnet_copy_baseline.py <run>/checkpoints/last.ckpt --root ../shared/data/ped2
"""

from __future__ import annotations

import argparse
import json

import numpy as np
import torch

from vad.checkpoint import load_model, recipe_datamodule
from vad.data.cache import load_frames


@torch.no_grad()
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("ckpt")
    parser.add_argument("--root", default=None, help="data.root, if not the recipe's")
    parser.add_argument("--videos", type=int, default=12, help="test videos, in order")
    parser.add_argument("--step", type=int, default=4, help="every step-th clip of a video")
    parser.add_argument("--still", type=float, default=0.04,
                        help="|I_t - I_(t-1)| below this share of the value range: a still pixel")
    args = parser.parse_args()
    torch.set_num_threads(1)
    module, recipe = load_model(args.ckpt)
    datamodule = recipe_datamodule(recipe, args.root)
    low, high = datamodule.value_range
    length = module.net.num_past + 1
    totals, out = {"model": [], "copy": [], "static": []}, {}
    for record in datamodule.records("test")[: args.videos]:
        frames = np.asarray(load_frames(record, datamodule.cache_dir, datamodule.image_size,
                                        datamodule.grayscale))
        video = torch.from_numpy(frames).permute(0, 3, 1, 2).float() * (high - low) / 255 + low
        starts = range(0, len(video) - length + 1, args.step)
        clips = torch.stack([video[s:s + length] for s in starts]).transpose(1, 2)  # B C T H W
        target, last = clips[:, :, -1], clips[:, :, -2]
        error = torch.cat([(module.net(chunk) - chunk[:, :, -1]) ** 2 for chunk in clips.split(32)])
        still = ((target - last).abs() < args.still * (high - low)).float()
        row = {"model": error.mean().item(), "copy": ((target - last) ** 2).mean().item(),
               "static": ((error * still).sum() / error.sum()).item()}
        out[record.name] = {**row, "ratio": row["model"] / row["copy"], "clips": len(clips)}
        for key in totals:
            totals[key].append(row[key])
    model, copy = float(np.mean(totals["model"])), float(np.mean(totals["copy"]))
    out["all"] = {"model": model, "copy": copy, "ratio": model / copy,
                  "static": float(np.mean(totals["static"])), "videos": len(totals["model"])}
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
