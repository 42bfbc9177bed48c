"""`data=combined`: several datasets' records under one pipeline (paper 004's combined training),
and per-dataset metrics by re-testing one member's test split with `vad.evaluate`."""

from __future__ import annotations

from pathlib import Path

import hydra
import numpy as np
import pytest
from hydra.errors import InstantiationException
from omegaconf import OmegaConf

from tests.helpers import compose_config
from vad.evaluate import evaluate
from vad.train import train

# Two fake layouts: ped2 (frames, 2 train / 3 test videos, 12 anomalous frames) and
# ShanghaiTech (3 train / 3 test videos, 11 anomalous frames); see tests/data/make_fakes.py.
PED2_TEST, SHANGHAITECH_TEST = ["01", "02", "03"], ["01_0014", "01_0015", "02_0161"]


def _combined(tmp_path: Path, fakes_root: Path, *overrides: str):
    return compose_config(
        tmp_path, "data=combined", "data.train=[ped2,shanghaitech]",
        "data.test=[ped2,shanghaitech]", f"data.datasets.ped2.root={fakes_root / 'ped2/frames'}",
        f"data.datasets.shanghaitech.root={fakes_root / 'shanghaitech'}",
        "data.datasets.ped2.strict=null", "data.datasets.shanghaitech.strict=null",  # fakes
        "data.image_size=[32,32]", "data.num_workers=0", *overrides)


def test_records_concatenate_with_dataset_prefixes(tmp_path, fakes_root):
    dm = hydra.utils.instantiate(_combined(tmp_path, fakes_root).data, _convert_="object")
    assert list(dm.members) == ["ped1", "ped2", "avenue", "shanghaitech", "streetscene"]
    train = dm.records("train")
    assert [r.name for r in train][:2] == ["ped2/01", "ped2/02"] and len(train) == 2 + 3
    assert all(r.name.startswith("shanghaitech/") for r in train[2:])
    test = dm.records("test")
    assert [r.name for r in test] == ([f"ped2/{n}" for n in PED2_TEST]
                                      + [f"shanghaitech/{n}" for n in SHANGHAITECH_TEST])
    assert [int(r.labels.sum()) for r in test[:3]] == [
        int(r.labels.sum()) for r in dm.members["ped2"].records("test")]
    assert sum(int(r.labels.sum()) for r in test) == 12 + 11
    assert dm.label_source.startswith("ped2: gt .mat ranges")
    assert "; shanghaitech: per-video frame masks" in dm.label_source
    dm.setup("test")  # one store, decoded alike (grey 32x32) whatever the member's own colour
    assert dm.datasets["test"].store.frame_shape == (32, 32, 1)
    assert dm.datasets["test"].store.lengths.sum() == sum(r.num_frames for r in test)


def test_train_and_test_choose_members(tmp_path, fakes_root):
    cfg = _combined(tmp_path, fakes_root, "data.train=[shanghaitech]", "data.test=[ped2]")
    dm = hydra.utils.instantiate(cfg.data, _convert_="object")
    assert {r.name.split("/")[0] for r in dm.records("train")} == {"shanghaitech"}
    assert [r.name for r in dm.records("test")] == [f"ped2/{n}" for n in PED2_TEST]
    with pytest.raises(InstantiationException, match=r"data.test=\['subway'\].*\['ped1', 'ped2', "):
        hydra.utils.instantiate(_combined(tmp_path, fakes_root, "data.test=[subway]").data,
                                _convert_="object")


def test_train_combined_then_evaluate_one_member(tmp_path, fakes_root):
    cfg = _combined(tmp_path, fakes_root, "model=convstae", "model.clip.length=4",
                    "trainer.max_epochs=1", "eval.plots=false")
    metrics, _ = train(cfg)
    assert metrics["test/num_videos"] == 6 and 0 <= metrics["test/auc_micro"] <= 1
    (tmp_path / ".hydra").mkdir()
    OmegaConf.save({k: v for k, v in cfg.items() if k != "hydra"}, tmp_path / ".hydra/config.yaml")
    ckpt = next((tmp_path / "checkpoints").glob("epoch_*.ckpt"))
    one = compose_config(tmp_path / "ped2", f"ckpt_path={ckpt}", "data=combined",
                         "data.test=[ped2]", config_name="eval")
    ped2 = evaluate(one)
    assert ped2["test/num_videos"] == 3 and ped2["test/num_anomalous_frames"] == 12
    rows = np.genfromtxt(tmp_path / "ped2" / "scores.csv", delimiter=",", names=True, dtype=None,
                         encoding=None)
    assert {video.split("/")[0] for video in rows["video"]} == {"ped2"}
    assert 0 <= ped2["test/auc_micro"] <= 1


def test_topheavy_combined_recipe_pools_ped1_and_ped2_and_tests_ped2(tmp_path, fakes_root):
    """``experiment=topheavy_combined_cpu`` (issue 26): the reduced Top-Heavy recipe, trained on
    Ped1's and Ped2's training videos together and tested on Ped2's alone."""
    cfg = compose_config(tmp_path, "experiment=topheavy_combined_cpu",
                         f"data.datasets.ped1.root={fakes_root / 'ped1/frames'}",
                         f"data.datasets.ped2.root={fakes_root / 'ped2/frames'}",
                         "data.datasets.ped1.strict=null", "data.datasets.ped2.strict=null",
                         "data.image_size=[32,32]", "model.clip.length=4", "trainer.max_epochs=1",
                         "trainer.limit_train_batches=2", "eval.plots=false")
    assert cfg.data.image_size == [32, 32] and cfg.model.optimizer.lr == 1e-3  # the reduced recipe's
    dm = hydra.utils.instantiate(cfg.data, _convert_="object")
    assert [r.name.split("/")[0] for r in dm.records("train")] == ["ped1"] * 3 + ["ped2"] * 2
    assert [r.name for r in dm.records("test")] == [f"ped2/{n}" for n in PED2_TEST]
    metrics, _ = train(cfg)
    assert metrics["test/num_videos"] == 3 and 0 <= metrics["test/auc_micro"] <= 1
