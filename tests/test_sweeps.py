"""Multiruns: presets, the sweep summary and exit status, launchers, Optuna, W&B offline runs."""

from __future__ import annotations

import csv
import json
import logging
import subprocess
import sys
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from tests.helpers import CONF, compose_config, multirun, wandb_records
from vad.results import error_line
from vad.utils.sweep import SweepSummary

# Training sweeps; latentpred_scores rescores a checkpoint with `vad.evaluate` (tested in
# tests/test_latentpred.py, with its refusal under `vad.train`).
PRESETS = sorted(p.stem for p in (CONF / "sweep").glob("*.yaml") if p.stem != "latentpred_scores")
# Small enough for a few seconds a job on CPU, with both classes among the test frames.
TINY = ["trainer.max_epochs=1", "+trainer.limit_train_batches=2", "+trainer.limit_val_batches=1",
        "data.num_train_videos=1", "data.num_test_videos=2", "data.frames_per_video=40",
        "data.size=32", "eval.plots=false"]


def run_sweep(tmp_path: Path, *overrides: str) -> tuple[subprocess.CompletedProcess, Path]:
    """A multirun as typed, from the fresh folder ``tmp_path``: the default sweep directory."""
    return multirun(tmp_path, *overrides)


def summary(sweep_dir: Path) -> list[dict]:
    with (sweep_dir / "summary.csv").open(newline="") as handle:
        return list(csv.DictReader(handle))


def test_failing_sweep_exits_nonzero_after_a_summary_naming_both_failures(tmp_path: Path):
    """The issue's command: both jobs fail (the config check refuses a negative learning rate)."""
    result, sweep_dir = run_sweep(tmp_path, "model.optimizer.lr=-1,-2", "trainer.max_epochs=1")
    assert result.returncode == 1, result.stderr[-2000:]
    rows = summary(sweep_dir)
    assert [(r["job"], r["overrides"], r["status"]) for r in rows] == [
        ("0", "model.optimizer.lr=-1", "failed"), ("1", "model.optimizer.lr=-2", "failed")]
    assert [r["error"] for r in rows] == [
        f"vad.utils.validate.ConfigError: model.optimizer.lr={lr}: must be a number > 0"
        for lr in (-1, -2)]
    table = (sweep_dir / "summary.md").read_text()
    assert "model.optimizer.lr=-1: must be" in table and "model.optimizer.lr=-2: must be" in table
    assert "model.optimizer.lr=-2: must be" in result.stdout  # printed as well


def test_error_line_is_the_raised_exception_of_a_chained_traceback():
    text = ('Traceback (most recent call last):\n  File "a.py", line 1, in f\n    g()\n'
            'KeyError: \'x\'\n\nThe above exception was the direct cause of the following '
            'exception:\n\nTraceback (most recent call last):\n  File "a.py", line 3, in h\n'
            '    raise ValueError("bad clip\\nsecond line")\n    ^^^^^^^^\n'
            'ValueError: bad clip\nsecond line\n')
    assert error_line(text) == "ValueError: bad clip"


def limited_to_two_jobs(preset: str) -> list[str]:
    """Command-line overrides that cut ``preset``'s search to two jobs (they win over the
    preset's own ``hydra.sweeper.params``; Optuna: two trials)."""
    cfg = compose_config(Path("unused"), f"sweep={preset}")
    sweeper = cfg.hydra.sweeper
    if "optuna" in sweeper._target_.lower():
        return ["hydra.sweeper.n_trials=2"]
    params = list(sweeper.params.items())
    first_key, first_values = params[0]
    limited = [f"{first_key}={','.join(str(first_values).split(',')[:2])}"]
    return limited + [f"{key}={str(values).split(',')[0]}" for key, values in params[1:]]


@pytest.mark.parametrize("preset", PRESETS)
def test_sweep_preset_runs_end_to_end(preset: str, tmp_path: Path, monkeypatch):
    """Each preset of conf/sweep/ as a real multirun (Hydra's own launcher, in this process),
    cut to two tiny jobs: both succeed, each in its own folder under the default sweep
    directory, and the summary lists them."""
    from hydra.core.hydra_config import HydraConfig

    from vad.train import main

    limits = limited_to_two_jobs(preset)
    HydraConfig.instance().cfg = None  # as in a fresh process: no job has set Hydra's config
    monkeypatch.delenv("PROJECT_ROOT", raising=False)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", ["vad.train", "-m", f"sweep={preset}", *limits, *TINY])
    main()
    (tmp_path,) = (tmp_path / "outputs" / "train" / "multiruns").glob("*")
    rows = summary(tmp_path)
    assert [r["status"] for r in rows] == ["ok", "ok"], rows
    assert len({r["overrides"] for r in rows}) == 2  # two different points of the search
    for row in rows:
        metrics = json.loads((tmp_path / row["job"] / "metrics.json").read_text())
        assert 0 <= metrics["auc_micro"] <= 1
        assert float(row["auc_micro"]) == pytest.approx(metrics["auc_micro"])
    preset_cfg = OmegaConf.load(tmp_path / "0" / ".hydra" / "config.yaml")
    assert preset_cfg.optimized_metric == compose_config(
        tmp_path / "c", f"sweep={preset}").optimized_metric


