"""vad: video anomaly detection experiments on Hydra + PyTorch Lightning."""

import logging
import warnings

from omegaconf import OmegaConf

from vad import resume

__version__ = "0.1.0"

# ${channels:${data.grayscale}} -> 1 or 3, so model configs follow the data's colour mode.
OmegaConf.register_new_resolver("channels", lambda grayscale: 1 if grayscale else 3, replace=True)
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
