"""Run folders → result rows: ``python -m vad.results RUN_DIR... [--append docs/results.md]``.

``--compare RUN_A RUN_B`` prints both runs' per-video AUCs side by side; ``--reference REF
--agreement RUN...`` how closely each run's raw frame scores rank like REF's (does a method
score more than a no-learning reference already does?); ``--summary FOLDER...``
writes the summary table (one row per dataset and method: the reduced and the full recipe, the
paper's number, the no-learning `framediff` reference under the same evaluation settings) and
``--write docs/results.md`` puts it under that file's ``## Summary`` heading. ``--archive
docs/runs`` keeps the small files of run folders (``run.json``, ``metrics.json``, the config) in
the repository, so that the summary can be regenerated without the runs' outputs.

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
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

RUN_INFO = "run.json"
# Overrides that only say where or how a run was carried out, not what it computed.
BOOKKEEPING_PREFIXES = ("hydra.", "ckpt_path=", "test=", "paths.", "run_dir=", "+run_dir=")


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
    """One line: the accelerator if any, CPU cores, torch version and its intra-op threads.

    The threads are part of what a run computed: they set the order of floating-point sums, so
    the same seed on 1 and on 2 threads differs after a few steps and ends like another seed
    (latentpred on Ped1, docs/results.md)."""
    import torch

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    parts = []
    if torch.cuda.is_available():
        parts.append(f"{torch.cuda.device_count()}x {torch.cuda.get_device_name(0)}")
    parts.append(f"{cores}-core {platform.machine()} CPU")
    threads = torch.get_num_threads()
    parts.append(f"torch {torch.__version__}, {threads} thread{'' if threads == 1 else 's'}")
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
        self.commit = "unknown"
        self.previous = {"wall_s": 0.0, "commands": 0}
        self.versions = package_versions()

    def start(self) -> None:
        self.started = time.time()
        # The code this command imported: a commit made while it runs is not what it ran.
        self.commit = git_commit()
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
            "commit": self.commit,
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


def computed_overrides(info: dict) -> list[str]:
    """A run's overrides without the bookkeeping ones (output folder, resume). An evaluation's
    ``ckpt_path`` is what it scored, so it stays."""
    task = info.get("task", "train")
    return [o for o in info.get("overrides", []) if not o.startswith(BOOKKEEPING_PREFIXES)
            or (task == "evaluate" and o.startswith("ckpt_path="))]


def display_command(info: dict) -> str:
    """The command a reader would type: bookkeeping overrides (output folder, resume) dropped."""
    return (f"python -m vad.{info.get('task', 'train')} "
            + " ".join(map(shlex.quote, computed_overrides(info))))


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
    return ResultRow(run_dir.name, display_command(info), info.get("commit", "unknown"),
                     info.get("machine", ""), wall, status, metrics,
                     tuple(computed_overrides(info)), error,
                     info.get("wall_s", 0.0), versions_line(info.get("versions", {})))


def markdown_table(rows: list[ResultRow], summary: bool = False,
                   reference: ResultRow | None = None) -> str:
    """docs/results.md's table, or with ``summary=True`` a sweep's (overrides, status, metrics).
    A ``reference`` run (`framediff` under the rows' evaluation settings) adds each row's margin
    over its auc_micro."""
    header = ResultRow.SUMMARY_HEADER if summary else ResultRow.HEADER
    base = reference.metrics.get("auc_micro") if reference is not None else None
    if reference is not None:
        header = (*header, f"margin over {reference.name} ({base:.3f})")
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    for row in rows:
        cells = row.summary_cells() if summary else row.cells()
        if reference is not None:
            value = row.metrics.get("auc_micro") if row.status == "ok" else None
            cells = [*cells, f"{value - base:+.3f}" if isinstance(value, float) else "—"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def write_summary_csv(path: Path, rows: list[ResultRow]) -> None:
    records = [row.summary_record() for row in rows]
    with Path(path).open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(records[0]) if records else ["job"])
        writer.writeheader()
        writer.writerows(records)


def per_video(run_dir: Path) -> dict[str, dict]:
    """A run's per-video diagnostics from its ``metrics.json``, keyed by video."""
    path = Path(run_dir) / "metrics.json"
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing: the run has not been tested")
    metrics = json.loads(path.read_text())
    if "per_video" not in metrics:
        raise ValueError(f"{path} has no per-video metrics (written before they existed): "
                         f"rescore it with python -m vad.evaluate scores_csv={Path(run_dir) / 'scores.csv'}")
    return {entry["video"]: entry for entry in metrics["per_video"]}


def compare_table(run_a: Path, run_b: Path) -> str:
    """Both runs' per-video AUCs side by side (markdown): which videos a change moved."""
    from vad.evaluation.report import format_auc

    a, b = per_video(run_a), per_video(run_b)
    header = ("video", "frames", "anomalous", f"auc A ({Path(run_a).name})",
              f"auc B ({Path(run_b).name})", "padded A", "padded B", "padded B − A")
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    for video in sorted(a.keys() | b.keys()):
        first, second = a.get(video), b.get(video)
        known = first or second
        delta = (f"{second['auc_padded'] - first['auc_padded']:+.3f}" if first and second else "—")
        lines.append("| " + " | ".join([
            video, str(known["frames"]), f"{known['anomalous_share']:.0%}",
            format_auc(first and first["auc"]), format_auc(second and second["auc"]),
            format_auc(first and first["auc_padded"]), format_auc(second and second["auc_padded"]),
            delta]) + " |")
    return "\n".join(lines)


def score_agreement(run_dir: Path, reference_dir: Path) -> tuple[float, float, int]:
    """Spearman's rank correlation of two runs' raw frame scores (``scores.csv``, frames both
    scored): over all frames pooled, and its mean over the videos (within a video, what per-video
    normalisation leaves of the ranking) → ``(pooled, within_videos, frames)``."""
    from scipy.stats import spearmanr

    from vad.evaluation.report import read_scores

    def frame_scores(folder: Path) -> dict[str, np.ndarray]:
        path = Path(folder) / "scores.csv"
        if not path.exists():
            raise FileNotFoundError(f"{path} is missing: agreement needs the run's output folder "
                                    f"(archived runs keep no scores)")
        names, scores, _ = read_scores(path)
        return dict(zip(names, scores))

    run, reference = frame_scores(run_dir), frame_scores(reference_dir)
    pooled_a, pooled_b, within = [], [], []
    for video in sorted(run.keys() & reference.keys()):
        n = min(len(run[video]), len(reference[video]))
        a, b = run[video][:n], reference[video][:n]
        scored_by_both = ~np.isnan(a) & ~np.isnan(b)
        a, b = a[scored_by_both], b[scored_by_both]
        pooled_a.append(a)
        pooled_b.append(b)
        if len(a) > 2:
            within.append(spearmanr(a, b)[0])
    if not pooled_a:
        raise ValueError(f"{run_dir} and {reference_dir} share no scored video")
    pooled = spearmanr(np.concatenate(pooled_a), np.concatenate(pooled_b))[0]
    return float(pooled), float(np.nanmean(within)), int(sum(map(len, pooled_a)))


def agreement_table(run_dirs: list[Path], reference_dir: Path) -> str:
    """`score_agreement` of each run with the reference, one markdown row per run."""
    header = ("run", "auc_micro", f"{Path(reference_dir).name}'s auc_micro",
              "Spearman ρ of raw scores (all frames)", "ρ within videos (mean)", "frames")
    reference_auc = read_run(reference_dir).metrics.get("auc_micro", float("nan"))
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    for run_dir in run_dirs:
        pooled, within, frames = score_agreement(run_dir, reference_dir)
        auc = read_run(run_dir).metrics.get("auc_micro", float("nan"))
        name = f"{Path(run_dir).parent.name}/{Path(run_dir).name}"  # base_s0 of two methods
        lines.append(f"| {name} | {auc:.3f} | {reference_auc:.3f} | {pooled:.3f} | "
                     f"{within:.3f} | {frames} |")
    return "\n".join(lines)


# -- the summary table -------------------------------------------------------------------------
REFERENCE = "vad.models.framediff.FrameDiffModule"
# The evaluation settings a reference must share with a row to stand beside it.
EVAL_KEYS = ("normalization", "normalization_window", "smoothing_sigma")
# What a run computed: these sections of its config, less the keys that only say where its
# data lives, how it was read, and whether plots were drawn.
RECIPE_SECTIONS = ("model", "data", "trainer", "eval")
PLACE_KEYS = ("data.root", "data.num_workers", "data.cache_dir", "eval.plots")


def config_leaves(config) -> dict[str, object]:
    """The run-defining values of a config (`RECIPE_SECTIONS`, unresolved), as dotted keys."""
    from omegaconf import OmegaConf

    def walk(node, prefix: str):
        if isinstance(node, dict):
            for key, value in node.items():
                yield from walk(value, f"{prefix}.{key}")
        else:
            yield prefix, node

    leaves = {}
    for section in RECIPE_SECTIONS:
        if section in config:
            tree = OmegaConf.to_container(config[section], resolve=False)
            leaves.update(walk(tree, section))
    return {key: value for key, value in leaves.items() if key not in PLACE_KEYS}


def runs_recipe(run: dict[str, object], recipe: dict[str, object],
                defaults: dict[str, object]) -> bool:
    """Whether a run's config leaves are those of the recipe as it is now: every value the run
    has is the recipe's, and every key it lacks (an option added since) has, in the recipe, the
    option's default (``defaults``: the leaves of the recipe's config groups without the recipe),
    which keeps the old behaviour. A key the recipe lacks (an option since removed), any other
    value (an override, an older recipe) or a new option the recipe sets is not the recipe."""
    return (all(key in recipe and recipe[key] == value for key, value in run.items())
            and all(key in defaults and defaults[key] == value
                    for key, value in recipe.items() if key not in run))


@dataclass
class SummaryRun:
    """What the summary needs of one finished run."""

    experiment: str | None
    model: str
    dataset: str
    image_size: tuple | None
    eval_policy: tuple
    auc: float
    commit: str
    started: str
    recipe_as_is: bool
    default_model: bool   # no model.* override: the method's own defaults (framediff: k=1, p=2)


def find_runs(paths: list[Path]) -> list[Path]:
    """Run folders: each path that holds ``run.json``, else every run folder below it."""
    found = []
    for path in map(Path, paths):
        found += [path] if (path / RUN_INFO).exists() else sorted(
            p.parent for p in path.rglob(RUN_INFO))
    return found


def summary_run(run_dir: Path, recipes: dict[str, dict] | None = None) -> SummaryRun | None:
    """A finished, tested run as the summary sees it; None for anything else. ``recipes``:
    `config_leaves` of each recipe now and of its config groups' defaults, by experiment name."""
    from omegaconf import OmegaConf

    info_path, metrics_path = run_dir / RUN_INFO, run_dir / "metrics.json"
    config_path = run_dir / ".hydra" / "config.yaml"
    if not (info_path.exists() and metrics_path.exists() and config_path.exists()):
        return None
    info, metrics = json.loads(info_path.read_text()), json.loads(metrics_path.read_text())
    if info.get("status") != "ok" or not isinstance(metrics.get("auc_micro"), float):
        return None
    config = OmegaConf.load(config_path)
    data = config.get("data", {})
    size = data.get("image_size")
    return SummaryRun(
        experiment=config.get("experiment_name"),
        model=str(config.model._target_),
        dataset=str(data.get("_target_", "")),
        image_size=tuple(size) if size is not None else None,
        eval_policy=tuple(metrics.get(key) for key in EVAL_KEYS),
        auc=metrics["auc_micro"], commit=info.get("commit", "unknown"),
        started=info.get("started", ""),
        recipe_as_is=runs_recipe(config_leaves(config), *(recipes or {}).get(
            config.get("experiment_name"), ({}, {}))),
        default_model=not any(o.startswith("model.") for o in info.get("overrides", [])))


@dataclass
class Recipe:
    """A paper-table row's recipes: ``name`` (full) and ``name_cpu`` (reduced)."""

    name: str
    model: str
    dataset: str
    data_name: str
    paper: str
    eval_policy: tuple
    image_size: tuple | None
    # `config_leaves` of the recipe and of its groups' defaults, by name (``name`` and
    # ``name_cpu`` when it exists): what `runs_recipe` compares a run with.
    leaves: dict = field(default_factory=dict)


def recipe_and_defaults(compose, cfg) -> tuple[dict, dict]:
    """`config_leaves` of a composed recipe (``return_hydra_config=True``) and of the same config
    groups (model, data, trainer, eval) without it: the defaults of the options it does not set."""
    groups = [f"{group}={cfg.hydra.runtime.choices[group]}" for group in RECIPE_SECTIONS
              if cfg.hydra.runtime.choices.get(group)]
    return config_leaves(cfg), config_leaves(compose("train", overrides=groups))


def paper_recipes() -> list[Recipe]:
    """Every full recipe in ``conf/experiment/`` on a benchmark (synthetic ones left out), with
    the model, dataset, paper number and evaluation settings its composed config gives."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    conf = Path(__file__).resolve().parents[1] / "conf"
    names = sorted(p.stem for p in (conf / "experiment").glob("*.yaml")
                   if not p.stem.endswith("_cpu"))
    recipes = []
    GlobalHydra.instance().clear()
    with initialize_config_dir(str(conf), version_base="1.3"):
        for name in names:
            cfg = compose("train", overrides=[f"experiment={name}"], return_hydra_config=True)
            data_name = cfg.data._target_.rsplit(".", 1)[-1].removesuffix("DataModule").lower()
            if data_name == "synthetic":
                continue
            size = cfg.data.get("image_size")
            leaves = {name: recipe_and_defaults(compose, cfg)}
            if (conf / "experiment" / f"{name}_cpu.yaml").exists():
                leaves[f"{name}_cpu"] = recipe_and_defaults(compose, compose(
                    "train", overrides=[f"experiment={name}_cpu"], return_hydra_config=True))
            recipes.append(Recipe(
                name=name, model=str(cfg.model._target_), dataset=str(cfg.data._target_),
                data_name=data_name, paper=str(cfg.get("paper_auc") or "—"),
                eval_policy=tuple(cfg.eval.get(key) for key in EVAL_KEYS),
                image_size=tuple(size) if size is not None else None, leaves=leaves))
    GlobalHydra.instance().clear()
    return recipes


def recipe_cell(runs: list[SummaryRun]) -> str:
    """The auc_micro of a recipe's runs (those whose config is the recipe's as it is now): one
    run's value, or the mean ± sample std over its runs (seeds), with the commits they ran."""
    if not runs:
        return "**not run**"
    commits = ", ".join(dict.fromkeys(r.commit for r in sorted(runs, key=lambda r: r.started)))
    aucs = [r.auc for r in runs]
    if len(aucs) == 1:
        return f"{aucs[0]:.3f} ({commits})"
    return (f"{statistics.mean(aucs):.3f} ± {statistics.stdev(aucs):.3f} "
            f"({len(aucs)} runs: {commits})")


