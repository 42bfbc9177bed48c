"""Why latentpred's Z-MSE ranks below frame differencing (issue 25): Eq. 2 taken apart.

For a checkpoint, every test frame is encoded once (eval mode, as `StreamingScorer` does) and
each scored frame t (the target of a test clip T_1..T_k, T_t; t − k = ``clip.future_offset``)
gets these frame scores, each then put through the shared evaluation (per-video min–max,
`vad.evaluation.metrics.frame_metrics`) to an ``auc_micro`` / ``auc_macro``:

* ``z_mse``: Eq. 2, mean over the code's channels and positions of (ẑ_t − z_t)²; its
  ``auc_micro`` must equal the checkpoint's test run (the check that the frames are the same);
* ``copy``: the same with ẑ_t replaced by z_k, the last input code (no motion model: how far the
  code moves in t − k frames, the latent analogue of frame differencing);
* ``pixel_copy``: the mean squared pixel difference between T_t and T_k (what ``copy`` is for
  codes, on the frames the encoder reads), and ``pixel_diff1``: between T_t and T_{t−1}
  (`model=framediff` at this resolution and on these frames: the no-learning reference);
* ``code_norm``: the mean of z_t² (how far the code is from the BatchNorm mean of training codes:
  an appearance-only score);
* ``z_mse_posmax``: Eq. 2's channel mean at each of the h × w positions, the maximum over
  positions (a local anomaly diluted by the mean over the whole frame);
* per channel: the AUC of channel c's share of Eq. 2 alone, summarised by its min / median /
  max and the number of channels below 0.5.

    python scripts/latentpred_zmse_parts.py <run>/checkpoints/last.ckpt --root ../shared/data/ped2
"""

from __future__ import annotations

import argparse
import json

import numpy as np
import torch

from vad.checkpoint import load_model, recipe_datamodule
from vad.data.cache import load_frames
from vad.evaluation.metrics import frame_metrics
from vad.evaluation.scores import normalize


def metrics(scores: list[np.ndarray], labels: list[np.ndarray]) -> dict[str, float]:
    """auc_micro / auc_macro of per-video raw scores under per-video min–max."""
    result = frame_metrics([normalize(s, "minmax") for s in scores], scores, labels)
    return {key: round(float(result[key]), 4) for key in ("auc_micro", "auc_micro_raw", "auc_macro")}


@torch.no_grad()
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("ckpt")
    parser.add_argument("--root", default=None, help="data.root, if not the recipe's")
    args = parser.parse_args()
    torch.set_num_threads(1)
    module, recipe = load_model(args.ckpt)
    datamodule = recipe_datamodule(recipe, args.root)
    low, high = datamodule.value_range
    k, offset = module.net.num_inputs, module.clip_spec.future_offset
    kinds = ("z_mse", "copy", "pixel_copy", "pixel_diff1", "code_norm", "z_mse_posmax")
    scores = {kind: [] for kind in kinds}
    per_channel, labels = [], []
    for record in datamodule.records("test"):
        frames = np.array(load_frames(record, datamodule.cache_dir, datamodule.image_size,
                                        datamodule.grayscale))
        x = torch.from_numpy(frames).permute(0, 3, 1, 2).float() * (high - low) / 255 + low
        z = torch.cat([module.net.encode(chunk)[0] for chunk in x.split(64)])  # (N, C, h, w)
        targets = torch.arange(k + offset - 1, len(z))  # frame t of each test clip
        inputs = targets[:, None] - offset - torch.arange(k - 1, -1, -1)  # T_1..T_k
        clips = z[inputs].transpose(1, 2)  # (T, C, k, h, w)
        z_hat = torch.cat([module.net.predict(chunk) for chunk in clips.split(64)])
        z_t = z[targets]
        error = (z_hat - z_t).pow(2)  # (T, C, h, w)
        scores["z_mse"].append(error.flatten(1).mean(1).numpy())
        scores["copy"].append((z[inputs[:, -1]] - z_t).pow(2).flatten(1).mean(1).numpy())
        pixels = x.flatten(1)
        scores["pixel_copy"].append((pixels[inputs[:, -1]] - pixels[targets]).pow(2).mean(1).numpy())
        scores["pixel_diff1"].append((pixels[targets - 1] - pixels[targets]).pow(2).mean(1).numpy())
        scores["code_norm"].append(z_t.pow(2).flatten(1).mean(1).numpy())
        scores["z_mse_posmax"].append(error.mean(1).flatten(1).amax(1).numpy())
        per_channel.append(error.flatten(2).mean(2).numpy())  # (T, C)
        labels.append(np.asarray(record.labels)[targets.numpy()])
    out = {kind: metrics(scores[kind], labels) for kind in kinds}
    channel_aucs = np.array([metrics([v[:, c] for v in per_channel], labels)["auc_micro"]
                             for c in range(per_channel[0].shape[1])])
    out["per_channel_auc_micro"] = {
        "min": round(float(channel_aucs.min()), 4), "median": round(float(np.median(channel_aucs)), 4),
        "max": round(float(channel_aucs.max()), 4), "below_0.5": int((channel_aucs < 0.5).sum()),
        "channels": len(channel_aucs)}
    out["frames"] = int(sum(len(y) for y in labels))
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
