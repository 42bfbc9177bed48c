"""The robustness suite (paper 003, §5): ``python -m vad.evaluate ckpt_path=… robustness=default``.

The checkpoint is tested once on clean frames (the plain evaluation, its files in the run dir as
usual) and once per (distortion, level) of the preset (``conf/robustness/``), each time through
the same shared path: the data module distorts the test frames (`vad.data.distortions`,
`VideoDataModule.set_test_distortion`), the trainer tests, the `FrameEvaluator` scores. Each
condition's ``metrics.json`` and ``scores.csv`` go to ``<run>/robustness/<kind>_<level>/``; the
table of every condition to ``<run>/robustness.csv`` and ``robustness.md``, and AUC against the
level, one panel per distortion, to ``<run>/robustness.png``.

Subsampling keeps every d-th frame of each test video: clips are formed from the kept frames
(a camera at 1/d of the frame rate), only kept frames are scored, and their own labels are
evaluated, so its rows count fewer frames.
"""

from __future__ import annotations

import csv
import logging
import math
from collections.abc import Mapping, Sequence
from pathlib import Path

from vad.data.distortions import KINDS, Distortion

log = logging.getLogger(__name__)

COLUMNS = ("distortion", "level", "auc_micro", "auc_micro_raw", "auc_macro", "eer",
           "num_frames", "num_anomalous_frames")
CLEAN = "none"


def conditions(levels: Mapping[str, Sequence[float]], seed: int = 0) -> list[Distortion]:
    """Every (distortion, level) of a preset's ``levels``, in the preset's order."""
    return [Distortion(kind, float(level), seed) for kind, values in levels.items()
            for level in values]


def table_row(distortion: str, level: float | None, metrics: Mapping) -> dict:
    return {"distortion": distortion, "level": level,
            **{key: metrics[key] for key in COLUMNS[2:]}}


def run_suite(datamodule, model, trainer, evaluator, ckpt_path: str, preset: Mapping,
              output_dir: Path) -> list[dict]:
    """Test ``ckpt_path`` clean and under each condition of ``preset``; write the table and the
    plot to ``output_dir``; return the rows (the clean one first)."""
    datamodule.set_test_distortion(None)
    trainer.test(model=model, datamodule=datamodule, ckpt_path=ckpt_path, verbose=False)
    rows = [table_row(CLEAN, None, evaluator.metrics)]
    # Per condition: metrics and scores in a folder of their own; per-video plots only once.
    evaluator.plots = False
    for distortion in conditions(preset["levels"], preset.get("seed", 0)):
        evaluator.output_dir = output_dir / "robustness" / distortion.name
        datamodule.set_test_distortion(distortion)
        trainer.test(model=model, datamodule=datamodule, ckpt_path=ckpt_path, verbose=False)
        rows.append(table_row(distortion.kind, distortion.level, evaluator.metrics))
        log.info("%-16s auc_micro %.4f", distortion.name, rows[-1]["auc_micro"])
    datamodule.set_test_distortion(None)
    evaluator.output_dir = output_dir
    write_table(output_dir / "robustness.csv", rows)
    (output_dir / "robustness.md").write_text(markdown_table(rows))
    plot_suite(output_dir / "robustness.png", rows)
    return rows


def write_table(path: Path, rows: Sequence[Mapping]) -> None:
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=COLUMNS)
        writer.writeheader()
        for row in rows:
            writer.writerow({k: "" if row[k] is None else row[k] for k in COLUMNS})


def markdown_table(rows: Sequence[Mapping]) -> str:
    """The rows as a markdown table (AUCs and EER in %)."""
    lines = ["| distortion | level | AUC micro % | AUC micro raw % | AUC macro % | EER % | "
             "frames | anomalous |", "|" + " --- |" * 8]
    for row in rows:
        level = "" if row["level"] is None else f"{row['level']:g}"
        percent = [f"{100 * row[k]:.1f}" if not math.isnan(row[k]) else "n/a"
                   for k in ("auc_micro", "auc_micro_raw", "auc_macro", "eer")]
        lines.append(f"| {row['distortion']} | {level} | {' | '.join(percent)} | "
                     f"{row['num_frames']} | {row['num_anomalous_frames']} |")
    return "\n".join(lines) + "\n"


def plot_suite(path: Path, rows: Sequence[Mapping]) -> None:
    """AUC (micro, after per-video min–max) against the level, one panel per distortion; the
    clean AUC is drawn at each distortion's identity level and as a dotted line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    clean = rows[0]["auc_micro"]
    kinds = list(dict.fromkeys(r["distortion"] for r in rows[1:]))
    fig, axes = plt.subplots(1, max(len(kinds), 1), figsize=(3.2 * max(len(kinds), 1), 3),
                             sharey=True, squeeze=False)
    for ax, kind in zip(axes[0], kinds):
        points = {r["level"]: r["auc_micro"] for r in rows if r["distortion"] == kind}
        points.setdefault(float(KINDS[kind][1]), clean)
        levels = sorted(points)
        ax.plot(levels, [points[x] for x in levels], marker="o")
        ax.axhline(clean, color="grey", ls=":", lw=1)
        ax.set(title=kind, xlabel="level")
    axes[0][0].set_ylabel("frame AUC (micro)")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
