"""Checkpoints that carry their recipe: what a trained model needs to be used anywhere.

Every checkpoint `vad.train` writes holds, under ``checkpoint["vad_recipe"]``:

* ``config``: the resolved ``model``, ``data`` and ``eval`` config sections of the run;
* ``preprocessing``: what a frame goes through before the model sees it: ``image_size`` (the
  size the model was trained at, even where the data config kept the source size), ``grayscale``,
  ``value_range``, the ``clip`` shape (length, target, dilation, future offset),
  ``test_window_step`` and ``flow`` (method state such as latentpred's background frame is in the
  state dict already);
* ``calibration``: the raw-score threshold for `vad.detect`, set at the end of training from
  normal footage (see below; None only in a checkpoint written during training, before ``fit``
  ended, or by a run with ``false_alarm_rate=null``);
* ``vad_version``, ``commit``, ``versions`` (the packages that shape a result,
  `vad.results.package_versions`) and ``format`` (`RECIPE_FORMAT`).

So ``python -m vad.evaluate ckpt_path=<a lone .ckpt>`` and ``python -m vad.detect`` need nothing
else. Checkpoints written before recipes existed fall back to ``<run>/.hydra/config.yaml`` next
to their ``checkpoints/`` folder (`load_recipe`; no preprocessing or calibration then).

Threshold calibration (no test labels): after ``fit``, `RecipeCallback` scores normal footage
with the weights of each saved checkpoint: the held-out validation clips (the normal end of
every training video, `vad.data.datamodule`), or, in a run without any (``data.val_fraction=0``,
the DESDnet recipes), the training videos themselves, every window in order
(`VideoDataModule.calibration_clips`). It aggregates the clip scores per frame as the evaluation
does (``eval.window_aggregation``) and stores the frames' raw scores, their median, the
(1 − ``false_alarm_rate``) quantile as ``threshold`` and where the frames came from
(``source``: ``"validation clips"`` or ``"training clips"``): on normal footage like the training
videos about that fraction of frames exceeds it. Frames the model was trained on score lower than
new normal footage, so a threshold from ``"training clips"`` is lower (more false alarms) than one
from held-out frames; `vad.detect` says which it uses.

Loading is weights-only everywhere (`load_checkpoint_file`): tensors, containers, numbers and
strings, and the globals of `SAFE_GLOBALS` (none today: every checkpoint `vad.train` writes holds
plain data only), never arbitrary pickled objects, which could run code while being read. The
commands read a checkpoint themselves with it, and the Trainers `vad.train`/`vad.evaluate` build
read ``ckpt_path=`` (resume, test) through `SafeCheckpointIO`; a file holding anything else
fails with `UnsafeCheckpointError`, one line naming the objects.

`load_recipe` and `load_model` are the functions to call; a checkpoint of another method or of
an incompatible recipe format fails with `RecipeError` (one line naming both).
"""

from __future__ import annotations

import contextlib
import copy
import logging
import os
from dataclasses import asdict
from pathlib import Path

import lightning as L
import numpy as np
import torch
from hydra.utils import get_class, instantiate
from lightning.pytorch.plugins.io import TorchCheckpointIO
from omegaconf import DictConfig, OmegaConf, open_dict

import vad
from vad.evaluation.scores import aggregate_window_scores
from vad.results import atomic_path, git_commit, package_versions

log = logging.getLogger(__name__)

RECIPE_KEY = "vad_recipe"
# Bump when a recipe, or what a method keeps in its state dict, changes so that older
# checkpoints can no longer be read correctly.
RECIPE_FORMAT = 1
CONFIG_SECTIONS = ("model", "data", "eval")


# Globals (classes, functions) a checkpoint may hold beyond torch's weights-only set (tensors,
# containers, numbers, strings): none, since vad.train writes plain data only (OmegaConf objects
# become dicts, NumPy RNG keys tensors: `vad.utils.rng`). Add here, never load with
# weights_only set to False.
SAFE_GLOBALS: tuple = ()


class RecipeError(ValueError):
    """A checkpoint that cannot be used as asked (another method, another format, no recipe)."""


class UnsafeCheckpointError(RecipeError):
    """A checkpoint holding pickled objects outside the weights-only allow-list."""


