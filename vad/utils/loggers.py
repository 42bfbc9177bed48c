"""Loggers as ``conf/logger/`` instantiates them."""

from __future__ import annotations

from lightning.pytorch.loggers import WandbLogger as LightningWandbLogger


class WandbLogger(LightningWandbLogger):
    """Lightning's WandbLogger without the ``anonymous=None`` it always passes to ``wandb.init``,
    which wandb (≥ 0.19) answers on every run with "The anonymous setting has no effect"."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if self._wandb_init.get("anonymous") is None:
            del self._wandb_init["anonymous"]
