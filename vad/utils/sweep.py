"""`SweepSummary`: the Hydra callback that reports a multirun (``conf/hydra/default.yaml``).

At the start of a sweep it warns when an optimising sweeper (Optuna) would tune on a ``test/``
metric. At the end it reads every job folder back with `vad.results.read_run` (the code that
writes docs/results.md's rows), writes ``summary.csv`` and ``summary.md`` into the sweep folder,
prints the table, and ends the command with exit status 1 if any job failed: each job's
failure is caught so that its siblings still run, and reported here once they all have.
"""

from __future__ import annotations

import dataclasses
import logging
import sys
from pathlib import Path

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from vad.results import RUN_INFO, ResultRow, markdown_table, read_run, write_summary_csv

log = logging.getLogger(__name__)

GRID_SWEEPERS = ("hydra._internal.core_plugins.basic_sweeper.BasicSweeper",)


def job_dirs(sweep_dir: Path) -> list[Path]:
    """The job folders of a sweep (each has Hydra's ``.hydra/``), in job-number order."""
    found = [p.parent.parent for p in Path(sweep_dir).glob("**/.hydra/overrides.yaml")]
    return sorted(found, key=lambda p: (not p.name.isdigit(), int(p.name) if p.name.isdigit()
                                        else 0, str(p)))


def summary_rows(sweep_dir: Path) -> list[ResultRow]:
    """One row per job; overrides shared by every job are dropped from the rows."""
    rows = []
    for job in job_dirs(sweep_dir):
        if (job / RUN_INFO).exists():
            rows.append(read_run(job))
        else:  # the job died before `task_wrapper` started (e.g. killed by the cluster)
            rows.append(ResultRow(job.name, "", "", "", "—", "failed", {},
                                  error=f"no {RUN_INFO}: the job never started its task"))
    common = set.intersection(*(set(r.overrides) for r in rows)) if len(rows) > 1 else set()
    return [dataclasses.replace(r, overrides=tuple(o for o in r.overrides if o not in common))
            for r in rows]


def write_summary(sweep_dir: Path, rows: list[ResultRow]) -> str:
    """``summary.csv`` and ``summary.md`` in ``sweep_dir``; returns the markdown table."""
    table = markdown_table(rows, summary=True)
    write_summary_csv(sweep_dir / "summary.csv", rows)
    (sweep_dir / "summary.md").write_text(f"# Sweep {sweep_dir.name}\n\n{table}\n")
    return table


class SweepSummary(Callback):
    """Summarises a multirun in its sweep folder and fails the command if a job failed."""

    def on_multirun_start(self, config: DictConfig, **kwargs) -> None:
        metric = config.get("optimized_metric")
        sweeper = config.hydra.sweeper.get("_target_", "")
        if metric and metric.startswith("test/") and sweeper not in GRID_SWEEPERS:
            log.warning("optimized_metric=%s: %s would choose hyper-parameters on test labels; "
                        "optimise a validation metric instead (optimized_metric=val/loss)",
                        metric, sweeper.rsplit(".", 1)[-1])

    def on_multirun_end(self, config: DictConfig, **kwargs) -> None:
        sweep_dir = Path(config.hydra.sweep.dir)
        rows = summary_rows(sweep_dir)
        table = write_summary(sweep_dir, rows)
        print(f"\nSweep summary ({sweep_dir}/summary.md):\n{table}", flush=True)
        failed = [row for row in rows if row.status not in ("ok", "no metrics")]
        if failed:
            log.error("%d of %d jobs failed: %s", len(failed), len(rows),
                      "; ".join(f"job {r.name}: {r.summary_status()}" for r in failed))
            # SystemExit, not an exception: Hydra turns a callback's exceptions into warnings.
            sys.exit(1)
