"""DDP on the CPU (gloo): two processes evaluate as one and share DESDnet's state."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import torch

from tests.helpers import REPO, compose_config
from vad.evaluate import evaluate

# DESDnet, 2 epochs (masks are written in epoch 1, the centre is set at its end), batch-1
# evaluation so that every clip's score is computed alike however the clips are split.
TINY = ["trainer.max_epochs=2", "+trainer.limit_train_batches=2", "+trainer.limit_val_batches=1",
        "data.num_train_videos=1", "data.num_test_videos=3", "data.frames_per_video=41",
        "data.eval_batch_size=1", "eval.plots=false"]
CPU_DDP = ["trainer=ddp", "trainer.accelerator=cpu", "trainer.devices=2",
           "trainer.precision=32-true", "trainer.sync_batchnorm=false"]


def test_two_gloo_processes_evaluate_like_one_and_share_desdnet_state(tmp_path: Path):
    """``python -m vad.train trainer=ddp`` on 2 CPU processes: its test of the best checkpoint
    (111 clips: the distributed sampler pads rank 1 with a duplicate) writes the same metrics.json and
    scores.csv as one process testing that checkpoint; the mask bank, centre and radius are
    identical on both ranks after fitting."""
    run_dir = tmp_path / "ddp"
    result = subprocess.run(
        [sys.executable, "-m", "vad.train", *CPU_DDP, *TINY, "~logger",
         "+callbacks.rank_state._target_=tests.helpers.RankState",
         f"+callbacks.rank_state.path={tmp_path / 'state'}", f"hydra.run.dir={run_dir}"],
        cwd=REPO, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]

    ranks = [torch.load(tmp_path / "state" / f"rank{r}.pt") for r in (0, 1)]
    for key in ("masks", "center", "radius"):
        assert torch.equal(ranks[0][key], ranks[1][key]), key
    assert ranks[0]["center"].abs().sum() > 0  # c was set after epoch 1
    assert (ranks[0]["masks"] != 255).any()     # some pixels erased, not the all-ones start

    ddp = json.loads((run_dir / "metrics.json").read_text())
    single_dir = tmp_path / "one"
    evaluate(compose_config(single_dir, f"ckpt_path={ddp['checkpoint']}", config_name="eval"))
    single = json.loads((single_dir / "metrics.json").read_text())
    # 3 x 37 = 111 test clips (T = 5): the sampler gives rank 1 clip 0 again as padding, and
    # each frame must still count once.
    assert ddp["num_frames"] == single["num_frames"] == 3 * (41 - 4)
    differ = {"inference_fps", "checkpoint_kind"}  # timing; "best (val/loss)" vs "given"
    assert ({k: v for k, v in ddp.items() if k not in differ}
            == {k: v for k, v in single.items() if k not in differ})
    assert ddp["checkpoint_kind"] == "best (val/loss)"
    assert (run_dir / "scores.csv").read_bytes() == (single_dir / "scores.csv").read_bytes()
