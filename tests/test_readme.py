"""Every command in README.md's and docs/datasets.md's ``bash`` blocks, run as typed.

Each command runs from a fresh temporary folder (its outputs land under that folder's
``outputs/``), with only *shortening* overrides appended (one batch, tiny data, fewer jobs,
fewer levels), and the test checks its exit status and the files the documentation promises.
Placeholders become real things made here: ``/data/ped2`` a copy of the fake Ped2
(``tests/data/make_fakes.py``), ``<run>`` and ``outputs/train/runs/<date>`` a tiny run of the
method the command names, ``model.ckpt`` that run's checkpoint, ``cam.mp4``, ``frames/`` and
``clips/`` small videos written here. The arguments are expanded by ``bash`` exactly as a user's
shell would (quotes, globs, ``VAR=value`` prefixes).

Hydra and argparse entry points run in this process (``main()`` with ``sys.argv``: the same
code path as the command line, without a Python start-up per command); multiruns run as real
subprocesses, as typed. A command is a *dry run* (``--help``, ``--cfg``, ``make -n``) only where
it needs what a test cannot have (a GPU, a cluster, the full benchmark, the test suite itself);
`PLAN` says which and why.

A README command that is not in `PLAN`, or a `PLAN` entry no longer in the README, fails
`test_every_documented_command_is_planned`: the documentation cannot drift from what is run.
"""

from __future__ import annotations

import csv
import importlib
import os
import re
import runpy
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from tests.helpers import REPO, compose_config

DOCS = [REPO / "README.md", REPO / "docs" / "datasets.md"]

# -- shortening overrides -------------------------------------------------------------------------
STEPS = ["trainer.max_epochs=1", "++trainer.limit_train_batches=1", "++trainer.limit_val_batches=1"]
SYNTHETIC = ["data.num_train_videos=1", "data.num_test_videos=2", "data.frames_per_video=24",
             "data.size=32"]
TINY = [*STEPS, *SYNTHETIC, "eval.plots=false"]
# Fakes are smaller than the benchmarks (data.strict=null: no count check); frames at 32x32.
ON_DISK = [*STEPS, "data.strict=null", "data.image_size=[32,32]", "eval.plots=false"]
FOOTAGE = [*STEPS, "data.image_size=[32,32]", "data.train_span=[0s,3s]", "data.test_span=[3s,null]",
           "eval.plots=false"]
ROBUSTNESS = ["robustness.levels.brightness=[0.5]", "robustness.levels.blur=[1.0]",
              "robustness.levels.noise=[0.05]", "robustness.levels.rain=[0.01]",
              "robustness.levels.subsample=[2]", "eval.plots=false"]
BENCH = ["--models", "desdnet", "--steps", "1", "--warmup", "0", "--infer-batch", "8",
         "--stream-frames", "2", "--set", "data.num_train_videos=1", "--set",
         "data.num_test_videos=1", "--set", "data.frames_per_video=24", "--set", "data.size=32"]
HYDRA_APPS = ("vad.train", "vad.evaluate", "vad.detect", "vad.export")
GPU_ONLY = "a GPU recipe on the full benchmark (hours); its composition is checked"


@dataclass(frozen=True)
class Case:
    """How one documented command is run and what it must leave.

    Attributes:
        append: Shortening arguments appended to the command.
        files: Globs relative to the command's folder that must match.
        absent: Globs that must not match.
        dry: Why the command runs as ``--help``/``--cfg``/``make -n`` only (empty: it runs).
        run: The method of the ``<run>``/``model.ckpt`` it needs (``ped2``: DESDnet on the fake
            Ped2; ``latentpred``; default DESDnet on synthetic data).
        env: Environment for the command (``{fakes}`` is the folder of fake datasets).
        status: The exit status the documentation promises.
        output: Text the command's output must hold.
    """

    append: tuple[str, ...] = ()
    files: tuple[str, ...] = ()
    absent: tuple[str, ...] = ()
    dry: str = ""
    run: str = "desdnet"
    env: dict = field(default_factory=dict)
    status: int = 0
    output: str = ""