def reference_cell(recipe: Recipe, runs: list[SummaryRun]) -> str:
    """`framediff` (its defaults) on the row's dataset under the row's evaluation settings; the
    run at the recipe's frame size if there is one, else the largest."""
    matching = [r for r in runs if r.model == REFERENCE and r.default_model
                and r.dataset == recipe.dataset and r.eval_policy == recipe.eval_policy]
    if not matching:
        return "**not run**"
    same_size = [r for r in matching if r.image_size == recipe.image_size]
    run = max(same_size or matching, key=lambda r: (r.image_size or (0, 0), r.started))
    size = "×".join(map(str, run.image_size)) if run.image_size else "source size"
    return f"{run.auc:.3f} ({size})"


def summary_table(run_dirs: list[Path]) -> str:
    """The ``## Summary`` table of docs/results.md from run folders."""
    recipes = paper_recipes()
    leaves = {name: values for recipe in recipes for name, values in recipe.leaves.items()}
    runs = [run for run in (summary_run(path, leaves) for path in find_runs(run_dirs))
            if run is not None]
    header = ("dataset", "`model=`", "reduced-recipe auc_micro (commit)",
              "full-recipe auc_micro (commit)", "paper", "`framediff`, same `eval`")
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    for recipe in sorted(recipes, key=lambda r: (r.data_name, r.name)):
        variant = recipe.name.removeprefix(recipe.name.split("_")[0] + "_" + recipe.data_name)
        method = recipe.model.rsplit(".", 2)[-2] + (f" ({variant.strip('_')})" if variant else "")
        of = lambda name: [r for r in runs if r.experiment == name and r.recipe_as_is]  # noqa: E731
        lines.append("| " + " | ".join([
            recipe.data_name, f"`{method}`", recipe_cell(of(f"{recipe.name}_cpu")),
            recipe_cell(of(recipe.name)), recipe.paper, reference_cell(recipe, runs)]) + " |")
    return "\n".join(lines)