def test_slurm_launcher_builds_an_array_job_from_the_config(tmp_path: Path, monkeypatch):
    """hydra/launcher=slurm, as submitit would submit it: the sbatch script is captured where
    submitit calls sbatch, so no cluster is needed."""
    import hydra
    from submitit.slurm.slurm import SlurmExecutor

    cfg = compose_config(tmp_path, "hydra/launcher=slurm", "trainer=gpu",
                         "hydra.launcher.partition=gpu-a100", "hydra.launcher.timeout_min=90",
                         "hydra.launcher.array_parallelism=2", f"hydra.sweep.dir={tmp_path}")
    launcher = hydra.utils.instantiate(cfg.hydra.launcher)
    launcher.setup(hydra_context=None, task_function=None, config=cfg)
    submitted = {}

    class Submitted(Exception):
        pass

    def capture(executor, command):
        submitted["sbatch"] = executor._make_submission_file_text(command, "uid")
        raise Submitted

    monkeypatch.setattr(SlurmExecutor, "_submit_command", capture)
    monkeypatch.setattr(SlurmExecutor, "affinity", classmethod(lambda cls: 1))  # "srun exists"
    with pytest.raises(Submitted):
        launcher.launch([["seed=1"], ["seed=2"], ["seed=3"]], initial_job_idx=0)
    script = submitted["sbatch"]
    for line in ("#SBATCH --partition=gpu-a100", "#SBATCH --time=90", "#SBATCH --gpus-per-node=1",
                 "#SBATCH --ntasks-per-node=1", "#SBATCH --cpus-per-task=8",
                 "#SBATCH --array=0-2%2", "#SBATCH --job-name=vad-train"):
        assert line in script, (line, script)
    assert str(tmp_path / ".submitit") in script


def test_joblib_launcher_composes_from_its_plugin(tmp_path: Path):
    cfg = compose_config(tmp_path, "hydra/launcher=joblib", "hydra.launcher.n_jobs=2")
    assert cfg.hydra.launcher._target_.endswith("JoblibLauncher") and cfg.hydra.launcher.n_jobs == 2


def test_optuna_preset_optimises_a_validation_metric_and_a_test_metric_warns(
        tmp_path: Path, caplog):
    cfg = compose_config(tmp_path, "sweep=desdnet_loss_weights_optuna")
    assert cfg.hydra.sweeper._target_.endswith("OptunaSweeper")
    assert cfg.optimized_metric == "val/loss_int" and cfg.hydra.sweeper.direction == "minimize"
    with caplog.at_level(logging.WARNING, logger="vad.utils.sweep"):
        SweepSummary().on_multirun_start(cfg)
        assert not caplog.records
        OmegaConf.update(cfg, "optimized_metric", "test/auc_micro")
        SweepSummary().on_multirun_start(cfg)
    assert "test labels" in caplog.text and "test/auc_micro" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="vad.utils.sweep"):  # a grid may report test/
        SweepSummary().on_multirun_start(compose_config(tmp_path, "sweep=desdnet_erasure"))
    assert not caplog.records


@pytest.mark.parametrize(("env", "key", "expected"), [
    ({"WANDB_MODE": "online"}, False, "online"), ({"WANDB_MODE": "disabled"}, True, "disabled"),
    ({"WANDB_MODE": "offline"}, True, "offline"), ({}, True, "online"), ({}, False, "offline"),
])
def test_wandb_mode_follows_wandb_mode_then_the_api_key(env, key, expected, monkeypatch, tmp_path):
    from vad.callbacks import wandb as wandb_run

    monkeypatch.delenv("WANDB_MODE", raising=False)
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.netrc from `wandb login`
    monkeypatch.setenv("NETRC", str(tmp_path / ".netrc"))
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    if key:
        (tmp_path / ".netrc").write_text("machine api.wandb.ai\n  login user\n  password k\n")
        (tmp_path / ".netrc").chmod(0o600)  # netrc refuses a password file others can read
    assert wandb_run.mode() == expected
    monkeypatch.setenv("WANDB_MODE", "onlin")
    with pytest.raises(ValueError, match="WANDB_MODE"):
        wandb_run.mode()


def test_wandb_offline_multirun_writes_one_grouped_run_per_job(tmp_path: Path):
    """logger=[csv,wandb] in a 2-job multirun with no network: two distinct offline runs, read
    back record by record, each with the sweep as group, the flattened config, the test metric,
    the plots as images and the score table."""
    result, tmp_path = run_sweep(tmp_path, "logger=[csv,wandb]", "seed=1,2", *TINY[:-1])
    assert result.returncode == 0, result.stderr[-3000:]
    assert "wandb sync" in result.stdout + result.stderr
    run_ids = set()
    for job in ("0", "1"):
        (log_file,) = (tmp_path / job / "wandb").glob("offline-run-*/run-*.wandb")
        records = list(wandb_records(log_file))
        (run,) = [r.run for r in records if r.WhichOneof("record_type") == "run"]
        run_ids.add(run.run_id)
        assert run.run_group == tmp_path.name and run.job_type == "train"
        config = {item.key: json.loads(item.value_json)
                  for r in records if r.WhichOneof("record_type") == "config"
                  for item in r.config.update}
        assert config["model.erasure.threshold_scale"] == 1.0 and config["seed"] == int(job) + 1
        history = {item.key or "/".join(item.nested_key): item.value_json
                   for r in records if r.WhichOneof("record_type") == "history"
                   for item in r.history.item}
        saved = json.loads((tmp_path / job / "metrics.json").read_text())
        assert json.loads(history["test/auc_micro"]) == pytest.approx(saved["auc_micro"])
        assert "train/loss_epoch" in history
        assert json.loads(history["test/plots/regularity/_type"]) == "images/separated"
        assert json.loads(history["test/plots/regularity/count"]) == 2  # one per test video
        assert json.loads(history["test/scores/nrows"]) == saved["num_frames"]
        assert json.loads(history["test/per_video_auc/nrows"]) == 2
        images = list((log_file.parent / "files" / "media" / "images").rglob("*.png"))
        assert len(images) == 3  # two regularity plots and the ROC
    assert len(run_ids) == 2
