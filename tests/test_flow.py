"""Optical flow (vad/data/flow.py) and its path through VideoDataModule: quantisation, TV-L1 on
a known motion, the cache (reused, keyed, atomic), and frames/flows aligned per video."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from vad.data import flow as flow_module
from vad.data.datamodule import ClipBatch, float_clips
from vad.data.flow import FlowConfig, compute_flow, dequantise, quantise
from vad.data.ped import Ped2DataModule

FAST = {"nscales": 2, "warps": 2, "outerIterations": 3}  # TV-L1 is slow: small and cheap here


def test_quantisation_round_trip_and_clipping():
    flow = np.array([[0.0, 1.0], [-3.9, 7.9], [20.0, -20.0]], dtype=np.float32)
    q = quantise(flow, bound=8.0)
    assert q.dtype == np.uint8
    assert q[2].tolist() == [255, 0]  # clipped to ±bound
    np.testing.assert_allclose(dequantise(q[:2], 8.0), flow[:2], atol=8.0 / 255)
    assert abs(q[0, 0] / 255 - 0.5) <= 0.5 / 255  # zero motion sits at 0.5 after float_clips


def test_tvl1_finds_a_known_translation():
    """A smooth pattern moving 2 px right per frame: u ≈ 2, v ≈ 0 inside the frame."""
    y, x = np.mgrid[0:48, 0:64]
    frames = np.stack([(127 + 100 * np.sin((x - 2 * t) / 4.0) * np.cos(y / 5.0))
                       for t in range(3)]).astype(np.uint8)[..., None]
    flow = compute_flow(frames, FlowConfig(bound=4.0, tvl1=FAST))
    assert flow.shape == (3, 48, 64, 2) and flow.dtype == np.uint8
    assert (flow[0] == 128).all()  # the placeholder of frame 0
    u, v = dequantise(flow[1:, 8:-8, 8:-8], 4.0).transpose(3, 0, 1, 2)
    assert np.median(u) == pytest.approx(2.0, abs=0.25)
    assert np.median(np.abs(v)) < 0.25


def test_flow_config_key_changes_with_parameters():
    a, b = FlowConfig(), FlowConfig(bound=4.0)
    assert a.key() != b.key() != FlowConfig(tvl1={"nscales": 2}).key()
    assert a.key() == FlowConfig(splits=["train", "test"], threads=1).key()  # not in the flow
    with pytest.raises(ValueError, match="flow.method"):
        FlowConfig(method="magic")


def ped2_datamodule(root: Path, cache: Path, flow: dict | None, length: int = 4):
    return Ped2DataModule(root=str(root), clip={"length": length, "target": "all"},
                          image_size=(32, 32), cache_dir=str(cache), batch_size=4,
                          eval_batch_size=4, val_fraction=0.0, flow=flow)


def test_flow_cache_is_reused_and_frames_and_flows_align(fakes_root: Path, tmp_path: Path,
                                                         monkeypatch):
    root, cache = fakes_root / "ped2/frames", tmp_path / "cache"
    flow_cfg = {"bound": 4.0, "tvl1": FAST, "splits": ["train", "test"], "threads": 2}
    dm = ped2_datamodule(root, cache, flow_cfg)
    dm.prepare_data()
    flows = sorted(cache.glob("*-flow-*.npy"))
    assert len(flows) == len(dm.records("train")) + len(dm.records("test"))
    assert not list(cache.glob(".*.tmp"))  # temporary files renamed into place or removed
    mtimes = [p.stat().st_mtime_ns for p in flows]

    # A second run reuses every flow file: computing one would fail.
    monkeypatch.setattr(flow_module, "compute_flow",
                        lambda *a, **k: pytest.fail("flow computed again"))
    again = ped2_datamodule(root, cache, flow_cfg)
    again.prepare_data()
    again.setup("fit")
    again.setup("test")
    assert [p.stat().st_mtime_ns for p in flows] == mtimes
    monkeypatch.undo()

    # Another flow parameter is another cache file.
    other = ped2_datamodule(root, cache, {**flow_cfg, "bound": 2.0, "splits": ["train"]})
    other.prepare_data()
    assert len(list(cache.glob("*-flow-*.npy"))) == len(flows) + len(dm.records("train"))

    # Alignment: clip frame t comes with the TV-L1 flow from frame t − 1 to t of its video,
    # recomputed here from the cached frames; no clip starts at frame 0.
    for split in ("train", "test"):
        dataset = again.datasets[split]
        assert dataset.index[:, 1].min() == 1
        batch = dataset.__getitems__(list(range(len(dataset))))
        assert batch.flow.shape == (*batch.clip.shape[:4], 2)
        for b in range(len(batch.clip)):
            video, first = int(batch.video[b]), int(dataset.index[b, 1])
            frames = dataset.store.video(video)
            frames = frames.numpy() if isinstance(frames, torch.Tensor) else np.asarray(frames)
            expected = compute_flow(frames[first - 1: first + 4], again.flow)[1:]
            np.testing.assert_array_equal(batch.flow[b].numpy(), expected)
            np.testing.assert_array_equal(batch.clip[b].numpy(), frames[first: first + 4])


def test_no_flow_leaves_batches_and_indices_as_before(fakes_root: Path, tmp_path: Path):
    dm = ped2_datamodule(fakes_root / "ped2/frames", tmp_path / "cache", None)
    dm.prepare_data()
    dm.setup("fit")
    assert dm.datasets["train"].index[:, 1].min() == 0
    batch = dm.datasets["train"].__getitems__([0, 1])
    assert batch.flow is None
    assert float_clips(batch, (0.0, 1.0)).flow is None
    assert dm.datasets["train"][0].flow is None
    assert not list((tmp_path / "cache").glob("*-flow-*"))


def test_float_clips_converts_flow_to_channel_first_unit_range():
    clip = torch.randint(0, 256, (2, 4, 8, 8, 1), dtype=torch.uint8)
    flow = torch.randint(0, 256, (2, 4, 8, 8, 2), dtype=torch.uint8)
    batch = ClipBatch(clip, torch.zeros(2, dtype=torch.long), torch.zeros(2, 4, dtype=torch.long),
                      torch.arange(2), flow)
    out = float_clips(batch, (-1.0, 1.0))
    assert out.flow.shape == (2, 2, 4, 8, 8) and out.flow.dtype == torch.float32
    torch.testing.assert_close(out.flow, flow.permute(0, 4, 1, 2, 3).float() / 255)
    torch.testing.assert_close(out.clip, clip.permute(0, 4, 1, 2, 3).float() / 127.5 - 1)
    plain = float_clips(batch._replace(flow=None), (-1.0, 1.0))
    assert torch.equal(plain.clip, out.clip)  # frames do not depend on the flow


def test_synthetic_data_gets_flow_in_memory():
    from vad.data.synthetic import SyntheticDataModule

    dm = SyntheticDataModule(clip={"length": 4, "target": "all"}, num_train_videos=1,
                             num_test_videos=1, frames_per_video=8, size=16, batch_size=2,
                             val_fraction=0.0, flow={"bound": 4.0, "tvl1": FAST})
    dm.prepare_data()
    dm.setup("fit")
    dm.setup("test")
    batch = next(iter(dm.train_dataloader()))
    assert batch.flow is not None and batch.flow.dtype == torch.uint8
    assert dm.datasets["test"].flow_store is None  # default splits: train only
    assert dm.datasets["test"].index[:, 1].min() == 0
