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

With ``--train-motion E``, before scoring, the checkpoint's motion model (its weights as
saved) goes on training for E epochs on the codes of the training frames with the encoder
*frozen* as saved (eval mode): Eq. 1's latent term (``loss.reduction=sum``) plus γ‖W‖² of the
motion model, Adam at ``--lr`` (default: the recipe's), batches of ``--batch`` random clips, one
epoch = every training clip once. From a phase-1 checkpoint this is phase 2 without the
encoder moving (issue 25: does the encoder's drift in phase 2 cost Z-MSE?). Our proxy, not the
module's training loop: no held-out end, no reconstruction term (the decoder is not scored).

    python scripts/latentpred_zmse_parts.py <run>/checkpoints/last.ckpt --root ../shared/data/ped2
    python scripts/latentpred_zmse_parts.py <run>/checkpoints/epoch_001.ckpt --root ../shared/data/ped2 --train-motion 3
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
from vad.models.latentpred import l2_penalty


def metrics(scores: list[np.ndarray], labels: list[np.ndarray]) -> dict[str, float]:
    """auc_micro / auc_macro of per-video raw scores under per-video min–max."""
    result = frame_metrics([normalize(s, "minmax") for s in scores], scores, labels)
    return {key: round(float(result[key]), 4) for key in ("auc_micro", "auc_micro_raw", "auc_macro")}


@torch.no_grad()
def encode_video(module, datamodule, record) -> tuple[torch.Tensor, torch.Tensor]:
    """One video's frames as the model reads them ``(N, C, H, W)`` and their codes."""
    low, high = datamodule.value_range
    frames = np.array(load_frames(record, datamodule.cache_dir, datamodule.image_size,
                                  datamodule.grayscale))
    x = torch.from_numpy(frames).permute(0, 3, 1, 2).float() * (high - low) / 255 + low
    return x, torch.cat([module.net.encode(chunk)[0] for chunk in x.split(64)])


def clip_frames(num_frames: int, k: int, offset: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Every clip of a video: its target frames t ``(T,)`` and input frames T_1..T_k ``(T, k)``."""
    targets = torch.arange(k + offset - 1, num_frames)
    return targets, targets[:, None] - offset - torch.arange(k - 1, -1, -1)


def train_motion(module, codes: list[torch.Tensor], epochs: int, lr: float, batch: int,
                 seed: int) -> dict:
    """Eq. 1's latent term + γ‖W‖² on the motion model alone, the codes fixed (docstring)."""
    k, offset = module.net.num_inputs, module.clip_spec.future_offset
    windows = [(v, t, i) for v, z in enumerate(codes) for t, i in zip(*clip_frames(len(z), k, offset))]
    motion = module.net.motion.train()
    optimizer = torch.optim.Adam(motion.parameters(), lr=lr)
    generator = torch.Generator().manual_seed(seed)
    losses = []
    for _ in range(epochs):
        order = torch.randperm(len(windows), generator=generator)
        for start in range(0, len(order) - batch + 1, batch):
            picked = [windows[j] for j in order[start:start + batch]]
            inputs = torch.stack([codes[v][i] for v, _, i in picked]).transpose(1, 2)
            target = torch.stack([codes[v][t] for v, t, _ in picked])
            latent = (motion(inputs) - target).pow(2).sum() / batch
            loss = latent + module.loss_cfg.gamma * l2_penalty(motion)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            losses.append(float(latent))
    motion.eval()
    return {"epochs": epochs, "steps": len(losses), "lr": lr, "batch": batch,
            "latent_first_100": round(float(np.mean(losses[:100])), 2),
            "latent_last_100": round(float(np.mean(losses[-100:])), 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("ckpt")
    parser.add_argument("--root", default=None, help="data.root, if not the recipe's")
    parser.add_argument("--train-motion", type=int, default=0, metavar="EPOCHS",
                        help="first train the motion model on the frozen encoder's codes")
    parser.add_argument("--lr", type=float, default=None, help="--train-motion's Adam lr")
    parser.add_argument("--batch", type=int, default=8, help="--train-motion's batch size")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(1)
    module, recipe = load_model(args.ckpt)
    datamodule = recipe_datamodule(recipe, args.root)
    k, offset = module.net.num_inputs, module.clip_spec.future_offset
    out = {}
    if args.train_motion:
        codes = [encode_video(module, datamodule, r)[1] for r in datamodule.records("train")]
        lr = args.lr if args.lr is not None else float(recipe.config.model.optimizer.lr)
        out["train_motion"] = train_motion(module, codes, args.train_motion, lr, args.batch,
                                           args.seed)
    kinds = ("z_mse", "copy", "pixel_copy", "pixel_diff1", "code_norm", "z_mse_posmax")
    scores = {kind: [] for kind in kinds}
    per_channel, labels = [], []
    for record in datamodule.records("test"):
        x, z = encode_video(module, datamodule, record)
        targets, inputs = clip_frames(len(z), k, offset)
        clips = z[inputs].transpose(1, 2)  # (T, C, k, h, w)
        with torch.no_grad():
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
    out.update({kind: metrics(scores[kind], labels) for kind in kinds})
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
