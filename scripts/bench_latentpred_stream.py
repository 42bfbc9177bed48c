"""Frames per second of latent-prediction scoring: streaming (each frame encoded once) vs batched.

Paper 003 (§4.2, Table 3) reports 81/90/77/77 FPS on Ped1/Ped2/Avenue/ShanghaiTech on a GTX 1080
Ti, without saying whether resizing is included; this script reports both. The network is the one
of ``experiment=<name>`` (random weights: speed does not depend on them), in eval mode, scoring
Z-MSE (Eq. 2), on a synthetic grey uint8 video at the dataset's source size.

* ``streaming``: `StreamingScorer.step` on one frame at a time (batch 1, as a camera delivers them):
  one encoder pass per frame, the motion model over the k buffered codes, no decoder.
* ``batched``: `LatentPredModule.score` on clips T_1..T_k, T_t of ``--batch`` windows (the offline
  path of ``vad.train``'s test loop): every frame is encoded k + 1 times, once per window.
* ``resize``: the uint8 source frames are converted and resized bilinearly to the experiment's
  input size inside the timed loop (``yes``), or resized beforehand (``no``).

    python scripts/bench_latentpred_stream.py                       # Ped2 recipe, CPU
    python scripts/bench_latentpred_stream.py --experiment latentpred_ped1 --source 158 238
    python scripts/bench_latentpred_stream.py --device cuda --frames 2000
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate

import vad  # noqa: F401  (resolvers)
from vad.data.clips import ClipSpec
from vad.data.datamodule import ClipBatch
from vad.models.latentpred import LatentPredModule

CONF = Path(__file__).resolve().parents[1] / "conf"


def build(experiment: str, overrides: list[str]) -> tuple[LatentPredModule, tuple[int, int]]:
    with initialize_config_dir(str(CONF), version_base="1.3"):
        cfg = compose("train", overrides=[f"experiment={experiment}", *overrides])
    module = instantiate(cfg.model, _convert_="object")
    return module.eval(), tuple(cfg.data.image_size)


def to_input(frames: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """uint8 ``(N, H, W)`` → float ``(N, 1, h, w)`` in [0, 1], bilinear."""
    x = frames[:, None].float().div_(255)
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=False)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


@torch.no_grad()
def bench_streaming(module, video, size, resize: bool, device) -> float:
    scorer = module.streaming_scorer()
    frames = video if resize else to_input(video, size)
    scorer.step(to_input(frames[:1], size) if resize else frames[:1])  # warm-up
    scorer.reset()
    sync(device)
    start = time.perf_counter()
    for frame in frames:
        scorer.step(to_input(frame[None], size) if resize else frame[None])
    sync(device)
    return len(frames) / (time.perf_counter() - start)


@torch.no_grad()
def bench_batched(module, video, size, resize: bool, device, batch: int) -> float:
    spec: ClipSpec = module.clip_spec
    offsets = torch.as_tensor(spec.offsets, device=device)
    starts = torch.arange(len(video) - spec.span() + 1, device=device)
    dummy = torch.zeros(batch, dtype=torch.long, device=device)
    pre = None if resize else to_input(video, size)

    def score(first: int) -> None:
        index = starts[first:first + batch, None] + offsets  # (B, k + 1) frame numbers
        if resize:  # as a loader would: every window's frames converted and resized
            clips = to_input(video[index.flatten()], size)
        else:
            clips = pre[index.flatten()]
        clips = clips.view(len(index), -1, *clips.shape[1:]).transpose(1, 2)  # (B, C, T, H, W)
        module.score(ClipBatch(clips, dummy[:len(index)], index[:, -1:], dummy[:len(index)]))

    score(0)  # warm-up
    sync(device)
    start = time.perf_counter()
    for first in range(0, len(starts), batch):
        score(first)
    sync(device)
    return len(starts) / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--experiment", default="latentpred_ped2")
    parser.add_argument("--source", type=int, nargs=2, default=(240, 360),
                        help="source frame size H W (Ped2: 240 360, Ped1: 158 238)")
    parser.add_argument("--frames", type=int, default=300)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("overrides", nargs="*", help="extra Hydra overrides, e.g. model.net.num_blocks=5")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    module, size = build(args.experiment, args.overrides)
    module.to(device)
    module.net.set_background(torch.full((1, *size), 0.5, device=device))
    video = torch.randint(0, 256, (args.frames, *args.source), dtype=torch.uint8, device=device)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    params = sum(p.numel() for p in module.net.encoder.parameters())
    params += sum(p.numel() for p in module.net.to_latent.parameters())
    motion = sum(p.numel() for p in module.net.motion.parameters())
    print(f"# {args.experiment}: input {size[0]}x{size[1]}, k = {module.clip_spec.length}, "
          f"t = k + {module.clip_spec.future_offset}; encoder {params / 1e6:.2f} M params, motion "
          f"model {motion / 1e6:.2f} M; {args.frames} frames of {args.source[0]}x{args.source[1]}"
          f" uint8; device {device}, {args.threads} threads; load average {load:.2f}")
    print("| scorer | resize in the loop | frames/s |")
    print("| --- | --- | --- |")
    for resize in (False, True):
        fps = bench_streaming(module, video, size, resize, device)
        print(f"| streaming (batch 1) | {'yes' if resize else 'no'} | {fps:.2f} |", flush=True)
    for resize in (False, True):
        fps = bench_batched(module, video, size, resize, device, args.batch)
        print(f"| batched ({args.batch} windows) | {'yes' if resize else 'no'} | {fps:.2f} |",
              flush=True)
    print(f"# load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
