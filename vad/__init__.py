"""vad: video anomaly detection experiments on Hydra + PyTorch Lightning."""

import logging
import os
import secrets
import warnings

from omegaconf import OmegaConf

from vad import resume

__version__ = "0.1.0"

# ${channels:${data.grayscale}} -> 1 or 3, so model configs follow the data's colour mode.
OmegaConf.register_new_resolver("channels", lambda grayscale: 1 if grayscale else 3, replace=True)
# ${flow_for:${oc.select:model.training,plain}} -> {} (vad.data.flow.FlowConfig defaults) for
# the methods trained on optical flow (model.training=distill|joint), else null: data configs
# follow the method as they do for its clip shape.
OmegaConf.register_new_resolver(
    "flow_for", lambda training: {} if training in ("distill", "joint") else None, replace=True)
# ${run_id:} -> six random hex digits, drawn once per config (cached, and Hydra copies the cache
# into every job of a sweep): run and sweep folders of commands started in the same second
# (a job array, a script) do not collide.
OmegaConf.register_new_resolver("run_id", lambda: secrets.token_hex(3), use_cache=True,
                                replace=True)


def _cwd() -> str:
    """The folder the command was started in: Hydra's ``runtime.cwd`` inside a job, else the
    process's (a multirun's sweeper resolves ``hydra.sweep.dir`` before any job has set Hydra's
    config, so ``${hydra:runtime.cwd}`` cannot be used in ``paths.root_dir``)."""
    from hydra.core.hydra_config import HydraConfig

    if HydraConfig.initialized():
        cwd = HydraConfig.get().runtime.get("cwd")
        if cwd:
            return str(cwd)
    return os.getcwd()


# conf/paths/default.yaml: root_dir = $PROJECT_ROOT or ${cwd:}.
OmegaConf.register_new_resolver("cwd", _cwd, replace=True)


def _wandb_mode() -> str:
    from vad.callbacks.wandb import mode

    return mode()


def _wandb_group(run_mode, sweep_dir, experiment, task_name) -> str:
    from vad.callbacks.wandb import group

    return group(run_mode, sweep_dir, experiment, task_name)


# conf/logger/wandb.yaml: mode from WANDB_MODE or an API key; group = sweep, experiment or task.
OmegaConf.register_new_resolver("wandb_mode", _wandb_mode, replace=True)
OmegaConf.register_new_resolver("wandb_group", _wandb_group, replace=True)
# Resuming in the interrupted run's folder, with its W&B run id (vad/resume.py).
OmegaConf.register_new_resolver("run_dir", resume.run_dir, replace=True)
OmegaConf.register_new_resolver("wandb_run_id", resume.wandb_run_id, replace=True)


class _NoAdvertisements(logging.Filter):
    """Drops Lightning's "💡 Tip: try installing litlogger/litmodels" lines from every run."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("💡 Tip")


for _name in ("lightning.pytorch.utilities.rank_zero", "lightning.fabric.utilities.rank_zero"):
    logging.getLogger(_name).addFilter(_NoAdvertisements())
# Raised inside Lightning's own pytree helpers on every run; nothing a user can act on.
warnings.filterwarnings("ignore", message=r".*LeafSpec.* is deprecated", category=FutureWarning)
