"""What a run prints (issue 22 item 6): no line a user cannot act on, one line for a mistake.

Colour codes in piped output are checked where the command-line contract is
(``tests/test_bad_inputs.py``, `assert_one_message`).
"""

from __future__ import annotations

import logging
import sys
import warnings
from pathlib import Path

import pytest
import torch

from tests.helpers import compose_config, tiny_run
from vad.utils.validate import ConfigError

TINY = ["trainer.max_epochs=2", "+trainer.limit_train_batches=2", "data.num_train_videos=1",
        "data.num_test_videos=2", "data.frames_per_video=40", "data.size=32", "eval.plots=false",
        "~logger"]


class Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


@pytest.mark.parametrize("val_fraction", [0.1, 0.0])
def test_a_training_run_logs_no_noise(tmp_path: Path, val_fraction: float):
    """Two epochs with the default callbacks: no "`weights_only` was not set" per saved
    checkpoint, no "Total FLOPs: 0" (the layer summary is there, without FLOPs), and with
    ``data.val_fraction=0`` (the DESDnet recipes) no "Total length of `DataLoader` across ranks
    is zero"."""
    from vad.train import train

    handler = Collect()
    lightning_log = logging.getLogger("lightning")
    lightning_log.addHandler(handler)
    level, lightning_log.level = lightning_log.level, logging.INFO
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            train(compose_config(tmp_path, *TINY, f"data.val_fraction={val_fraction}"))
    finally:
        lightning_log.removeHandler(handler)
        lightning_log.setLevel(level)
    text = "\n".join(handler.lines + [str(w.message) for w in caught])
    assert (tmp_path / "checkpoints" / "last.ckpt").exists()
    assert "weights_only" not in text
    assert "Total params" in text and "flops" not in text.lower()
    assert "across ranks is zero" not in text


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
@pytest.mark.parametrize("name", ["cuda", "cuda:0"])
def test_detect_on_cuda_without_a_gpu_names_device_cpu(name: str):
    """``vad.detect device=cuda`` on a CPU machine: one line naming ``device=cpu`` (was:
    Lightning's MisconfigurationException about CUDAAccelerator)."""
    from vad.detect import device_of

    with pytest.raises(ConfigError, match=rf"^device={name} needs a GPU and this machine has "
                                          r"none: use device=cpu"):
        device_of(name)
    assert device_of("cpu").type == "cpu" and device_of("auto").type == "cpu"


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_train_on_cuda_without_a_gpu_names_the_value_given_and_trainer_cpu(tmp_path: Path):
    from vad.utils.validate import check_config

    cfg = compose_config(tmp_path, "trainer.accelerator=cuda")
    with pytest.raises(ConfigError, match=r"^trainer.accelerator=cuda needs a GPU .*trainer=cpu"):
        check_config(cfg)


def test_evaluate_says_where_it_wrote(tmp_path: Path, monkeypatch, capsys):
    """``python -m vad.evaluate ckpt_path=…`` as typed, from a fresh folder: its last line
    names the run folder, which holds metrics.json and scores.csv."""
    from hydra.core.hydra_config import HydraConfig

    from vad.evaluate import main

    ckpt = tiny_run(tmp_path / "train")
    HydraConfig.instance().cfg = None
    monkeypatch.delenv("PROJECT_ROOT", raising=False)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", ["vad.evaluate", f"ckpt_path={ckpt}", "eval.plots=false"])
    main()
    last = capsys.readouterr().out.strip().splitlines()[-1]
    (run,) = (tmp_path / "outputs" / "eval" / "runs").glob("*")
    assert last.endswith(f"outputs written to {run}")
    assert (run / "metrics.json").exists() and (run / "scores.csv").exists()
