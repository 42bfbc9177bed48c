"""What a user gets for each mistake of issue 13: one message that names the file or key and the
fix, before any training step.

The command-line contract (exit status 1, the message once, no traceback on the console, the
traceback in ``<run>/error.txt``) is checked through real subprocesses of ``vad.train`` and
``vad.evaluate``; the other cases run the same ``train`` in-process (a subprocess would only add
its start-up time) and check the message and the failed run record.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from tests.helpers import compose_config, run_vad
from vad.train import train
from vad.utils.validate import ConfigError

NO_TRAINING = ["trainer.max_epochs=1", "eval.plots=false", "~logger"]


def assert_one_message(result, run_dir: Path, *expected: str) -> None:
    output = result.stdout + result.stderr
    assert result.returncode == 1, output[-3000:]
    assert "Traceback" not in output, output[-3000:]
    assert "\x1b[" not in output, output[-3000:]  # piped: colorlog writes no colour codes
    for text in expected:
        assert output.count(text) == 1, (text, output[-3000:])
    if run_dir is not None:
        assert "Traceback" in (run_dir / "error.txt").read_text()
        assert json.loads((run_dir / "run.json").read_text())["status"] == "failed"


# -- through the command line ---------------------------------------------------------------------
@pytest.mark.parametrize("overrides, expected", [
    (["+model.lamda=1"], ["model.lamda is not an option of vad.models.desdnet.DESDnetModule; "
                          "its options are: channels_last, clip, compile, erasure, loss"]),
    (["model.optimizer.lr=-0.01"], ["model.optimizer.lr=-0.01: must be a number > 0"]),
], ids=["unknown-key", "negative-lr"])
def test_train_fails_with_one_message(tmp_path: Path, overrides, expected):
    result = run_vad("train", *overrides, *NO_TRAINING, f"hydra.run.dir={tmp_path / 'run'}",
                     cwd=tmp_path)
    assert_one_message(result, tmp_path / "run", *expected)
    assert not (tmp_path / "run" / "checkpoints").exists()  # failed before anything was built


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_a_gpu_recipe_without_a_gpu_names_the_cpu_recipe(tmp_path: Path):
    result = run_vad("train", "experiment=desdnet_ped2", f"hydra.run.dir={tmp_path / 'run'}",
                     cwd=tmp_path)
    assert_one_message(result, tmp_path / "run", "experiment=desdnet_ped2 needs a GPU",
                       "experiment=desdnet_ped2_cpu", "trainer=cpu")


def test_an_unknown_group_option_lists_the_options(tmp_path: Path):
    result = run_vad("train", "model=desdnetx", cwd=tmp_path)
    assert_one_message(result, None, "Could not find 'model/desdnetx'")
    assert "desdnet" in result.stderr and "convstae" in result.stderr


def test_evaluate_fails_with_one_message(tmp_path: Path):
    result = run_vad("evaluate", f"ckpt_path={tmp_path / 'none.ckpt'}",
                     f"hydra.run.dir={tmp_path / 'run'}", cwd=tmp_path)
    assert_one_message(result, tmp_path / "run", f"checkpoint not found: {tmp_path / 'none.ckpt'}")


# -- the same `train`, in-process -----------------------------------------------------------------
def _break(case: str, root: Path) -> None:
    """Damage a copy of the fake Ped2 (frames layout) at ``root`` as ``case`` says."""
    if case == "truncated-jpeg":
        bad = root / "testing/frames/02/004.jpg"
        bad.write_bytes(bad.read_bytes()[:-200])
    elif case == "empty-split":
        for video in (root / "testing/frames").iterdir():
            shutil.rmtree(video)
    elif case == "label-count":
        (root / "testing/frames/04").mkdir()
        shutil.copy(root / "testing/frames/01/000.jpg", root / "testing/frames/04/000.jpg")


def _expected_in_process(case: str, tmp_path: Path, fakes_root: Path) -> tuple[list[str], str]:
    """(overrides, a regex of the message) for ``case``."""
    ped2 = ["data=ped2", "data.image_size=[16,16]", "data.num_workers=0", "data.strict=null",
            f"data.cache_dir={tmp_path / 'cache'}"]
    copy = tmp_path / "ped2"
    if case in ("truncated-jpeg", "empty-split", "label-count"):
        shutil.copytree(fakes_root / "ped2/frames", copy)
        _break(case, copy)
    if case == "truncated-mp4":
        shutil.copytree(fakes_root / "ped2/videos", copy)
        video = copy / "training/videos/02.mp4"
        video.write_bytes(video.read_bytes()[: int(video.stat().st_size * 0.8)])
    return {
        "missing-root": (["data=ped2", f"data.root={tmp_path / 'nope'}"],
                         r"does not exist.*docs/datasets.md#ucsd-ped1-and-ped2"),
        "empty-folder": (["data=ped2", f"data.root={tmp_path}"],
                         r"holds none of the layouts tried.*data.root"),
        "wrong-layout": (["data=ped2", f"data.root={fakes_root / 'avenue/original'}"],
                         r"holds none of the layouts tried"),
        "forced-layout": (["data=ped2", "data.layout=avenue", f"data.root={copy}"],
                          r"unknown layout 'avenue'.*data.layout=auto"),
        "truncated-jpeg": ([*ped2, f"data.root={copy}"], rf"{copy}/testing/frames/02/004.jpg"),
        "truncated-mp4": ([*ped2, f"data.root={copy}"],
                          rf"{copy}/training/videos/02.mp4 is truncated"),
        "empty-split": ([*ped2, f"data.root={copy}"], r"test"),
        "label-count": ([*ped2, f"data.root={copy}"], r"labels for 3 videos but the test split "
                                                      r"has 4"),
        "not-the-benchmark": (["data=ped2", f"data.root={fakes_root / 'ped2/frames'}"],
                              r"not the full benchmark: 2 train videos, the benchmark has 16"),
        "svdd-nu": (["model.svdd.nu=1.5"], r"model.svdd.nu=1.5: must be a number in \(0, 1\]"),
        "clip-length": (["model.clip.length=0"], r"model.clip.length=0: must be an integer >= 1"),
        "image-size": (["data=ped2", "data.image_size=[60,60]"],
                       r"data.image_size=\[60, 60\]: DESDnetModule's network needs frame sizes "
                       r"divisible by 8, e.g. data.image_size=\[64,64\]"),
        "unknown-section-key": (["+model.svdd.nuu=1"],
                                r"model.svdd.nuu is not an option of SVDDConfig; its options are:"
                                r" bias_free, center_eps"),
    }[case]


IN_PROCESS = ["missing-root", "empty-folder", "wrong-layout", "forced-layout", "truncated-jpeg",
              "truncated-mp4", "empty-split", "label-count", "not-the-benchmark", "svdd-nu",
              "clip-length", "image-size", "unknown-section-key"]


@pytest.mark.parametrize("case", IN_PROCESS)
def test_bad_input_fails_before_training_naming_the_fix(case, tmp_path, fakes_root):
    overrides, message = _expected_in_process(case, tmp_path, fakes_root)
    run = tmp_path / "run"
    cfg = compose_config(run, "model=desdnet", *overrides, *NO_TRAINING)
    with pytest.raises(Exception, match="(?s)" + message) as error:  # across lines
        train(cfg)
    assert "Traceback" in (run / "error.txt").read_text()
    assert json.loads((run / "run.json").read_text())["status"] == "failed"
    assert not list(run.glob("checkpoints/*.ckpt"))  # no training step ran
    assert not isinstance(error.value, TypeError)  # never a raw TypeError from a constructor


WINDOW_METHODS = ["topheavy", "ae3d", "latentpred", "stdae"]


@pytest.mark.parametrize("model", WINDOW_METHODS)
def test_a_frame_size_the_network_cannot_take_names_the_key_before_building(model, tmp_path):
    """Issue 22 item 5 (and issue 24): ``model=<method> data.image_size=[60,60]`` fails in the
    config check, naming ``data.image_size`` and the multiple, as DESDnet's does; no trainer,
    callback or checkpoint exists yet (was: a raw ValueError from a forward pass, STD-AE's after
    training had started)."""
    run = tmp_path / "run"
    cfg = compose_config(run, f"model={model}", "data.image_size=[60,60]", *NO_TRAINING)
    with pytest.raises(ConfigError, match=r"^data.image_size=\[60, 60\]: \w+Module's network "
                                          r"needs frame sizes divisible by 8, e.g. "
                                          r"data.image_size=\[64,64\]$"):
        train(cfg)
    assert json.loads((run / "run.json").read_text())["status"] == "failed"
    assert not (run / "checkpoints").exists()


@pytest.mark.parametrize("model", ["topheavy", "ae3d"])
def test_a_clip_length_the_3d_network_cannot_take_names_the_key(model, tmp_path):
    cfg = compose_config(tmp_path, f"model={model}", "model.clip.length=15", *NO_TRAINING)
    with pytest.raises(ConfigError, match=r"^model.clip.length=15: \w+Module's network needs a "
                                          r"clip length divisible by 2, e.g. "
                                          r"model.clip.length=16$"):
        train(cfg)


def test_convstae_takes_any_frame_size():
    """ConvSTAE's transposed convolutions are given each encoder level's size: no multiple to
    check (a 60x60 and a 37x53 clip come back at their own size)."""
    from vad.models.convstae import ConvSTAE

    net = ConvSTAE(encoder_channels=(8, 4, 4), lstm_channels=(4, 4, 4))
    for size in ((60, 60), (37, 53)):
        assert net(torch.rand(1, 1, 3, *size)).shape == (1, 1, 3, *size)