TRAIN_RUN = ("outputs/train/runs/*/metrics.json", "outputs/train/runs/*/scores.csv",
             "outputs/train/runs/*/run.json", "outputs/train/runs/*/checkpoints/last.ckpt",
             "outputs/train/runs/*/.hydra/config.yaml")
EVAL_RUN = ("outputs/eval/runs/*/metrics.json", "outputs/eval/runs/*/scores.csv")
DETECT_RUN = ("outputs/detect/runs/*/scores.csv", "outputs/detect/runs/*/segments.json")
NO_GPU = not torch.cuda.is_available()

# Every command of the documentation (joined lines, comments dropped) -> how it is run.
PLAN: dict[str, Case] = {
    # README: two commands on a fresh machine
    "make train": Case(dry="make: creates .venv (minutes) and runs `python -m vad.train`, run "
                           "below as typed; `make -n` checks the target", output="-m vad.train"),
    "make test": Case(dry="the test suite itself; `make -n` checks the target",
                      output="-m pytest"),
    # README: everything else
    "python -m vad.train": Case(
        append=(*STEPS, *SYNTHETIC),  # plots kept: the README promises them
        files=(*TRAIN_RUN, "outputs/train/runs/*/plots/roc.png",
               "outputs/train/runs/*/plots/regularity_*.png")),
    "python -m vad.train model=convstae data=synthetic trainer=cpu trainer.max_epochs=3 seed=1":
        Case(append=tuple(TINY), files=TRAIN_RUN),
    "python -m vad.train --cfg job": Case(output="_target_: vad.models.desdnet.DESDnetModule"),
    "python -m vad.train model=desdnet data=ped2 data.root=/data/ped2":
        Case(append=tuple(ON_DISK), files=TRAIN_RUN),
    "python -m vad.train experiment=desdnet_ped2 data.root=/data/ped2":
        Case(append=("--cfg", "job"), dry=GPU_ONLY, output="precision: bf16-mixed"),
    "python -m vad.train experiment=desdnet_ped2_cpu data.root=/data/ped2":
        Case(append=tuple(ON_DISK), files=TRAIN_RUN),
    "python -m vad.train -m seed=1,2,3":
        Case(append=tuple(TINY), files=("outputs/train/multiruns/*/summary.csv",
                                        "outputs/train/multiruns/*/2/metrics.json")),
    "python -m vad.train -m sweep=desdnet_erasure":
        Case(append=("model.erasure.threshold_scale=0.5,1.0", *TINY),
             files=("outputs/train/multiruns/*/summary.md",
                    "outputs/train/multiruns/*/1/metrics.json")),
    "python -m vad.evaluate ckpt_path=outputs/train/runs/<date>/checkpoints/last.ckpt "
    "eval.smoothing_sigma=3": Case(files=EVAL_RUN),
    "python -m vad.evaluate scores_csv=outputs/train/runs/<date>/scores.csv "
    "eval.normalization=none": Case(files=EVAL_RUN),
    "python -m vad.evaluate ckpt_path=<run>/checkpoints/last.ckpt model=latentpred "
    "model.score.kind=r_mse": Case(run="latentpred", files=EVAL_RUN),
    # README: measuring and reproducing
    "python -m vad.bench": Case(append=tuple(BENCH), output="| `desdnet` |"),
    "python scripts/bench_loader.py": Case(
        append=("--help",), dry="times loaders on the real Ped2 for minutes", output="--root"),
    "python scripts/gpu_rows.py desdnet_ped2 --data-root /data/ped2 --out runs": Case(
        append=("--help",), dry="runs GPU recipes back to back (hours)", output="--data-root"),
    "python -m vad.results runs/*": Case(output="| run1 |"),
    "python -m vad.train model=framediff data=ped2 data.root=/data/ped2":
        Case(append=tuple(ON_DISK), files=TRAIN_RUN[:3]),
    "python -m vad.train model=framediff data=ped2 data.root=/data/ped2 eval.smoothing_sigma=3":
        Case(append=tuple(ON_DISK), files=TRAIN_RUN[:3]),
    "python -m vad.results --compare outputs/train/runs/<run A> outputs/train/runs/<run B>":
        Case(output="| video | frames | anomalous | auc A (desdnet) | auc B (latentpred) |"),
    "python -m vad.results --agreement --reference outputs/train/runs/<run A> "
    "outputs/train/runs/<run B>": Case(output="Spearman ρ of raw scores (all frames)"),
    "python -m vad.results --summary outputs --write docs/results.md":
        Case(output="reduced-recipe auc_micro (commit)", files=("docs/results.md",)),
    # README and docs/datasets.md: your own footage
    "python -m vad.train data=folder data.train=cam.mp4 data.train_span=[0s,20min] "
    "data.test=cam.mp4 data.test_span=[20min,null]": Case(append=tuple(FOOTAGE), files=TRAIN_RUN),
    # README: ONNX export, robustness and latency
    "python -m vad.export ckpt_path=<run>/checkpoints/last.ckpt format=onnx":
        Case(files=("outputs/export/runs/*/last.onnx", "outputs/export/runs/*/last.json")),
    "python -m vad.evaluate ckpt_path=<run>/checkpoints/last.ckpt robustness=default":
        Case(append=tuple(ROBUSTNESS),
             files=tuple(f"outputs/eval/runs/*/robustness.{x}" for x in ("csv", "md", "png"))),
    "python -m vad.bench --stream-frames 200": Case(append=tuple(BENCH), output="| `desdnet` |"),
    # README: detecting anomalies in your own video
    "python -m vad.detect ckpt_path=model.ckpt input=cam.mp4":
        Case(files=(*DETECT_RUN, "outputs/detect/runs/*/plots/cam.png")),
    "python -m vad.detect ckpt_path=model.ckpt input=frames/ render=true":
        Case(files=(*DETECT_RUN, "outputs/detect/runs/*/frames.mp4")),
    "python -m vad.detect ckpt_path=model.ckpt input='clips/*.mp4' stream=true":
        Case(files=(*DETECT_RUN, "outputs/detect/runs/*/plots/1.png",
                    "outputs/detect/runs/*/plots/2.png")),
    "python -m vad.detect ckpt_path=model.ckpt input=cam.mp4 stream=true stream_chunk=1":
        Case(files=DETECT_RUN),
    "python -m vad.detect ckpt_path=model.ckpt input=\"'clips/[12]*.mp4'\"":
        Case(files=(*DETECT_RUN, "outputs/detect/runs/*/plots/1.png",
                    "outputs/detect/runs/*/plots/2.png"),
             absent=("outputs/detect/runs/*/plots/3x.png",)),
    "python -m vad.detect ckpt_path=model.ckpt input=cam.mp4 false_alarm_rate=0.05":
        Case(files=DETECT_RUN),
    "python -m vad.detect ckpt_path=model.ckpt input=cam.mp4 threshold=0.012 device=cuda":
        Case(files=DETECT_RUN) if not NO_GPU else
        Case(status=1, output="device=cuda needs a GPU and this machine has none: use device=cpu"),
    "python -m vad.evaluate ckpt_path=model.ckpt data.root=/data/ped2":
        Case(run="ped2", files=EVAL_RUN),
    # README: scaling out
    "python -m vad.train -m sweep=stdae_clusters experiment=stdae_ped2 data.root=/data/ped2 "
    "trainer=gpu hydra/launcher=slurm hydra.launcher.partition=gpu hydra.launcher.timeout_min=300":
        Case(append=("--cfg", "hydra"), dry="a SLURM cluster with GPUs",
             output="partition: gpu"),
    "python -m vad.train -m sweep=desdnet_erasure hydra/launcher=joblib hydra.launcher.n_jobs=2":
        Case(append=("model.erasure.threshold_scale=0.5,1.0", *TINY),
             files=("outputs/train/multiruns/*/summary.csv",
                    "outputs/train/multiruns/*/1/metrics.json")),
    "python -m vad.train -m sweep=desdnet_loss_weights_optuna hydra.sweeper.n_trials=30 "
    "'logger=[csv,wandb]'":
        Case(append=("hydra.sweeper.n_trials=2", *TINY),
             files=("outputs/train/multiruns/*/summary.csv",
                    "outputs/train/multiruns/*/1/wandb/offline-run-*",
                    "outputs/train/multiruns/*/optimization_results.yaml")),
    "python -m vad.train experiment=desdnet_ped2 data.root=/data/ped2 trainer=ddp "
    "trainer.devices=2": Case(append=("--cfg", "job"), dry="two GPUs and the full benchmark",
                              output="strategy: ddp"),
    # docs/datasets.md
    "python -m vad.train data=ped2 data.root=/data/ped2": Case(append=tuple(ON_DISK),
                                                              files=TRAIN_RUN),
    "VAD_DATA_ROOT=/data python -m vad.train data=avenue": Case(append=tuple(ON_DISK),
                                                               files=TRAIN_RUN),
    "python -m vad.train data=shanghaitech data.scenes=[1]":
        Case(append=tuple(ON_DISK), env={"VAD_DATA_ROOT": "{fakes}"}, files=TRAIN_RUN),
    "VAD_DATA_ROOT=/data python -m vad.train data=combined model=topheavy data.test=[ped2]":
        Case(append=("--cfg", "job"), dry="Top-Heavy's 16-frame clips are longer than the "
             "fakes' videos; the five full benchmarks are not here", output="test:\n  - ped2"),
    "python -m vad.evaluate ckpt_path=<run>/checkpoints/last.ckpt data=combined "
    "data.test=[avenue]": Case(append=("--cfg", "job"), dry="the checkpoint of the combined "
                               "run above, which is a dry run", output="- avenue"),
}