# -- writing ----------------------------------------------------------------------------------
def preprocessing_of(datamodule) -> dict:
    """The preprocessing of a `VideoDataModule` whose training split is set up."""
    flow = datamodule.flow
    return {
        "image_size": [int(v) for v in datamodule.datasets["train"].frame_size],
        "grayscale": bool(datamodule.grayscale),
        "value_range": [float(v) for v in datamodule.value_range],
        "clip": asdict(datamodule.spec),
        "test_window_step": int(datamodule.test_window_step),
        "flow": None if flow is None else {**asdict(flow), "splits": list(flow.splits)},
    }


def calibration_of(scores: np.ndarray, false_alarm_rate: float,
                   source: str = "validation clips") -> dict:
    """The raw-score threshold exceeded by ``false_alarm_rate`` of the normal ``scores``, which
    come from ``source`` (``"validation clips"`` or ``"training clips"``)."""
    if not 0 < false_alarm_rate < 1:
        raise ValueError(f"false_alarm_rate must be in (0, 1), got {false_alarm_rate}")
    return {"false_alarm_rate": float(false_alarm_rate),
            "threshold": float(np.quantile(scores, 1 - false_alarm_rate)),
            "median": float(np.median(scores)),
            "num_frames": len(scores),
            "source": source,
            "scores": [float(s) for s in scores]}


class RecipeCallback(L.Callback):
    """Writes the recipe into every checkpoint and, after ``fit``, calibrates the threshold of
    the checkpoints saved (see the module docstring). `vad.train` appends it unconditionally.

    Args:
        config: The run's composed config (the ``model``, ``data`` and ``eval`` sections are kept,
            resolved).
        false_alarm_rate: Target fraction of normal validation frames above the threshold; None
            skips calibration.
    """

    def __init__(self, config: DictConfig, false_alarm_rate: float | None = 0.01) -> None:
        self.config = {s: OmegaConf.to_container(config[s], resolve=True)
                       for s in CONFIG_SECTIONS if s in config}
        self.false_alarm_rate = false_alarm_rate

    def recipe(self, datamodule, module=None) -> dict:
        """The recipe; the model keys in ``module.initial_weights`` (checkpoints that initialised
        a sub-network) are emptied: the checkpoint holds those weights itself, and a checkpoint
        copied elsewhere must not need the files it started from."""
        config = copy.deepcopy(self.config)
        for key in getattr(module, "initial_weights", ()):
            *parents, leaf = key.split(".")
            section = config.get("model", {})
            for name in parents:
                section = section.get(name) or {}
            if leaf in section:
                section[leaf] = None
        return {"format": RECIPE_FORMAT, "vad_version": vad.__version__, "commit": git_commit(),
                "versions": package_versions(), "config": config,
                "preprocessing": preprocessing_of(datamodule), "calibration": None}

    def on_save_checkpoint(self, trainer, pl_module, checkpoint: dict) -> None:
        checkpoint[RECIPE_KEY] = self.recipe(trainer.datamodule, pl_module)

    def on_fit_end(self, trainer, pl_module) -> None:
        if self.false_alarm_rate is None:
            return
        paths = sorted({Path(p) for cb in trainer.checkpoint_callbacks
                        for p in (getattr(cb, "best_model_path", ""),
                                  getattr(cb, "last_model_path", "")) if p})
        if not paths:
            return
        datamodule = trainer.datamodule
        source, dataset = datamodule.calibration_clips()
        if source == "training clips":
            log.info("no validation clips (data.val_fraction=0): the threshold is calibrated on "
                     "the training clips' scores")
        final = {k: v.clone() for k, v in pl_module.state_dict().items()}
        how = self.config.get("eval", {}).get("window_aggregation", "mean")
        scores_at: dict[tuple[int, int], np.ndarray] = {}  # one pass per distinct set of weights
        for path in paths:
            checkpoint = load_checkpoint_file(path)
            # The best checkpoint and last.ckpt often hold the same step (always when nothing
            # is monitored): the same weights, so the same scores.
            step = (checkpoint.get("epoch", -1), checkpoint.get("global_step", -1))
            if step not in scores_at:
                pl_module.load_state_dict(checkpoint["state_dict"])
                scores_at[step] = normal_scores(pl_module, datamodule, dataset, how)
            scores = scores_at[step]
            if trainer.is_global_zero:
                checkpoint[RECIPE_KEY]["calibration"] = calibration_of(
                    scores, self.false_alarm_rate, source)
                save_atomic(checkpoint, path)
                log.info("%s: threshold %.6g (%.1f%% false alarms on %d frames of the %s)",
                         path.name, checkpoint[RECIPE_KEY]["calibration"]["threshold"],
                         100 * self.false_alarm_rate, len(scores), source)
        pl_module.load_state_dict(final)
        trainer.strategy.barrier()