ARCHIVED = (RUN_INFO, "metrics.json", ".hydra/config.yaml", ".hydra/overrides.yaml")


def archive_runs(run_dirs: list[Path], dest: Path) -> list[Path]:
    """Copy what a result row and the summary read of each run (``run.json``, ``metrics.json``,
    the composed config; no checkpoints or scores) to ``dest/<run name>/``, so that the rows of
    docs/results.md can be regenerated from the repository."""
    copied = []
    for run in map(Path, run_dirs):
        if not (run / RUN_INFO).exists():
            raise FileNotFoundError(f"{run / RUN_INFO} is missing: not a vad run folder")
        for name in ARCHIVED:
            if (run / name).exists():
                target = Path(dest) / run.name / name
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes((run / name).read_bytes())
        copied.append(Path(dest) / run.name)
    return copied


def replace_section(path: Path, heading: str, body: str) -> None:
    """Put ``body`` under ``heading`` in a markdown file (replacing what was there up to the
    next heading of the same level; inserted after the title when the heading is new)."""
    text = Path(path).read_text()
    lines = text.splitlines()
    level = heading.split(" ", 1)[0]
    if heading in lines:
        start = lines.index(heading)
        end = next((i for i in range(start + 1, len(lines))
                    if lines[i].startswith(level + " ")), len(lines))
    else:
        start = end = next((i for i, line in enumerate(lines) if line.startswith(level + " ")),
                           len(lines))
    new = lines[:start] + [heading, "", *body.splitlines(), ""] + lines[end:]
    with atomic_path(Path(path)) as tmp:
        tmp.write_text("\n".join(new) + "\n")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path,
                        help="run folders (with run.json); with --summary, folders to search")
    parser.add_argument("--append", type=Path, help="append the table to this markdown file")
    parser.add_argument("--title", default=None, help="heading written above an appended table")
    parser.add_argument("--reference", type=Path,
                        help="a framediff run under the same eval settings: adds each row's margin")
    parser.add_argument("--agreement", action="store_true",
                        help="with --reference: the rank correlation of each run's raw frame "
                             "scores with the reference's (scores.csv of both)")
    parser.add_argument("--compare", action="store_true",
                        help="two run folders: their per-video AUCs side by side")
    parser.add_argument("--summary", action="store_true",
                        help="the summary table: one row per dataset and method")
    parser.add_argument("--archive", type=Path, metavar="DIR",
                        help="copy each run's run.json, metrics.json and config to DIR/<run>/")
    parser.add_argument("--write", type=Path,
                        help="with --summary: replace this markdown file's '## Summary' section")
    args = parser.parse_args(argv)
    if args.compare:
        if len(args.runs) != 2:
            parser.error("--compare takes exactly two run folders")
        print(compare_table(*args.runs))
        return
    if args.archive:
        for folder in archive_runs(args.runs, args.archive):
            print(f"archived {folder}")
        return
    if args.summary:
        table = summary_table(args.runs)
        print(table)
        if args.write:
            replace_section(args.write, "## Summary", SUMMARY_PREAMBLE + "\n\n" + table)
        return
    if args.agreement:
        if not args.reference:
            parser.error("--agreement needs --reference REF_RUN (e.g. a model=background run)")
        print(agreement_table(args.runs, args.reference))
        return
    reference = read_run(args.reference) if args.reference else None
    table = markdown_table([read_run(run) for run in args.runs], reference=reference)
    print(table)
    if args.append:
        heading = f"\n### {args.title}\n\n" if args.title else "\n"
        with open(args.append, "a") as handle:
            handle.write(heading + table + "\n")


SUMMARY_PREAMBLE = (
    "Generated by `python -m vad.results --summary docs/runs --write docs/results.md` from the "
    "run folders kept in `docs/runs/` (`python -m vad.results <run>... --archive docs/runs`); "
    "every number is a row further down. Reduced recipes are `experiment=<row>_cpu` "
    "(2-core CPU), full ones `experiment=<row>` (the paper's, GPU): the runs whose config is "
    "the recipe's as it is now (an older recipe's runs are left out), one run's auc_micro or "
    "the mean ± sample std over its runs (seeds), with the commits they ran at. "
    "`framediff`: frame differencing, no learning (`model=framediff`, k = 1, p = 2), on the same "
    "dataset under the row's normalisation and smoothing, at the frame size given.")


if __name__ == "__main__":
    main(sys.argv[1:])
