"""One-off diagnostics of STD-AE's Eq. (13) on a trained checkpoint (issue 24; ours).

One pass over the test set gives, per scored frame, every reading of Eq. (13)'s error term
(``model.score.error``: l1_sum, squared_mean, euclidean, none = mean D_u alone), with and without
D_u and with and without the reciprocal, scored by the shared evaluation (`score_videos`, the
recipe's ``eval`` settings); the correlation of mean D_u with the foreground area on normal
test frames (foreground: |LIF − the video's per-pixel median| > 0.1 in [0, 1] grey; ours), and
that area scored as if it were the anomaly score (``foreground_area|direct``: a crowd counter).

    python scripts/stdae_diagnostics.py <run>/checkpoints/last.ckpt [model.*=...] [out.json]

Rows agree with ``python -m vad.evaluate ckpt_path=... model=stdae model.score.error=...``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import torch
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf, open_dict
from scipy.stats import pearsonr, spearmanr

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's vad

import vad  # noqa: E402, F401  (resolvers)
from vad.checkpoint import read_checkpoint, recipe_of  # noqa: E402
from vad.evaluation.evaluator import score_videos  # noqa: E402
from vad.evaluation.scores import aggregate_window_scores  # noqa: E402
from vad.models.stdae import frame_error  # noqa: E402
from vad.train import CONFIG_DIR, build  # noqa: E402

FOREGROUND_THRESHOLD = 0.1


def main(ckpt: str, *overrides: str) -> None:
    out_json = next((o for o in overrides if o.endswith(".json")), None)
    given = [o for o in overrides if o != out_json]
    with initialize_config_dir(str(Path(CONFIG_DIR).resolve()), version_base="1.3"):
        cfg = compose("eval", overrides=[f"ckpt_path={ckpt}", "~logger", "eval.plots=false",
                                         "model=stdae", *given], return_hydra_config=False)
    checkpoint = read_checkpoint(Path(ckpt))
    trained = recipe_of(checkpoint, Path(ckpt)).config
    dotlist = OmegaConf.from_dotlist([o for o in given if o.startswith(("eval.", "model.", "data."))])
    with open_dict(cfg):
        for section in ("model", "data", "eval"):
            cfg[section] = OmegaConf.merge(trained[section], dotlist.get(section, {}))
        cfg.paths.output_dir = str(Path(ckpt).parent.parent / "diagnostics")
    datamodule, model, _, _ = build(cfg)
    model.load_state_dict(checkpoint["state_dict"])
    model.eval()
    datamodule.setup("test")
    rows, lifs = [], {}
    with torch.no_grad():
        for batch in datamodule.test_dataloader():
            batch = datamodule.transfer(batch, "cpu")
            out = model.net(batch.clip)
            error = model.prediction_error(batch.clip, out)
            distance = model.distance_map(out, tuple(error.shape[-2:]))
            stats = {f"{kind}{'' if d is None else '+D'}": frame_error(error, d, kind)
                     for kind in ("l1_sum", "squared_mean", "euclidean")
                     for d in (None, distance)}
            stats["none+D"] = (frame_error(error, distance, "none") if distance is not None
                               else torch.ones(len(error)))
            columns = [batch.video.double(), batch.frames[:, 0].double(),
                       *(v.double() for v in stats.values())]
            rows.append(torch.stack(columns, 1))
            for v, f, lif in zip(batch.video.tolist(), batch.frames[:, 0].tolist(),
                                 batch.clip[:, 0, -1]):
                lifs[(v, f)] = lif.numpy()
    keys = list(stats)
    rows = torch.cat(rows).numpy()
    records = datamodule.test_records
    video, frame = rows[:, 0].astype(int), rows[:, 1].astype(int)
    lengths = [r.num_frames for r in records]
    names, labels = [r.name for r in records], [r.labels for r in records]

    def evaluate(score: np.ndarray) -> dict[str, float]:
        raw = aggregate_window_scores(video, frame, score, lengths, cfg.eval.window_aggregation)
        metrics, _, _ = score_videos(names, raw, labels, cfg.eval.normalization,
                                     cfg.eval.smoothing_sigma)
        return {k: round(float(metrics[k]), 4)
                for k in ("auc_micro", "auc_micro_raw", "auc_macro", "eer")}

    results = {}
    for i, key in enumerate(keys):
        value = rows[:, 2 + i]
        for reciprocal in (True, False):
            score = -1.0 / (value + model.score_eps) if reciprocal else value
            results[f"{key}|{'recip' if reciprocal else 'direct'}"] = evaluate(score)
    # Foreground area (per-video median background) against mean D_u on normal frames.
    area = np.zeros(len(rows))
    for v in np.unique(video):
        sel = np.flatnonzero(video == v)
        frames = np.stack([lifs[(v, f)] for f in frame[sel]])
        background = np.median(frames, axis=0)
        area[sel] = (np.abs(frames - background) > FOREGROUND_THRESHOLD).mean((1, 2))
    # The foreground area itself as the anomaly score: what a crowd counter would reach.
    results["foreground_area|direct"] = evaluate(area)
    normal = np.array([not labels[v][f] for v, f in zip(video, frame)])
    d_mean = rows[:, 2 + keys.index("none+D")]
    l1_plain = rows[:, 2 + keys.index("l1_sum")]
    results["foreground"] = {
        "normal_frames": int(normal.sum()),
        "pearson_meanDu_area": round(float(pearsonr(d_mean[normal], area[normal])[0]), 4),
        "spearman_meanDu_area": round(float(spearmanr(d_mean[normal], area[normal])[0]), 4),
        "pearson_l1error_area": round(float(pearsonr(l1_plain[normal], area[normal])[0]), 4),
        "spearman_l1error_area": round(float(spearmanr(l1_plain[normal], area[normal])[0]), 4),
        "mean_area_normal": round(float(area[normal].mean()), 4),
        "mean_area_anomalous": round(float(area[~normal].mean()), 4),
    }
    text = json.dumps(results, indent=1)
    print(text)
    if out_json:
        Path(out_json).write_text(text)


if __name__ == "__main__":
    main(*sys.argv[1:])
