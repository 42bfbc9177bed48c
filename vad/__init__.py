"""vad: video anomaly detection experiments on Hydra + PyTorch Lightning."""

from omegaconf import OmegaConf

__version__ = "0.1.0"

# ${channels:${data.grayscale}} -> 1 or 3, so model configs follow the data's colour mode.
OmegaConf.register_new_resolver("channels", lambda grayscale: 1 if grayscale else 3, replace=True)
