"""Seconds for `vad.detect`'s two scoring paths on the same video: batched (``stream=false``:
decode into the cache, windows through ``Trainer.predict``) and streamed (``stream=true``:
`vad.inference.stream_video`, frame by frame as decoded), and the largest difference between
their scores (they must agree).

The model is ``model=<method>`` of ``conf/`` with random weights (speed does not depend on
them) at ``--size``; the input is a synthetic grey MP4 of ``--frames`` frames at the source size
``--source`` (Ped2's 360x240 by default), written once into a temporary folder.

    OMP_NUM_THREADS=1 python scripts/bench_detect_stream.py                 # ConvSTAE, Ped2-like
    python scripts/bench_detect_stream.py --method desdnet --frames 90 --profile
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hydra import compose, initialize_config_dir  # noqa: E402
from hydra.utils import instantiate  # noqa: E402

import vad  # noqa: E402,F401  (resolvers)
from vad.inference import FootageDataModule, batch_scores, input_records, stream_video  # noqa: E402

CONF = Path(__file__).resolve().parents[1] / "conf"


def write_video(path: Path, frames: int, width: int, height: int) -> None:
    """A textured background with a bright square crossing it, grey, 10 fps."""
    rng = np.random.default_rng(0)
    background = cv2.GaussianBlur(rng.integers(0, 255, (height, width), np.uint8), (9, 9), 3)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 10, (width, height))
    for t in range(frames):
        frame = background.copy()
        x = int((width - 30) * t / max(frames - 1, 1))
        frame[height // 2 - 15: height // 2 + 15, x:x + 30] = 230
        writer.write(cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR))
    writer.release()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--method", default="convstae")
    parser.add_argument("--frames", type=int, default=180)
    parser.add_argument("--source", type=int, nargs=2, default=[240, 360], metavar=("H", "W"))
    parser.add_argument("--size", type=int, nargs=2, default=[256, 256], metavar=("H", "W"))
    parser.add_argument("--batch", type=int, default=32, help="windows per batch (batched)")
    parser.add_argument("--chunk", type=int, default=1, help="frames per push (streamed)")
    parser.add_argument("--profile", action="store_true", help="cProfile the streamed path")
    args = parser.parse_args()

    with initialize_config_dir(str(CONF), version_base="1.3"):
        cfg = compose("train", overrides=[f"model={args.method}", "data=synthetic",
                                          f"data.image_size=[{args.size[0]},{args.size[1]}]"])
    torch.manual_seed(0)
    model = instantiate(cfg.model, _convert_="object").eval()
    pre = {"clip": dict(cfg.model.clip), "image_size": list(args.size), "grayscale": True,
           "value_range": [0.0, 1.0], "test_window_step": 1}
    import lightning as L

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "video.mp4"
        write_video(path, args.frames, args.source[1], args.source[0])
        records = input_records(str(path))
        trainer = L.Trainer(accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
                            enable_model_summary=False, enable_progress_bar=False)
        start, cpu = time.perf_counter(), time.process_time()
        datamodule = FootageDataModule(records, eval_batch_size=args.batch, **pre)
        batched = batch_scores(trainer, model, datamodule)[0]
        batched_s, batched_cpu = time.perf_counter() - start, time.process_time() - cpu

        profiler = cProfile.Profile() if args.profile else None
        start, cpu = time.perf_counter(), time.process_time()
        if profiler:
            profiler.enable()
        kwargs = {"chunk": args.chunk} if args.chunk > 1 else {}  # (older versions: no chunk)
        streamed = stream_video(model, records[0], pre, "mean", "cpu", **kwargs)
        if profiler:
            profiler.disable()
        streamed_s, streamed_cpu = time.perf_counter() - start, time.process_time() - cpu
    both = ~np.isnan(batched)
    diff = float(np.max(np.abs(streamed[both] - batched[both]) / np.abs(batched[both])))
    print(f"{args.method}, {args.frames} frames {args.source[1]}x{args.source[0]} -> "
          f"{args.size[1]}x{args.size[0]}, torch threads {torch.get_num_threads()}: "
          f"batched {batched_s:.2f} s (CPU {batched_cpu:.2f} s), streamed (chunk {args.chunk}) "
          f"{streamed_s:.2f} s (CPU {streamed_cpu:.2f} s): {streamed_s / batched_s:.2f}x wall, "
          f"{streamed_cpu / batched_cpu:.2f}x CPU; max relative difference {diff:.1e}")
    if profiler:
        pstats.Stats(profiler).sort_stats("cumulative").print_stats(25)


if __name__ == "__main__":
    main()
