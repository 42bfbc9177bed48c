"""What Eq. 2–4 put on the spatial gradient at the end of a Top-Heavy distill or joint run.

Training logs these factors (``train/<mode>_factor_mean|std``, `vad.models.topheavy`) only when
a logger is on; this reads them back from a checkpoint. One pass over the run's clips (``--split
train``: the training clips without flips; ``val``: the held-out ones that ``val/loss`` is
computed on), both networks in eval mode, gives each clip's spatial loss L_s (frames) and
temporal loss L_t (flow), Eq. 1, and from them the per-clip factor on ∂L_s that training logs:
distill 1 + 2(L_s,i − L_t,i) (`distillation_factors`), joint 1 + L_t,i (`joint_factors`: Eq. 4
on batch means applies their batch mean, one factor per step). Printed as one JSON line per
checkpoint: the means of L_s, L_t and the factor over the clips, and the factor's spread within
a batch (mean over batches of its std): for distill the only part of the factor that Adam's
per-parameter normalisation does not cancel, for joint what a per-sample reading would add.

    python scripts/topheavy_factors.py outputs/topheavy/joint_b05_s*/checkpoints/last.ckpt --root ../shared/data/ped2
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from vad.checkpoint import load_model, recipe_datamodule
from vad.data.datamodule import float_clips
from vad.models.topheavy import distillation_factors, joint_factors, reconstruction_loss


@torch.no_grad()
def factors_of(ckpt: Path, root: str | None, split: str, max_batches: int | None = None) -> dict:
    module, recipe = load_model(ckpt)
    if module.temporal is None:
        raise SystemExit(f"{ckpt}: a model.training=plain run has no flow stream, so no factors")
    datamodule = recipe_datamodule(recipe, root)
    datamodule.prepare_data()
    datamodule.setup("fit")
    loader = datamodule.train_dataloader() if split == "train" else datamodule.val_dataloader()
    l_s, l_t, factors, spreads = [], [], [], []
    for step, batch in enumerate(loader):
        if step == max_batches:
            break
        batch = float_clips(batch, datamodule.value_range)
        spatial = reconstruction_loss(batch.clip, module.net(batch.clip))
        temporal = reconstruction_loss(batch.flow, module.temporal(batch.flow))
        factor = (distillation_factors(spatial, temporal) if module.training_mode == "distill"
                  else joint_factors(temporal))
        l_s.append(spatial)
        l_t.append(temporal)
        factors.append(factor)
        spreads.append(factor.std(correction=0).item())
    l_s, l_t, factors = (torch.cat(v).numpy() for v in (l_s, l_t, factors))
    return {"checkpoint": str(ckpt), "training": module.training_mode, "split": split,
            "clips": len(l_s), "l_s": float(l_s.mean()), "l_t": float(l_t.mean()),
            "factor_mean": float(factors.mean()), "factor_std_within_batch": float(np.mean(spreads)),
            "factor_min": float(factors.min()), "factor_max": float(factors.max())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoints", nargs="+", type=Path)
    parser.add_argument("--root", default=None, help="the data's root, if it moved since training")
    parser.add_argument("--split", choices=("train", "val"), default="train")
    parser.add_argument("--max-batches", type=int, default=None, help="stop after this many")
    args = parser.parse_args()
    torch.manual_seed(0)  # the training loader's shuffle: the same batches every time
    for ckpt in args.checkpoints:
        print(json.dumps(factors_of(ckpt, args.root, args.split, args.max_batches)), flush=True)


if __name__ == "__main__":
    main()
