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
  scored frames/s (each frame counted once, however many windows score it);
* **streaming latency**: the first test video's frames fed one at a time (batch 1), each scored
  as it arrives (`frame_stream`): ms per frame, median and 99th percentile over
  ``--stream-frames`` scored frames (the frames before the first full window excluded);
* **size**: parameters, and FLOPs of scoring one arriving frame
  (``torch.utils.flop_counter.FlopCounterMode``: convolutions and matrix products, 2 per
  multiply-add; element-wise operations not counted).

Prints a markdown table (with the command and the machine) for docs/results.md.
"""

from __future__ import annotations

import argparse
import itertools
import shlex
import sys
import time
from collections import deque
from pathlib import Path

import hydra
import lightning as L
import numpy as np
import torch
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import open_dict
from torch.utils.flop_counter import FlopCounterMode

import vad  # noqa: F401  (resolvers)
from vad.data.datamodule import ClipBatch
from vad.results import git_commit, machine
from vad.train import CONFIG_DIR

# The no-learning references (framediff, background) have no training step to time.
REFERENCES = ("background", "framediff")
METHODS = sorted(p.stem for p in (Path(CONFIG_DIR) / "model").glob("*.yaml")
                 if p.stem not in REFERENCES)


class WindowStream:
    """Scores each arriving frame with the method's own `score` on the clip that ends at it
    (batch 1), from a buffer of the last clip span of frames: the streaming path of a window
    method. For ``target=all`` methods that one call scores the whole window, the new frame
    among them; the offline evaluation would also average the later windows that cover it."""

    def __init__(self, model) -> None:
        spec = model.clip_spec
        self.model = model
        self.positions = [int(o) * spec.dilation for o in spec.offsets]
        self.buffer: deque[torch.Tensor] = deque(maxlen=self.positions[-1] + 1)

    def step(self, frame: torch.Tensor) -> torch.Tensor | None:
        """Frame ``(1, C, H, W)`` → scores ``(1, n_targets)``, or None while the buffer fills."""
        self.buffer.append(frame)
        if len(self.buffer) < self.buffer.maxlen:
            return None
        clip = torch.stack([self.buffer[p] for p in self.positions], dim=2)
        return self.model.score(ClipBatch(clip, None, None, None))


def frame_stream(model):
    """A method's per-frame scorer: its own (``streaming_scorer``, e.g. latentpred's ring buffer
    of codes, each frame encoded once) or a `WindowStream`."""
    model.eval()
    return model.streaming_scorer() if hasattr(model, "streaming_scorer") else WindowStream(model)


@torch.no_grad()
def stream_latency(model, frames: torch.Tensor, count: int, warmup: int = 3
                   ) -> tuple[np.ndarray, int]:
    """Seconds of each of ``count`` scored frames fed one at a time (``frames`` float
    ``(N, C, H, W)``, cycled), after ``warmup`` scored frames; and the FLOPs of one step."""
    stream = frame_stream(model)
    device = model.device
    seconds: list[float] = []
    scored = 0
    for i in itertools.count():
        frame = frames[i % len(frames)][None].to(device)
        _sync(device)
        start = time.perf_counter()
        score = stream.step(frame)
        _sync(device)
        if score is None:
            continue
        scored += 1
        if scored > warmup:
            seconds.append(time.perf_counter() - start)
        if len(seconds) == count:
            break
    with FlopCounterMode(display=False) as flops:
        stream.step(frame)
    return np.array(seconds), flops.get_total_flops()


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class StepTimer(L.Callback):
    """Wall-clock times of training steps and of the waits for data between them."""

    def __init__(self, warmup: int) -> None:
        self.warmup = warmup
        self.step_s: list[float] = []
        self.wait_s: list[float] = []
        self.clips = 0
        self._start = self._end = None

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        _sync(pl_module.device)
        now = time.perf_counter()
        if self._end is not None and batch_idx > self.warmup:
            self.wait_s.append(now - self._end)
        self._start = now

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        _sync(pl_module.device)
        self._end = time.perf_counter()
        if batch_idx >= self.warmup:
            self.step_s.append(self._end - self._start)
            self.clips += len(batch.clip)


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

    low, high = datamodule.value_range
    video = torch.as_tensor(np.asarray(datamodule.datasets["test"].store.video(0)))
    video = video.permute(0, 3, 1, 2).float() * ((high - low) / 255.0) + low
    latency, flops = stream_latency(model, video, args.stream_frames)
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
        "flops": flops,
        "stream_p50_ms": 1e3 * float(np.percentile(latency, 50)),
        "stream_p99_ms": 1e3 * float(np.percentile(latency, 99)),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=METHODS, choices=METHODS)
    parser.add_argument("--steps", type=int, default=20, help="timed training steps")
    parser.add_argument("--warmup", type=int, default=3, help="untimed first training steps")
    parser.add_argument("--infer-batch", type=int, default=256)
    parser.add_argument("--stream-frames", type=int, default=200,
                        help="scored frames timed one at a time (streaming latency)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (CPU)")
    parser.add_argument("--set", dest="overrides", action="append", default=[],
                        metavar="KEY=VALUE", help="a config override for every method")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"command: python -m vad.bench {' '.join(map(shlex.quote, argv or sys.argv[1:]))}")
    print(f"commit {git_commit()}; machine: {machine()}")  # machine() names the torch threads
    header = ("method", "params", "clip", "frame size", "train batch", "train clips/s",
              "data wait", f"inference frames/s (batch {args.infer_batch})",
              "MFLOPs/frame (stream)", "stream ms/frame p50", "p99")
    print("| " + " | ".join(header) + " |")
    print("|" + " --- |" * len(header))
    for name in args.models:
        r = bench_method(name, args)
        print(f"| `{r['method']}` | {r['params'] / 1e6:.2f} M | {r['clip']} | {r['size']} | "
              f"{r['batch']} | {r['train_clips_s']:.1f} | {100 * r['data_wait']:.0f} % | "
              f"{r['infer_fps']:.1f} | {r['flops'] / 1e6:.1f} | {r['stream_p50_ms']:.2f} | "
              f"{r['stream_p99_ms']:.2f} |", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
