"""The fast data path (batched uint8 gathering, float conversion once per batch on the device),
the speed switches of `VADModule`, and the GPU-row tooling (`scripts/gpu_rows.py`, `vad.results`).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import subprocess
import sys
from functools import partial

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, default_collate

from tests.helpers import REPO
from vad.data.datamodule import ClipBatch, float_clips
from vad.data.ped import Ped2DataModule
from vad.data.synthetic import SyntheticDataModule
from vad.models.convstae import ConvSTAEModule
from vad.models.desdnet import DESDnetModule
from vad.results import markdown_table, read_run

CLIPS = {
    "last": {"length": 4, "target": "last"},
    "all": {"length": 3, "target": "all", "dilation": 2},
    "next": {"length": 3, "target": "next", "future_offset": 3},  # unevenly spaced frames
}


def reference_batch(dataset, indices, value_range) -> ClipBatch:
    """The per-sample path the batched one replaced: slice, permute, float, scale, collate."""
    low, high = value_range
    samples = []
    for i in indices:
        video, start, step = (int(v) for v in dataset.index[i])
        frames = np.asarray(dataset.store.video(video)[start + dataset.offsets * step])
        clip = torch.from_numpy(frames).permute(3, 0, 1, 2).float() * ((high - low) / 255.0) + low
        targets = torch.from_numpy(start + dataset.targets * step)
        samples.append((clip, torch.tensor(video), targets, torch.tensor(i)))
    return ClipBatch(*default_collate(samples))


def assert_same_batch(batch: ClipBatch, expected: ClipBatch) -> None:
    assert torch.equal(batch.clip, expected.clip)
    assert batch.clip.stride() == expected.clip.stride()  # layout decides convolution numerics
    assert batch.flow is None and expected.flow is None
    for name in ("video", "frames", "index"):
        got, want = getattr(batch, name), getattr(expected, name)
        assert torch.equal(got, want) and got.dtype == want.dtype, name


def synthetic(clip: dict, **kwargs) -> SyntheticDataModule:
    return SyntheticDataModule(clip=clip, num_train_videos=2, num_test_videos=2,
                               frames_per_video=24, size=16, image_size=None,
                               train_strides=(1, 2), **kwargs)


@pytest.mark.parametrize("target", list(CLIPS))
@pytest.mark.parametrize("store", ["in-memory", "device-resident", "memory-mapped"])
def test_batches_equal_the_per_sample_path(target, store, fakes_root, tmp_path):
    """Every clip of every split, gathered as a batch and converted, equals the old per-sample
    path bit for bit (values, dtype and strides), for each store and clip target kind."""
    value_range = (-1.0, 1.0)
    if store == "memory-mapped":
        dm = Ped2DataModule(root=str(fakes_root / "ped2/frames"), clip=CLIPS[target],
                            image_size=(16, 16), value_range=value_range, train_strides=(1, 2),
                            cache_dir=str(tmp_path))
        dm.prepare_data()
    else:
        dm = synthetic(CLIPS[target], value_range=value_range,
                       device_resident=store == "device-resident")
    dm.setup()
    for split in ("train", "val", "test"):
        dataset = dm.datasets[split]
        assert len(dataset) > 0 or split == "val"  # fake videos may be too short to hold out
        if store == "memory-mapped":
            assert isinstance(dataset.store.videos[0], np.memmap)
        else:
            kind = torch.Tensor if store == "device-resident" else np.ndarray
            assert isinstance(dataset.store.frames, kind)
        for start in range(0, len(dataset), 5):
            indices = list(range(start, min(start + 5, len(dataset))))[::-1]
            raw = dataset.__getitems__(indices)
            assert raw.clip.dtype == torch.uint8 and raw.clip.shape[-1] == 1
            assert_same_batch(float_clips(raw, value_range),
                              reference_batch(dataset, indices, value_range))


def test_training_loader_draws_the_same_clips_in_the_same_order():
    """Shuffling is the DataLoader's own: the same seed gives the batches of a per-sample
    loader (same RandomSampler, same BatchSampler), so training is unchanged."""
    dm = synthetic(CLIPS["last"], batch_size=3)
    dm.setup("fit")
    torch.manual_seed(7)
    seen = [b.index.tolist() for b in dm.train_dataloader()]
    torch.manual_seed(7)
    per_sample = DataLoader(range(len(dm.datasets["train"])), batch_size=3, shuffle=True)
    assert seen == [b.tolist() for b in per_sample]
    assert sorted(sum(seen, [])) == list(range(len(dm.datasets["train"])))


def test_worker_processes_deliver_the_same_uint8_batches(fakes_root, tmp_path):
    options = dict(root=str(fakes_root / "ped2/frames"), clip=CLIPS["last"], image_size=(16, 16),
                   cache_dir=str(tmp_path), eval_batch_size=4)
    batches = {}
    for workers in (0, 2):
        dm = Ped2DataModule(num_workers=workers, **options)
        dm.prepare_data()
        dm.setup("test")
        batches[workers] = list(dm.test_dataloader())
    assert len(batches[0]) == len(batches[2]) > 1
    for a, b in zip(batches[0], batches[2]):
        assert a.clip.dtype == b.clip.dtype == torch.uint8
        for x, y in zip(a, b):
            assert (x is None and y is None) or torch.equal(x, y)


def test_on_after_batch_transfer_gives_methods_float_clips():
    dm = synthetic(CLIPS["all"], value_range=(0.0, 1.0))
    dm.setup("test")
    raw = next(iter(dm.test_dataloader()))
    batch = dm.on_after_batch_transfer(raw, 0)
    assert batch.clip.dtype == torch.float32
    assert batch.clip.shape == (len(raw.clip), 1, 3, 16, 16)  # (B, C, T, H, W)
    torch.testing.assert_close(batch.clip[0, 0, 1], raw.clip[0, 1, ..., 0].float() / 255.0)
    assert dm.on_after_batch_transfer(batch, 0) is batch  # float batches pass through
    assert torch.equal(dm.transfer(raw, "cpu").clip, batch.clip)


# -- no host-device synchronisation in the steps --------------------------------------------------
@contextlib.contextmanager
def no_host_sync(calls: list[str]):
    """Record every tensor → Python conversion (each one waits for a GPU)."""
    names = ("__bool__", "item", "tolist", "__int__", "__float__", "__index__")
    originals = {name: getattr(torch.Tensor, name) for name in names}

    def spy(name):
        def record(self, *args, **kwargs):
            calls.append(name)
            return originals[name](self, *args, **kwargs)
        return record

    for name in names:
        setattr(torch.Tensor, name, spy(name))
    try:
        yield
    finally:
        for name, original in originals.items():
            setattr(torch.Tensor, name, original)


def test_desdnet_steps_never_wait_for_the_device():
    """After epoch 1 (centre set, mask bank allocated), DESDnet's training and validation steps
    convert no tensor to a Python value, and validation computes no compact term."""
    import lightning as L

    L.seed_everything(0)
    dm = synthetic({"length": 3, "target": "last"}, batch_size=4)
    module = DESDnetModule(clip={"length": 3, "target": "last"},
                           net={"in_channels": 1, "base_channels": 4, "depth": 2,
                                "fusion_channels": 8},
                           optimizer=partial(torch.optim.Adam, lr=1e-3))
    trainer = L.Trainer(max_epochs=1, accelerator="cpu", logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False,
                        num_sanity_val_steps=0, limit_val_batches=0)
    trainer.fit(module, dm)
    assert module.hypersphere.is_ready and module.mask_size is not None
    module.log = lambda *args, **kwargs: None  # Lightning's logging is not the method's step
    features = []
    module.net.features = (lambda f: lambda x: features.append(1) or f(x))(module.net.features)
    batch = dm.transfer(next(iter(dm.train_dataloader())), "cpu")
    calls: list[str] = []
    with no_host_sync(calls):
        module.training_step(batch, 0)
        assert len(features) == 1  # the compact term, in training
        module.validation_step(batch, 0)
    assert calls == [] and len(features) == 1


# -- speed switches -------------------------------------------------------------------------------
def convstae(**switches) -> ConvSTAEModule:
    torch.manual_seed(0)
    net = {"in_channels": 1, "encoder_channels": [4, 4, 4], "encoder_kernels": [5, 3, 3],
           "encoder_strides": [2, 2, 1], "lstm_channels": [4, 4], "lstm_kernel": 3}
    return ConvSTAEModule(clip={"length": 3, "target": "all"}, net=net,
                          optimizer=partial(torch.optim.Adam, lr=1e-3), **switches)


def test_channels_last_switch_keeps_scores_and_checkpoints():
    batch = ClipBatch(torch.rand(2, 1, 3, 16, 16), torch.zeros(2, dtype=torch.long),
                      torch.zeros(2, 3, dtype=torch.long), torch.arange(2))
    plain, fast = convstae(), convstae(channels_last=True)
    fast.configure_model()
    conv = fast.net.encoder[1]  # 4 input channels: the layouts differ
    assert conv.weight.is_contiguous(memory_format=torch.channels_last)
    assert not plain.net.encoder[1].weight.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(fast.score(batch), plain.score(batch), rtol=1e-5, atol=1e-5)
    assert fast.state_dict().keys() == plain.state_dict().keys()


def test_compile_switch_trains_and_tests_on_cpu(tmp_path):
    """``model.compile=true``: one fit + test through torch.compile (the CPU backend)."""
    import lightning as L

    dm = synthetic({"length": 3, "target": "all"}, batch_size=4)
    module = convstae(compile=True)
    trainer = L.Trainer(fast_dev_run=True, accelerator="cpu", logger=False,
                        enable_progress_bar=False, enable_model_summary=False,
                        default_root_dir=tmp_path)
    trainer.fit(module, dm)
    assert hasattr(module.net.forward, "_torchdynamo_orig_callable")  # compiled in place
    assert "net.encoder.0.weight" in module.state_dict()  # checkpoints keep their keys
    scores = trainer.predict(module, dm)
    assert torch.isfinite(scores[0].score).all()


@pytest.mark.parametrize("setting, modes_passed", [(True, [None]), (False, []),
                                                   ("reduce-overhead", ["reduce-overhead"])])
def test_compile_switch_names_torch_compile_mode(monkeypatch, setting, modes_passed):
    """``model.compile=reduce-overhead`` (CUDA graphs for launch-bound steps) reaches
    torch.compile; ``true`` is its default mode."""
    modes = []
    monkeypatch.setattr(torch, "compile", lambda fn, mode=None: modes.append(mode) or fn)
    convstae(compile=setting).configure_model()
    assert modes == modes_passed
    with pytest.raises(ValueError, match="model.compile must be true, false or one of"):
        convstae(compile="reduce_overhead")


# -- GPU rows: chunked recipes and result rows ----------------------------------------------------
def test_gpu_rows_resumes_a_chunked_recipe_and_writes_its_row(tmp_path):
    """A 2-epoch recipe in 1-epoch chunks, one chunk per command (a budget the second chunk
    cannot fit): the second command resumes from last.ckpt, tests, and the row shows the
    metrics.json numbers, both commands' wall time and the command without bookkeeping."""
    script = [sys.executable, str(REPO / "scripts" / "gpu_rows.py"), "convstae_synthetic",
              "--out", str(tmp_path / "runs"), "--chunk-epochs", "1", "--budget-min", "0.01"]
    for key in ("trainer.max_epochs=2", "~logger", "eval.plots=false", "data.num_train_videos=2",
                "data.num_test_videos=2", "data.frames_per_video=24", "data.size=32"):
        script += ["--set", key]
    first = subprocess.run(script, cwd=tmp_path, capture_output=True, text=True)
    assert first.returncode == 1, first.stdout + first.stderr
    assert "run the same command again" in first.stdout
    run_dir = tmp_path / "runs" / "convstae_synthetic"
    assert not (run_dir / "metrics.json").exists()
    assert json.loads((run_dir / "run.json").read_text())["status"] == "ok"
    second = subprocess.run(script, cwd=tmp_path, capture_output=True, text=True)
    assert second.returncode == 0, second.stdout + second.stderr
    info = json.loads((run_dir / "run.json").read_text())
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert info["commands"] == 2 and info["status"] == "ok"
    assert torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=False)["epoch"] == 1
    row = read_run(run_dir)
    cells = row.cells()
    assert cells[5] == f"{metrics['auc_micro']:.3f}" and cells[8] == f"{metrics['eer']:.3f}"
    assert "(2 commands)" in cells[4]
    assert "ckpt_path" not in row.command and "hydra.run.dir" not in row.command
    assert row.command.startswith("python -m vad.train experiment=convstae_synthetic")
    assert f"| {cells[5]} |" in markdown_table([row]) and f"| {cells[5]} |" in second.stdout


def test_bench_times_training_steps_and_scores_every_test_frame_once():
    from vad.bench import bench_method

    overrides = ["data.num_train_videos=1", "data.num_test_videos=2", "data.frames_per_video=24",
                 "data.size=32", "data.batch_size=4"]
    args = argparse.Namespace(steps=3, warmup=1, infer_batch=16, stream_frames=5,
                              overrides=overrides)
    result = bench_method("convstae", args)
    assert result["infer_frames"] == 2 * 24  # T=10, target all: every test frame scored once
    assert result["train_clips_s"] > 0 and result["infer_fps"] > 0
    assert 0 <= result["data_wait"] < 1
    assert result["size"] == "32x32" and result["clip"] == "T=10 all"
    assert 0 < result["stream_p50_ms"] <= result["stream_p99_ms"] and result["flops"] > 0
