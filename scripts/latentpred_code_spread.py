"""How much latentpred's code z changes over time (issue 25, item 2: is the appearance in z?).

For a checkpoint, each frame of the first ``--videos`` videos of a split is encoded on its own
(eval mode, as at test time) and, per code channel c, three spreads are measured:

* ``time``: the standard deviation of z[t, c, y, x] over the frames t at a fixed position
  (y, x), averaged over positions: how much the code moves when people move;
* ``total``: the standard deviation of z[:, c] over frames and positions together (about 1 for
  BatchNorm-normalised codes on training frames);
* ``frac = time / total``: near 0 means the channel is a static map of the scene (it encodes the
  background, not what moves), near 1 that it varies over time as much as over space.

Printed per split: the mean over channels of each, the median ``frac`` and the number of
channels whose ``frac`` is below 0.1 ("static"). The frames go through the recipe's
preprocessing (size, grey, value range); the background frame comes with the checkpoint.

    python scripts/latentpred_code_spread.py <run>/checkpoints/epoch_001.ckpt --root ../shared/data/ped2
"""

from __future__ import annotations

import argparse
import json

import numpy as np
import torch

from vad.checkpoint import load_model, recipe_datamodule
from vad.data.cache import load_frames


def spread(z: torch.Tensor) -> dict[str, np.ndarray]:
    """Codes ``(N, C, h, w)`` of N consecutive frames → per-channel ``time``, ``total``."""
    time = z.std(0).flatten(1).mean(1)
    total = z.transpose(0, 1).flatten(1).std(1)
    return {"time": time.numpy(), "total": total.numpy()}


@torch.no_grad()
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("ckpt")
    parser.add_argument("--root", default=None, help="data.root, if not the recipe's")
    parser.add_argument("--videos", type=int, default=4, help="videos per split")
    args = parser.parse_args()
    torch.set_num_threads(1)
    module, recipe = load_model(args.ckpt)
    datamodule = recipe_datamodule(recipe, args.root)
    low, high = datamodule.value_range
    out = {"phase": int(module.phase)}
    for split in ("train", "test"):
        rows = []
        for record in datamodule.records(split)[: args.videos]:
            frames = np.asarray(load_frames(record, datamodule.cache_dir, datamodule.image_size,
                                            datamodule.grayscale))
            x = torch.from_numpy(frames).permute(0, 3, 1, 2).float() * (high - low) / 255 + low
            z = torch.cat([module.net.encode(chunk)[0] for chunk in x.split(64)])
            rows.append(spread(z))
        time = np.mean([r["time"] for r in rows], 0)
        total = np.mean([r["total"] for r in rows], 0)
        frac = time / np.maximum(total, 1e-12)
        out[split] = {"time_mean": float(time.mean()), "total_mean": float(total.mean()),
                      "frac_mean": float(frac.mean()), "frac_median": float(np.median(frac)),
                      "static_channels": int((frac < 0.1).sum()), "channels": len(frac),
                      "videos": len(rows)}
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
