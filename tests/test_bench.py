"""The streaming part of ``vad.bench``: per-frame scores as the offline path gives them, FLOPs."""

from pathlib import Path

import hydra
import torch
from torch.utils.flop_counter import FlopCounterMode

from tests.helpers import compose_config
from vad.bench import WindowStream, frame_stream, stream_latency
from vad.data.datamodule import ClipBatch


def tiny_model(tmp_path: Path, method: str, *overrides: str):
    cfg = compose_config(tmp_path, f"model={method}", "data.size=32", *overrides)
    torch.manual_seed(0)
    return hydra.utils.instantiate(cfg.model, _convert_="object").eval()


@torch.no_grad()
def test_window_stream_scores_the_clip_ending_at_each_new_frame(tmp_path: Path):
    model = tiny_model(tmp_path, "desdnet", "model.clip.dilation=2")  # T = 5, span 9 frames
    frames = torch.rand(12, 1, 32, 32, generator=torch.Generator().manual_seed(0))
    stream = WindowStream(model)
    scores = [stream.step(f[None]) for f in frames]
    assert all(s is None for s in scores[:8]) and all(s is not None for s in scores[8:])
    for t in range(8, 12):  # the offline clip whose last frame is t: t-8, t-6, ..., t
        clip = frames[t - 8: t + 1: 2].permute(1, 0, 2, 3)[None]
        expected = model.score(ClipBatch(clip, None, None, None))
        torch.testing.assert_close(scores[t], expected)


def test_stream_latency_times_scored_frames_and_counts_flops(tmp_path: Path):
    model = tiny_model(tmp_path, "latentpred")
    frames = torch.rand(20, 1, 32, 32)
    seconds, flops = stream_latency(model, frames, count=5)
    assert len(seconds) == 5 and (seconds > 0).all()
    # latentpred's own scorer encodes each frame once; scoring a whole clip per frame (the
    # window path) encodes its k + 1 = 9 frames: several times the FLOPs.
    assert type(frame_stream(model)).__name__ == "StreamingScorer"
    window = WindowStream(model)
    with torch.no_grad():
        for frame in frames[:15]:
            window.step(frame[None])
        with FlopCounterMode(display=False) as counter:
            assert window.step(frames[15][None]) is not None
    assert 4 * flops < counter.get_total_flops()
