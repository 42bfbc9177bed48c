"""``python -m vad.evaluate`` as the README gives it: a checkpoint re-tested on its dataset found
at another root."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tests.helpers import compose_config

TINY_PED2 = ["data=ped2", "data.strict=null", "data.image_size=[32,32]", "data.num_workers=0",
             "trainer.max_epochs=1", "+trainer.limit_train_batches=2",
             "+trainer.limit_val_batches=1", "test=false", "~logger", "eval.plots=false"]


@pytest.fixture(scope="module")
def moved_ped2_checkpoint(tmp_path_factory, fakes_root: Path) -> tuple[Path, Path]:
    """A checkpoint trained on a fake Ped2 whose folder was then moved: (checkpoint, new root)."""
    from vad.train import train

    tmp = tmp_path_factory.mktemp("moved")
    shutil.copytree(fakes_root / "ped2" / "frames", tmp / "old")
    train(compose_config(tmp / "run", f"data.root={tmp / 'old'}", *TINY_PED2))
    (tmp / "old").rename(tmp / "new")
    return tmp / "run" / "checkpoints" / "last.ckpt", tmp / "new"


@pytest.mark.parametrize("plus", ["", "+"])
def test_evaluate_takes_a_new_data_root_as_the_readme_writes_it(
        moved_ped2_checkpoint, tmp_path: Path, plus: str):
    """``vad.evaluate ckpt_path=<ckpt> data.root=<dir>`` (was: "Key 'root' is not in struct");
    ``+data.root=`` as well (was: accepted, then the recipe's old root used)."""
    from vad.evaluate import evaluate

    ckpt, new_root = moved_ped2_checkpoint
    cfg = compose_config(tmp_path, f"ckpt_path={ckpt}", f"{plus}data.root={new_root}",
                         config_name="eval")
    metrics = evaluate(cfg)
    assert cfg.data.root == str(new_root) and cfg.data._target_.endswith("Ped2DataModule")
    saved = json.loads((tmp_path / "metrics.json").read_text())
    assert saved["num_videos"] == metrics["test/num_videos"] > 0
    assert (tmp_path / "scores.csv").exists()


def test_evaluate_without_the_recipe_drops_the_empty_root_slot(tmp_path: Path):
    """``use_run_config=false`` on the synthetic default: conf/eval.yaml's ``data.root: null``
    slot is not handed to a data module that has no such argument."""
    from tests.helpers import tiny_run
    from vad.evaluate import evaluate

    ckpt = tiny_run(tmp_path / "run")
    cfg = compose_config(tmp_path / "eval", f"ckpt_path={ckpt}", "use_run_config=false",
                         "data.num_train_videos=1", "data.num_test_videos=2",
                         "data.frames_per_video=40", "data.size=32", "eval.plots=false",
                         config_name="eval")
    metrics = evaluate(cfg)
    assert "root" not in cfg.data and metrics["test/num_videos"] == 2
