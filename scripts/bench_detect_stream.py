"""Seconds for `vad.detect`'s two scoring paths on the same video: batched (``stream=false``:
decode into the cache, windows through ``Trainer.predict``) and streamed (``stream=true``:
`vad.inference.stream_video` with each ``--chunks`` value; with ``--legacy`` also the stream as
it was before issue 22, frame by frame), interleaved ``--repeat`` times, medians; every run's
scores must equal the batched ones (within 1e-5).

The model is ``model=<method>`` of ``conf/`` with random weights (speed does not depend on
them) at ``--size``; the input is a synthetic grey MP4 of ``--frames`` frames at the source size
``--source`` (Ped2's 360x240 by default), written once into a temporary folder.

    python scripts/bench_detect_stream.py --legacy            # ConvSTAE, Ped2-like, + the old stream
    OMP_NUM_THREADS=1 python scripts/bench_detect_stream.py --method desdnet --frames 90
"""

from __future__ import annotations

import argparse
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


class LegacyClipStream:
    """The stream before issue 22 (commit a17f8c2), kept for the comparison: frames one at a time,
    each window re-stacked from uint8 and converted to float, one window per forward pass."""

    def __init__(self, model, spec, value_range, how="mean") -> None:
        from collections import deque

        from vad.inference import FrameAccumulator

        self.model, self.value_range = model, tuple(value_range)
        self.span = spec.span()
        self.positions = spec.offsets * spec.dilation
        self.targets = self.positions[spec.target_positions]
        self.buffer = deque(maxlen=self.span)
        self.accumulator = FrameAccumulator(how)
        self.count, self.last_start = 0, -1

    @torch.no_grad()
    def push(self, frame):
        self.buffer.append(torch.from_numpy(np.ascontiguousarray(frame)))
        self.count += 1
        start = self.count - self.span
        if start < 0:
            return []
        self._score(start)
        return self.accumulator.release(upto=start)

    @torch.no_grad()
    def finish(self):
        start = self.count - self.span
        if start >= 0 and start != self.last_start:
            self._score(start)
        return self.accumulator.release()

    def _score(self, start):
        from vad.data.datamodule import ClipBatch, float_clips

        clip = torch.stack([self.buffer[int(p)] for p in self.positions])[None]
        targets = start + self.targets
        zero = torch.zeros(1, dtype=torch.long)
        batch = float_clips(ClipBatch(clip, zero, torch.from_numpy(targets)[None], zero),
                            self.value_range)
        scores = self.model.score(batch).float().reshape(-1).cpu().double().numpy()
        self.accumulator.add(targets, [float(s) for s in scores])
        self.last_start = start


def legacy_stream(model, record, pre) -> np.ndarray:
    from vad.data.clips import ClipSpec
    from vad.data.decode import iter_record_batches

    stream = LegacyClipStream(model, ClipSpec(**pre["clip"]), pre["value_range"])
    scores = np.full(record.num_frames, np.nan)
    for batch in iter_record_batches(record, tuple(pre["image_size"]), True, batch_size=1):
        for frame in batch:
            for f, v in stream.push(frame):
                scores[f] = v
    for f, v in stream.finish():
        scores[f] = v
    return scores


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--method", default="convstae")
    parser.add_argument("--frames", type=int, default=180)
    parser.add_argument("--source", type=int, nargs=2, default=[240, 360], metavar=("H", "W"))
    parser.add_argument("--size", type=int, nargs=2, default=[256, 256], metavar=("H", "W"))
    parser.add_argument("--batch", type=int, default=32, help="windows per batch (batched)")
    parser.add_argument("--chunks", type=int, nargs="+", default=[1, 8],
                        help="stream_chunk values to time")
    parser.add_argument("--repeat", type=int, default=3, help="interleaved repetitions")
    parser.add_argument("--legacy", action="store_true",
                        help="also time the stream as it was before issue 22")
    args = parser.parse_args()

    with initialize_config_dir(str(CONF), version_base="1.3"):
        cfg = compose("train", overrides=[f"model={args.method}", "data=synthetic",
                                          f"data.image_size=[{args.size[0]},{args.size[1]}]"])
    torch.manual_seed(0)
    model = instantiate(cfg.model, _convert_="object").eval()
    pre = {"clip": dict(cfg.model.clip), "image_size": list(args.size), "grayscale": True,
           "value_range": [0.0, 1.0], "test_window_step": 1}
    import lightning as L

    modes = {"batched": None}
    if args.legacy:
        modes["stream before (frame by frame)"] = "legacy"
    modes.update({f"stream chunk {c}": c for c in args.chunks})
    times = {name: [] for name in modes}
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "video.mp4"
        write_video(path, args.frames, args.source[1], args.source[0])
        records = input_records(str(path))
        reference = None
        for _ in range(args.repeat):
            for name, mode in modes.items():
                start, cpu = time.perf_counter(), time.process_time()
                if mode is None:
                    trainer = L.Trainer(accelerator="cpu", devices=1, logger=False,
                                        enable_checkpointing=False, enable_model_summary=False,
                                        enable_progress_bar=False)
                    datamodule = FootageDataModule(records, eval_batch_size=args.batch, **pre)
                    scores = batch_scores(trainer, model, datamodule)[0]
                elif mode == "legacy":
                    scores = legacy_stream(model, records[0], pre)
                else:
                    scores = stream_video(model, records[0], pre, "mean", "cpu", chunk=mode)
                times[name].append((time.perf_counter() - start, time.process_time() - cpu))
                reference = scores if reference is None else reference
                both = ~np.isnan(reference)
                diff = float(np.max(np.abs(scores[both] - reference[both])
                                    / np.abs(reference[both])))
                assert diff < 1e-5, f"{name}: scores differ from batched by {diff:.1e}"
    print(f"{args.method}, {args.frames} frames {args.source[1]}x{args.source[0]} -> "
          f"{args.size[1]}x{args.size[0]}, torch threads {torch.get_num_threads()}, median of "
          f"{args.repeat} interleaved runs (wall s / CPU s; all scores within 1e-5 of batched):")
    base = np.median([t[0] for t in times["batched"]])
    for name, runs in times.items():
        wall, cpu = np.median([t[0] for t in runs]), np.median([t[1] for t in runs])
        print(f"  {name:32s} {wall:7.2f} s  CPU {cpu:7.2f} s  {wall / base:5.2f}x batched")


if __name__ == "__main__":
    main()
