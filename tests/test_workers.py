"""``data.num_workers``: ``auto`` (the default of every on-disk dataset) follows the machine."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import hydra
import pytest
import torch

from tests.helpers import compose_config
from vad.data.datamodule import resolve_workers
from vad.utils.validate import ConfigError, check_config


@pytest.mark.parametrize(("cores", "device", "expected"), [
    (1, "cuda", 0), (2, "cuda", 0), (3, "cuda", 2), (4, "cuda", 3), (5, "cuda", 4),
    (64, "cuda", 4), (2, "cpu", 0), (16, "cpu", 0),
])
def test_auto_workers_rule(cores: int, device: str, expected: int):
    assert resolve_workers("auto", device, cores) == expected
    assert resolve_workers(3, device, cores) == 3  # a number is taken as given


def fake_trainer(device: str):
    return SimpleNamespace(strategy=SimpleNamespace(root_device=torch.device(device)))


def test_ped2_default_is_auto_and_a_cpu_run_gets_no_workers(tmp_path: Path, fakes_root: Path,
                                                            monkeypatch):
    """Issue 22 item 7: ``model=convstae data=ped2`` on a 2-core machine (was: 2 workers
    competing with the training step); on a GPU machine of 8 cores, 4."""
    cfg = compose_config(tmp_path, "model=convstae", "data=ped2", "data.strict=null",
                         f"data.root={fakes_root / 'ped2' / 'frames'}", "data.image_size=[16,16]",
                         f"data.cache_dir={tmp_path / 'cache'}")
    assert cfg.data.num_workers == "auto"
    check_config(cfg)
    datamodule = hydra.utils.instantiate(cfg.data, _convert_="object")
    datamodule.prepare_data()
    datamodule.setup("fit")
    assert datamodule.train_dataloader().num_workers == 0  # no trainer: as on the CPU
    datamodule.trainer = fake_trainer("cpu")
    assert datamodule.train_dataloader().num_workers == 0
    monkeypatch.setattr("vad.data.datamodule.available_cores", lambda: 2)
    datamodule.trainer = fake_trainer("cuda")
    assert datamodule.train_dataloader().num_workers == 0
    monkeypatch.setattr("vad.data.datamodule.available_cores", lambda: 8)
    assert datamodule.train_dataloader().num_workers == 4
    datamodule.device_resident = True
    assert datamodule.train_dataloader().num_workers == 0


@pytest.mark.parametrize("value", ["-1", "autox", "1.5"])
def test_num_workers_must_be_auto_or_a_count(tmp_path: Path, value: str):
    cfg = compose_config(tmp_path, "data=ped2", f"data.num_workers={value}")
    with pytest.raises(ConfigError, match=r"data.num_workers=.*must be auto or an integer >= 0"):
        check_config(cfg)