# -- reading the documentation --------------------------------------------------------------------
def documented_commands() -> list[str]:
    """The commands of every ``bash`` block: continuation lines joined, comments and blank
    lines dropped, spaces collapsed."""
    commands = []
    for doc in DOCS:
        for block in re.findall(r"```bash\n(.*?)```", doc.read_text(), flags=re.S):
            for line in block.replace("\\\n", " ").splitlines():
                line = re.sub(r"\s+#\s.*$", "", line).strip()
                if line and not line.startswith("#"):
                    commands.append(re.sub(r"\s+", " ", line))
    return commands


def test_every_documented_command_is_planned():
    commands = documented_commands()
    assert len(commands) >= 30, commands  # the parser still finds the blocks
    missing = [c for c in commands if c not in PLAN]
    assert not missing, f"documented but not run by this test (add them to PLAN): {missing}"
    stale = [c for c in PLAN if c not in commands]
    assert not stale, f"in PLAN but no longer documented (remove them): {stale}"


# -- what the commands need -----------------------------------------------------------------------
def write_video(path: Path, frames: int, fps: float = 10.0, size: int = 64) -> None:
    """A grey square moving over a dark background (a bright blob in the second half)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (size, size))
    for i in range(frames):
        frame = np.full((size, size, 3), 20, np.uint8)
        x = (3 * i) % (size - 12)
        frame[20:32, x:x + 12] = 200
        if i > frames // 2:
            frame[40:56, 40:56] = 255
        writer.write(frame)
    writer.release()


@pytest.fixture(scope="module")
def assets(tmp_path_factory, fakes_root: Path) -> dict[str, Path]:
    """Tiny runs (one per method a command needs) and the fake data, made once."""
    from vad.train import train

    tmp = tmp_path_factory.mktemp("readme-assets")
    made = {"fakes": fakes_root}
    for name, overrides in {
        # Enough held-out frames for a threshold above the median (vad.detect's calibration).
        "desdnet": ["data.val_fraction=0.5", "data.frames_per_video=40"],
        "latentpred": ["model=latentpred", "model.clip.length=2", "model.clip.future_offset=1",
                       "model.net.num_blocks=2"],
    }.items():
        run = tmp / name
        train(compose_config(run, *STEPS, *SYNTHETIC, "eval.plots=false", "~logger", *overrides))
        made[name] = run
    # DESDnet trained on the fake Ped2, whose folder has moved since (/data/ped2 below).
    shutil.copytree(fakes_root / "ped2" / "frames", tmp / "ped2-old")
    train(compose_config(tmp / "ped2", f"data.root={tmp / 'ped2-old'}", "data=ped2",
                         *ON_DISK, "~logger", "test=false", "data.num_workers=0"))
    (tmp / "data").mkdir()
    (tmp / "ped2-old").rename(tmp / "data" / "ped2")
    shutil.copytree(fakes_root / "avenue" / "original", tmp / "data" / "avenue")
    made["ped2"], made["data"] = tmp / "ped2", tmp / "data"
    return made


def prepare(command: str, case: Case, cwd: Path, assets: dict[str, Path]) -> str:
    """Put what ``command`` names into the fresh folder ``cwd``; the command with its
    placeholders replaced."""
    run = assets[case.run]
    if "cam.mp4" in command:
        write_video(cwd / "cam.mp4", 60)
    if "frames/" in command:
        (cwd / "frames").mkdir()
        for i in range(24):
            frame = np.full((64, 64, 3), 20, np.uint8)
            frame[20:32, 2 * i:2 * i + 12] = 200
            cv2.imwrite(str(cwd / "frames" / f"{i:03d}.png"), frame)
    if "clips/" in command:
        for name in ("1", "2", "3x"):  # [12]* picks 1 and 2
            write_video(cwd / "clips" / f"{name}.mp4", 24)
        if "[12]" not in command:
            (cwd / "clips" / "3x.mp4").unlink()
    if "model.ckpt" in command:
        shutil.copy(run / "checkpoints" / "last.ckpt", cwd / "model.ckpt")
    if "runs/*" in command and "vad.results" in command:
        shutil.copytree(run, cwd / "runs" / "run1")
    if "--summary outputs" in command:  # its own runs, and its own copy of docs/results.md
        shutil.copytree(run, cwd / "outputs" / "train" / "runs" / run.name)
        (cwd / "docs").mkdir()
        shutil.copy(REPO / "docs" / "results.md", cwd / "docs" / "results.md")
    command = command.replace("outputs/train/runs/<date>", str(run)).replace("<run>", str(run))
    command = command.replace("outputs/train/runs/<run A>", str(assets["desdnet"])).replace(
        "outputs/train/runs/<run B>", str(assets["latentpred"]))
    data = assets["data"]
    return command.replace("/data/ped2", str(data / "ped2")).replace(
        "/data/avenue", str(data / "avenue")).replace("VAD_DATA_ROOT=/data ",
                                                      f"VAD_DATA_ROOT={data} ")


def shell_words(command: str, cwd: Path) -> tuple[dict[str, str], list[str]]:
    """(``VAR=value`` prefixes, argv) of ``command`` as bash expands them in ``cwd``."""
    env = {}
    while match := re.match(r"([A-Z_][A-Z0-9_]*)=(\S+) ", command):
        env[match.group(1)] = match.group(2)
        command = command[match.end():]
    words = subprocess.run(["bash", "-c", f'printf "%s\\0" {command}'], cwd=cwd, check=True,
                           capture_output=True, text=True).stdout.split("\0")[:-1]
    return env, words


def run_in_process(words: list[str], monkeypatch, capsys) -> tuple[int, str]:
    """``python -m vad.<x> ...`` or ``python <script> ...`` through its ``main`` in this process:
    (exit status, output)."""
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.hydra_config import HydraConfig

    GlobalHydra.instance().clear()
    HydraConfig.instance().cfg = None  # as in a fresh process
    if words[1] == "-m":
        module, args = importlib.import_module(words[2]), words[3:]
        hydra_app = words[2] in HYDRA_APPS
    else:
        module, args, hydra_app = None, words[2:], False
    monkeypatch.setattr(sys, "argv", [words[2] if module else words[1], *args])
    capsys.readouterr()
    try:
        if module is None:
            runpy.run_path(str(REPO / words[1]), run_name="__main__")
        elif hydra_app:
            module.main()
        else:
            module.main(args)
        status = 0
    except SystemExit as stop:
        status = stop.code if isinstance(stop.code, int) else (0 if stop.code is None else 1)
    out = capsys.readouterr()
    return status, out.out + out.err


@pytest.mark.parametrize("command", sorted(PLAN))
def test_documented_command(command: str, assets, tmp_path: Path, monkeypatch, capsys):
    case = PLAN[command]
    cwd = tmp_path / "fresh"
    cwd.mkdir()
    env_vars, words = shell_words(prepare(command, case, cwd, assets), cwd)
    words += list(case.append)
    if "--cfg" in case.append and "-m" in words[3:]:
        del words[words.index("-m", 3)]  # Hydra prints a multirun's config without -m
    for key, value in {**env_vars, **case.env}.items():
        monkeypatch.setenv(key, value.format(fakes=assets["fakes"]))
    for key in ("PROJECT_ROOT", "HYDRA_FULL_ERROR") + (() if "VAD_DATA_ROOT" in env_vars
                                                       or "VAD_DATA_ROOT" in case.env
                                                       else ("VAD_DATA_ROOT",)):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.chdir(cwd)
    if words[0] == "make":  # dry: the target exists and runs what it says
        result = subprocess.run(["make", "-n", *words[1:]], cwd=REPO, capture_output=True,
                                text=True)
        status, output = result.returncode, result.stdout + result.stderr
    elif "-m" in words[3:4] and words[2] == "vad.train" and "--cfg" not in words:
        # A multirun: a real subprocess, as typed, from the fresh folder.
        result = subprocess.run([sys.executable, *words[1:]], cwd=cwd, capture_output=True,
                                text=True, timeout=300,
                                env={**os.environ, "PYTHONPATH": str(REPO)})
        status, output = result.returncode, result.stdout + result.stderr
    else:
        status, output = run_in_process(words, monkeypatch, capsys)
    assert status == case.status, output[-3000:]
    assert case.output in output, output[-3000:]
    for pattern in case.files:
        assert list(cwd.glob(pattern)), (pattern, sorted(str(p.relative_to(cwd))
                                                         for p in cwd.rglob("*"))[:60])
    for pattern in case.absent:
        assert not list(cwd.glob(pattern)), pattern
    if "outputs/train/multiruns/*/summary.csv" in case.files:
        (summary,) = cwd.glob("outputs/train/multiruns/*/summary.csv")
        with summary.open(newline="") as handle:
            assert {row["status"] for row in csv.DictReader(handle)} == {"ok"}


def test_the_lock_pins_every_dependency():
    """requirements/cpu.lock (``make install``'s constraints) pins each package pyproject.toml
    names (torch excepted: the Makefile's TORCH_SPEC picks it), and the Makefile uses it."""
    import tomllib

    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    names = [*project["dependencies"], *project["optional-dependencies"]["dev"],
             *project["optional-dependencies"]["export"]]
    wanted = {re.split(r"[<>=\[ ;]", n)[0].lower().replace("_", "-") for n in names}
    wanted -= {"torch", "vad"}
    pins = {}
    for line in (REPO / "requirements" / "cpu.lock").read_text().splitlines():
        if line and not line.startswith("#"):
            name, _, version = line.partition("==")
            assert version, f"not a pin: {line}"
            pins[name.lower().replace("_", "-")] = version
    assert not wanted - set(pins), sorted(wanted - set(pins))
    assert "torch" not in pins
    assert "-c $(LOCK)" in (REPO / "Makefile").read_text()