@torch.no_grad()
def normal_scores(module, datamodule, dataset, window_aggregation: str = "mean") -> np.ndarray:
    """Raw per-frame scores of ``dataset``'s clips (normal frames: `calibration_clips`),
    aggregated over the clips that score each frame as the evaluation does."""
    rows = []
    for batch in module.training_batches(loader=datamodule.eval_loader(dataset)):
        n_targets = batch.frames.shape[1]
        rows.append(torch.stack([batch.video.repeat_interleave(n_targets).double().cpu(),
                                 batch.frames.reshape(-1).double().cpu(),
                                 module.score(batch).float().reshape(-1).double().cpu()], 1))
    rows = torch.cat(rows).numpy()
    lengths = [int(n) for n in dataset.store.lengths]
    per_video = aggregate_window_scores(rows[:, 0].astype(int), rows[:, 1].astype(int),
                                        rows[:, 2], lengths, window_aggregation)
    scores = np.concatenate(per_video)
    return scores[~np.isnan(scores)]


def save_atomic(checkpoint: dict, path: Path) -> None:
    """``torch.save`` through a temporary file and a rename: never a half-written checkpoint."""
    with atomic_path(path) as tmp:
        torch.save(checkpoint, tmp)


# -- reading ----------------------------------------------------------------------------------
def unsafe_globals(path: Path) -> list[str]:
    """The globals a checkpoint file would import that the weights-only loader refuses (read
    from the pickle without running it; empty when the file cannot be scanned)."""
    try:
        found = torch.serialization.get_unsafe_globals_in_checkpoint(path)
    except Exception:  # not a zip checkpoint: the load itself says what is wrong
        return []
    allowed = {f"{g.__module__}.{g.__qualname__}" for g in SAFE_GLOBALS}
    return [name for name in found if name not in allowed]


def load_checkpoint_file(ckpt_path: str | os.PathLike, map_location="cpu") -> dict:
    """``torch.load`` with ``weights_only=True`` and `SAFE_GLOBALS`: the one way any part of vad
    reads a checkpoint. A file that holds other pickled objects (code may run when they are
    unpickled) fails with `UnsafeCheckpointError`, naming them, before anything is unpickled;
    other unreadable files with `RecipeError`."""
    path = Path(ckpt_path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path} (set ckpt_path=...)")
    refused = unsafe_globals(path)
    if refused:
        raise UnsafeCheckpointError(
            f"refusing to load {path}: it holds pickled Python objects outside the weights-only "
            f"allow-list ({', '.join(refused[:5])}), which could run code when loaded; "
            f"checkpoints written by vad.train hold none, so this file was made or changed "
            f"elsewhere")
    try:
        allowed = (torch.serialization.safe_globals(list(SAFE_GLOBALS)) if SAFE_GLOBALS
                   else contextlib.nullcontext())  # (safe_globals is torch >= 2.5)
        with allowed:
            return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # pickle, zip and torch errors all mean "not a checkpoint we read"
        message = str(err).splitlines()[0] if str(err) else ""
        kind = UnsafeCheckpointError if "Weights only load failed" in str(err) else RecipeError
        raise kind(f"cannot read checkpoint {path}: {type(err).__name__}: {message}") from err


class SafeCheckpointIO(TorchCheckpointIO):
    """Lightning's checkpoint IO, loading through `load_checkpoint_file` (weights only, whatever
    the caller asks): the Trainer plugin with which ``fit(ckpt_path=...)`` (resume) and
    ``test(ckpt_path=...)`` read a checkpoint. Saving is unchanged."""

    def load_checkpoint(self, path, map_location=None, weights_only=None) -> dict:
        return load_checkpoint_file(path, "cpu" if map_location is None else map_location)


def read_checkpoint(ckpt_path: str | os.PathLike) -> dict:
    """The checkpoint file as a dict (on the CPU); a clear error when it is missing or not one."""
    path = Path(ckpt_path)
    checkpoint = load_checkpoint_file(path)
    if not isinstance(checkpoint, dict) or "state_dict" not in checkpoint:
        raise RecipeError(f"{path} is not a Lightning checkpoint (no state_dict)")
    return checkpoint


