"""Run folders → result rows: ``python -m vad.results RUN_DIR... [--append docs/results.md]``.

Every ``vad.train``/``vad.evaluate`` run writes ``run.json`` beside its ``metrics.json``: the
command, the commit, the machine, the versions of the packages that shape a result
(`package_versions`), start and end, the wall time (summed over the commands of a
run resumed in the same folder) and a status. This module reads those two files back and writes
the rows of ``docs/results.md`` and of a sweep's ``summary.csv``/``summary.md``
(`vad.utils.sweep.SweepSummary`), so that no number is copied by hand: one implementation from
run folder to row.
"""

from __future__ import annotations

import argparse
import csv
import functools
import json
import os
import platform
import shlex
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

RUN_INFO = "run.json"
# Overrides that only say where or how a run was carried out, not what it computed.
BOOKKEEPING_PREFIXES = ("hydra.", "ckpt_path=", "test=", "paths.")


def git_commit(cwd: Path | None = None) -> str:
    """The checkout's short commit (``+dirty`` with uncommitted changes to tracked files);
    ``VAD_COMMIT`` wins (a copy of the tree without ``.git``, e.g. on a GPU machine)."""
    if os.environ.get("VAD_COMMIT"):
        return os.environ["VAD_COMMIT"]
    cwd = cwd or Path(__file__).resolve().parents[1]
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=cwd, check=True,
                                capture_output=True, text=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                               cwd=cwd, check=True, capture_output=True, text=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return commit + ("+dirty" if dirty else "")


def machine() -> str:
    """One line: the accelerator if any, CPU cores, torch version."""
    import torch

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    parts = []
    if torch.cuda.is_available():
        parts.append(f"{torch.cuda.device_count()}x {torch.cuda.get_device_name(0)}")
    parts.append(f"{cores}-core {platform.machine()} CPU")
    parts.append(f"torch {torch.__version__}")
    return ", ".join(parts)


# The packages whose versions can change a result (import name or distribution → the name
# shown); ``python`` and, with a GPU, ``cuda``/``cudnn`` are added.
RESULT_PACKAGES = {"torch": "torch", "lightning": "lightning", "hydra-core": "hydra-core",
                   "omegaconf": "omegaconf", "numpy": "numpy", "cv2": "opencv",
                   "torchmetrics": "torchmetrics", "decord": "decord", "scipy": "scipy",
                   "scikit-learn": "scikit-learn", "einops": "einops"}


def package_versions() -> dict[str, str]:
    """``{package: version}`` of Python and the packages that shape a result (`RESULT_PACKAGES`;
    missing ones are left out), plus CUDA and cuDNN when torch sees a GPU. Written into
    ``run.json`` and every checkpoint's recipe."""
    return dict(_package_versions())


@functools.lru_cache(maxsize=1)
def _package_versions() -> dict[str, str]:
    from importlib import metadata

    versions = {"python": platform.python_version()}
    for name, shown in RESULT_PACKAGES.items():
        try:
            if name == "cv2":  # one of several opencv-* distributions: ask the module
                import cv2

                versions[shown] = cv2.__version__
            else:
                versions[shown] = metadata.version(name)
        except (ImportError, metadata.PackageNotFoundError):
            continue
    import torch

    if torch.cuda.is_available():
        versions["cuda"] = str(torch.version.cuda)
        versions["cudnn"] = str(torch.backends.cudnn.version())
    return versions


def versions_line(versions: dict[str, str]) -> str:
    """The short form a result row shows: ``torch 2.13.0, lightning 2.6.6, numpy 2.3.1``."""
    return ", ".join(f"{name} {versions[name]}" for name in ("torch", "lightning", "numpy")
                     if name in versions)


@contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """A temporary path beside ``path`` (same suffix, so writers that go by it still work) to
    write to: renamed onto ``path`` when the block ends, removed if it raises. Readers see the
    whole file or none."""
    path = Path(path)
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp{path.suffix}")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_json_atomic(path: Path, data: dict) -> None:
    """Write ``data`` to ``path`` through a temporary file and a rename: never half-written."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(data, indent=2, default=str))


class RunRecord:
    """Writes ``run.json`` for one command: call `start`, then `finish` with the status.

    A command that resumes a run in the same folder (``ckpt_path=`` given) adds its wall time to
    the previous commands' (``wall_s``) and counts them (``commands``).
    """

    def __init__(self, output_dir: Path, overrides: list[str], task: str) -> None:
        self.path = Path(output_dir) / RUN_INFO
        self.overrides = list(overrides)
        self.task = task
        self.started = 0.0
        self.previous = {"wall_s": 0.0, "commands": 0}
        self.versions = package_versions()

    def start(self) -> None:
        self.started = time.time()
        resumed = any(o.startswith("ckpt_path=") for o in self.overrides)
        if resumed and self.path.exists():
            old = json.loads(self.path.read_text())
            self.previous = {"wall_s": old.get("wall_s", 0.0), "commands": old.get("commands", 1)}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._write("running")

    def finish(self, status: str) -> None:
        self._write(status)

    def _write(self, status: str) -> None:
        now = time.time()
        write_json_atomic(self.path, {
            "task": self.task,
            "command": f"python -m vad.{self.task} " + " ".join(map(shlex.quote,
                                                                     self.overrides)),
            "overrides": self.overrides,
            "commit": git_commit(),
            "machine": machine(),
            "versions": self.versions,
            "started": self._iso(self.started),
            "finished": self._iso(now) if status != "running" else None,
            "status": status,
            "wall_s": self.previous["wall_s"] + (now - self.started),
            "commands": self.previous["commands"] + 1,
        })

    @staticmethod
    def _iso(seconds: float) -> str:
        return time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(seconds))


@dataclass
class ResultRow:
    """One run, as docs/results.md (`cells`) or a sweep summary (`summary_cells`) shows it."""

    name: str
    command: str
    commit: str
    machine: str
    wall: str
    status: str
    metrics: dict
    overrides: tuple[str, ...] = ()   # what this run computed differently (bookkeeping dropped)
    error: str = ""                   # a failed run's error, first line
    wall_s: float = 0.0

    versions: str = ""                # `versions_line` of run.json's versions

    HEADER = ("run", "command", "commit", "machine", "wall time", "auc_micro", "auc_micro_raw",
              "auc_macro (videos)", "eer", "inference frames/s", "versions")
    SUMMARY_HEADER = ("job", "overrides", "status", "auc_micro", "auc_micro_raw",
                      "auc_macro (videos)", "eer", "wall time")
    METRIC_KEYS = ("auc_micro", "auc_micro_raw", "auc_macro", "eer")

    def _auc(self, key: str) -> str:
        value = self.metrics.get(key)
        return f"{value:.3f}" if isinstance(value, (int, float)) else "—"

    def _macro(self) -> str:
        macro = self._auc("auc_macro")
        if "macro_num_videos" in self.metrics:
            macro += f" ({int(self.metrics['macro_num_videos'])})"
        return macro

    def cells(self) -> list[str]:
        m = self.metrics
        fps = f"{m['inference_fps']:.1f}" if "inference_fps" in m else "—"
        versions = self.versions or "—"
        if self.status != "ok":
            return [self.name, f"`{self.command}`", self.commit, self.machine, self.wall,
                    f"**{self.status}**", "", "", "", "", versions]
        return [self.name, f"`{self.command}`", self.commit, self.machine, self.wall,
                self._auc("auc_micro"), self._auc("auc_micro_raw"), self._macro(),
                self._auc("eer"), fps, versions]

    def summary_status(self) -> str:
        return f"{self.status}: {self.error}" if self.error else self.status

    def summary_cells(self) -> list[str]:
        overrides = " ".join(self.overrides) or "(none)"
        if self.status != "ok":
            return [self.name, f"`{overrides}`", f"**{self.summary_status()}**", "", "", "", "",
                    self.wall]
        return [self.name, f"`{overrides}`", "ok", self._auc("auc_micro"),
                self._auc("auc_micro_raw"), self._macro(), self._auc("eer"), self.wall]

    def summary_record(self) -> dict:
        """The `summary_cells` as plain values, for ``summary.csv``."""
        record = {"job": self.name, "overrides": " ".join(self.overrides),
                  "status": self.status, "error": self.error}
        record.update({key: self.metrics.get(key) for key in self.METRIC_KEYS})
        record["wall_s"] = round(self.wall_s, 1)
        return record


def format_seconds(seconds: float) -> str:
    minutes, secs = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    if hours:
        return f"{hours} h {minutes:02d} m"
    return f"{minutes} m {secs:02d} s" if minutes else f"{secs} s"


def display_command(info: dict) -> str:
    """The command a reader would type: bookkeeping overrides (output folder, resume) dropped."""
    kept = [o for o in info.get("overrides", []) if not o.startswith(BOOKKEEPING_PREFIXES)]
    return f"python -m vad.{info.get('task', 'train')} " + " ".join(map(shlex.quote, kept))


def error_line(traceback_text: str) -> str:
    """The first line of the exception a traceback ends with (``ValueError: Invalid ...``)."""
    lines = traceback_text.rstrip().splitlines()
    frames = [i for i, line in enumerate(lines) if line.startswith("  File ")]
    after = lines[frames[-1] + 1:] if frames else lines
    message = [line for line in after if line.strip() and not line.startswith(" ")]
    return message[0].strip() if message else (lines[-1].strip() if lines else "")


def read_run(run_dir: Path) -> ResultRow:
    """The row of one run folder (``run.json``, ``metrics.json`` if the run finished and
    ``error.txt`` if it failed)."""
    run_dir = Path(run_dir)
    info_path, metrics_path = run_dir / RUN_INFO, run_dir / "metrics.json"
    if not info_path.exists():
        raise FileNotFoundError(f"{info_path} is missing: not a vad run folder (or written "
                                f"before run.json existed)")
    info = json.loads(info_path.read_text())
    metrics = json.loads(metrics_path.read_text()) if metrics_path.exists() else {}
    status = info.get("status", "unknown")
    if status == "ok" and not metrics:
        status = "no metrics"
    error_path = run_dir / "error.txt"
    error = error_line(error_path.read_text()) if status != "ok" and error_path.exists() else ""
    wall = format_seconds(info.get("wall_s", 0.0))
    if info.get("commands", 1) > 1:
        wall += f" ({info['commands']} commands)"
    overrides = tuple(o for o in info.get("overrides", []) if not o.startswith(BOOKKEEPING_PREFIXES))
    return ResultRow(run_dir.name, display_command(info), info.get("commit", "unknown"),
                     info.get("machine", ""), wall, status, metrics, overrides, error,
                     info.get("wall_s", 0.0), versions_line(info.get("versions", {})))


def markdown_table(rows: list[ResultRow], summary: bool = False) -> str:
    """docs/results.md's table, or with ``summary=True`` a sweep's (overrides, status, metrics)."""
    header = ResultRow.SUMMARY_HEADER if summary else ResultRow.HEADER
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    lines += ["| " + " | ".join(row.summary_cells() if summary else row.cells()) + " |"
              for row in rows]
    return "\n".join(lines)


def write_summary_csv(path: Path, rows: list[ResultRow]) -> None:
    records = [row.summary_record() for row in rows]
    with Path(path).open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(records[0]) if records else ["job"])
        writer.writeheader()
        writer.writerows(records)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path, help="run folders (with run.json)")
    parser.add_argument("--append", type=Path, help="append the table to this markdown file")
    parser.add_argument("--title", default=None, help="heading written above an appended table")
    args = parser.parse_args(argv)
    table = markdown_table([read_run(run) for run in args.runs])
    print(table)
    if args.append:
        heading = f"\n### {args.title}\n\n" if args.title else "\n"
        with open(args.append, "a") as handle:
            handle.write(heading + table + "\n")


if __name__ == "__main__":
    main(sys.argv[1:])
