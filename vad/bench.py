"""Training and inference throughput per method: ``python -m vad.bench``.

    python -m vad.bench                                   # every method, synthetic data, CPU
    python -m vad.bench --models desdnet --set data=ped2 --set data.root=/data/ped2 \
        --set trainer=gpu --set model.compile=true        # one method on real data, a GPU

For each method it composes the same config as ``python -m vad.train model=<name> <overrides>``
and measures, with a real Lightning ``Trainer`` on the configured accelerator:

* **training**: ``--steps`` training steps after ``--warmup`` (compilation, cuDNN autotuning):
  clips/s over whole steps (data loading included) and the share of step time spent waiting for
  data (the time between a step's end and the next step's start);
* **inference**: the test split through ``predict`` at batch ``--infer-batch``, scoring included:
  scored frames/s (each frame counted once, however many windows score it).

Prints a markdown table (with the command and the machine) for docs/results.md.
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from pathlib import Path

import hydra
import lightning as L
import torch
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import open_dict

import vad  # noqa: F401  (resolvers)
from vad.results import git_commit, machine
from vad.train import CONFIG_DIR

METHODS = sorted(p.stem for p in (Path(CONFIG_DIR) / "model").glob("*.yaml"))


class StepTimer(L.Callback):
    """Wall-clock times of training steps and of the waits for data between them."""

    def __init__(self, warmup: int) -> None:
        self.warmup = warmup
        self.step_s: list[float] = []
        self.wait_s: list[float] = []
        self.clips = 0
        self._start = self._end = None

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self._sync(pl_module)
        now = time.perf_counter()
        if self._end is not None and batch_idx > self.warmup:
            self.wait_s.append(now - self._end)
        self._start = now

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self._sync(pl_module)
        self._end = time.perf_counter()
        if batch_idx >= self.warmup:
            self.step_s.append(self._end - self._start)
            self.clips += len(batch.clip)

    @staticmethod
    def _sync(pl_module) -> None:
        if pl_module.device.type == "cuda":
            torch.cuda.synchronize(pl_module.device)


def bench_method(name: str, args: argparse.Namespace) -> dict:
    GlobalHydra.instance().clear()
    with initialize_config_dir(CONFIG_DIR, version_base="1.3"):
        cfg = compose("train", overrides=[f"model={name}", *args.overrides],
                      return_hydra_config=True)
    with open_dict(cfg):  # resolve ${hydra:...} as a `vad.train` run from this folder would
        cfg.hydra.runtime.cwd = str(Path.cwd())
        cfg.hydra.runtime.output_dir = str(Path.cwd() / "outputs" / "bench")
    HydraConfig.instance().set_config(cfg)
    L.seed_everything(0)
    datamodule = hydra.utils.instantiate(cfg.data, _convert_="object")
    model = hydra.utils.instantiate(cfg.model, _convert_="object")
    common = dict(logger=False, enable_checkpointing=False, enable_progress_bar=False,
                  enable_model_summary=False, num_sanity_val_steps=0,
                  accelerator=cfg.trainer.accelerator, devices=1, precision=cfg.trainer.precision)
    timer = StepTimer(args.warmup)
    trainer = L.Trainer(max_epochs=1000, max_steps=args.warmup + args.steps,
                        limit_val_batches=0, callbacks=[timer], **common)
    trainer.fit(model, datamodule)
    step_total = sum(timer.step_s) + sum(timer.wait_s)

    datamodule.eval_batch_size = args.infer_batch
    predictor = L.Trainer(**common)
    predictor.predict(model, datamodule, return_predictions=False)  # warm-up pass
    if predictor.accelerator.__class__.__name__ == "CUDAAccelerator":
        torch.cuda.synchronize()
    start = time.perf_counter()
    outputs = predictor.predict(model, datamodule)
    seconds = time.perf_counter() - start
    frames = {(v, f) for out in outputs
              for v, row in zip(out.video.tolist(), out.frames.tolist()) for f in row}
    return {
        "method": name,
        "params": sum(p.numel() for p in model.parameters()),
        "clip": f"T={cfg.model.clip.length} {cfg.model.clip.target}",
        "size": "x".join(str(s) for s in datamodule.datasets["test"].frame_size),
        "batch": cfg.data.batch_size,
        "train_clips_s": timer.clips / step_total,
        "data_wait": sum(timer.wait_s) / step_total,
        "infer_frames": len(frames),
        "infer_fps": len(frames) / seconds,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=METHODS, choices=METHODS)
    parser.add_argument("--steps", type=int, default=20, help="timed training steps")
    parser.add_argument("--warmup", type=int, default=3, help="untimed first training steps")
    parser.add_argument("--infer-batch", type=int, default=256)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (CPU)")
    parser.add_argument("--set", dest="overrides", action="append", default=[],
                        metavar="KEY=VALUE", help="a config override for every method")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"command: python -m vad.bench {' '.join(map(shlex.quote, argv or sys.argv[1:]))}")
    print(f"commit {git_commit()}; machine: {machine()}, {torch.get_num_threads()} torch threads")
    header = ("method", "params", "clip", "frame size", "train batch", "train clips/s",
              "data wait", f"inference frames/s (batch {args.infer_batch})")
    print("| " + " | ".join(header) + " |")
    print("|" + " --- |" * len(header))
    for name in args.models:
        r = bench_method(name, args)
        print(f"| `{r['method']}` | {r['params'] / 1e6:.2f} M | {r['clip']} | {r['size']} | "
              f"{r['batch']} | {r['train_clips_s']:.1f} | {100 * r['data_wait']:.0f} % | "
              f"{r['infer_fps']:.1f} |", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