def load_submodule(module: torch.nn.Module, ckpt_path: str | os.PathLike, prefix: str) -> None:
    """Load the weights stored under ``<prefix>.`` in a checkpoint into ``module`` (strictly):
    one network of a method trained earlier, e.g. Top-Heavy's flow teacher or STD-AE's
    phase-1 autoencoders."""
    state = read_checkpoint(ckpt_path)["state_dict"]
    weights = {k.removeprefix(f"{prefix}."): v for k, v in state.items()
               if k.startswith(f"{prefix}.")}
    if not weights:
        raise RecipeError(f"{ckpt_path} holds no '{prefix}.*' weights (it has "
                          f"{sorted({k.split('.')[0] for k in state})}): pick a checkpoint of "
                          f"the same method")
    try:
        module.load_state_dict(weights)
    except RuntimeError as err:
        raise RecipeError(f"the '{prefix}' network in {ckpt_path} does not fit this one (trained "
                          f"with another model.net?): {str(err).splitlines()[0]}") from err


def recipe_of(checkpoint: dict, ckpt_path: str | os.PathLike) -> DictConfig:
    """The checkpoint's recipe, checked for format; for checkpoints older than recipes, the
    ``model``/``data``/``eval`` of ``<run>/.hydra/config.yaml`` (``preprocessing`` and
    ``calibration`` None)."""
    recipe = checkpoint.get(RECIPE_KEY)
    if recipe is None:
        run_config = Path(ckpt_path).resolve().parent.parent / ".hydra" / "config.yaml"
        if not run_config.exists():
            raise RecipeError(f"{ckpt_path} carries no recipe (written before vad stored one) "
                              f"and has no run config at {run_config}; pass model=, data= and "
                              f"use_run_config=false, or retrain")
        trained = OmegaConf.load(run_config)
        log.info("%s has no recipe: model, data and eval taken from %s", ckpt_path, run_config)
        return OmegaConf.create({"format": None, "vad_version": None, "commit": None,
                                 "config": {s: trained[s] for s in CONFIG_SECTIONS if s in trained},
                                 "preprocessing": None, "calibration": None})
    if recipe.get("format") != RECIPE_FORMAT:
        raise RecipeError(f"{ckpt_path} was written by vad {recipe.get('vad_version')} (recipe "
                          f"format {recipe.get('format')}); this is vad {vad.__version__} (format "
                          f"{RECIPE_FORMAT}): use that version, or retrain")
    return OmegaConf.create(recipe)


def load_recipe(ckpt_path: str | os.PathLike) -> DictConfig:
    """The recipe of the checkpoint at ``ckpt_path`` (see `recipe_of`)."""
    return recipe_of(read_checkpoint(ckpt_path), ckpt_path)


def method_name(target: str) -> str:
    """``vad.models.convstae.ConvSTAEModule`` → ``convstae`` (the ``model=`` option)."""
    return target.split(".")[-2] if target.count(".") >= 2 else target


def check_method(checkpoint: dict, target: str, ckpt_path: str | os.PathLike = "checkpoint"
                 ) -> None:
    """Raise `RecipeError` unless the checkpoint was trained with the class ``target``
    (checkpoints without a recipe are not checked)."""
    recipe = checkpoint.get(RECIPE_KEY)
    if recipe is None:
        return
    trained = recipe["config"]["model"]["_target_"]
    if trained != target:
        raise RecipeError(f"{ckpt_path} holds a {method_name(trained)} model ({trained}), not "
                          f"{method_name(target)} ({target}): drop model={method_name(target)}, "
                          f"or pick a {method_name(target)} checkpoint")


def load_model(ckpt_path: str | os.PathLike) -> tuple[L.LightningModule, DictConfig]:
    """``(module, recipe)``: the checkpoint's method, built from its recipe, with its weights and
    method state, in eval mode on the CPU."""
    checkpoint = read_checkpoint(ckpt_path)
    recipe = recipe_of(checkpoint, ckpt_path)
    model_config = recipe.config.model
    get_class(model_config._target_)  # a clear ImportError for a method this version lacks
    module = instantiate(model_config, _convert_="object")
    module.on_load_checkpoint(checkpoint)
    module.load_state_dict(checkpoint["state_dict"])
    return module.eval(), recipe


def recipe_datamodule(recipe: DictConfig, root: str | None = None):
    """The DataModule a checkpoint was trained with (its recipe's data config and clip), reading
    from ``root`` when the data lives elsewhere now."""
    data_config = copy.deepcopy(recipe.config.data)
    if root:
        with open_dict(data_config):
            data_config.root = root
    return instantiate(data_config, clip=recipe.config.model.clip, _convert_="object")
