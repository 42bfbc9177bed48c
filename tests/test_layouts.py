"""Layouts, decoding, caching and the five DataModules, on the fakes of tests/data/make_fakes.py.

The fixtures ``fakes_root`` and ``fake_copy`` come from tests/fakes_fixtures.py (via conftest).
Counts are written out here, not read from the generator, so that a wrong reader fails.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch
from hydra.utils import get_class, instantiate
from omegaconf import OmegaConf

from vad.data import decode as decode_module
from vad.data.avenue import AVENUE, AvenueDataModule
from vad.data.cache import build_cache, cache_key, cache_path, load_frames
from vad.data.decode import CorruptVideoError, decode_record
from vad.data.labels import LabelCountError
from vad.data.layouts import DatasetLayoutError, read_dataset
from vad.data.ped import PED1, PED2, Ped1DataModule, Ped2DataModule
from vad.data.shanghaitech import SHANGHAITECH, ShanghaiTechDataModule
from vad.data.streetscene import STREETSCENE, StreetSceneDataModule

CONF = Path(__file__).parents[1] / "conf" / "data"
DATASETS = {info.name: info for info in (PED1, PED2, AVENUE, SHANGHAITECH, STREETSCENE)}

# dataset, fake root, options, layout found, train videos/frames, test videos/frames, anomalous
COUNTS = [
    ("ped1", "ped1/ucsd", {}, "ucsd", 3, 30, 4, 40, 23),
    ("ped1", "ped1/frames", {}, "common", 3, 30, 4, 40, 23),
    ("ped1", "ped1/videos", {}, "common", 3, 30, 4, 40, 23),
    ("ped1", "ped1/ucsd/UCSDped1", {}, "ucsd", 3, 30, 4, 40, 23),
    ("ped2", "ped2/ucsd", {}, "ucsd", 2, 18, 3, 27, 12),
    ("ped2", "ped2/frames", {"layout": "frames"}, "frames", 2, 18, 3, 27, 12),
    ("ped2", "ped2/videos", {"layout": "videos"}, "videos", 2, 18, 3, 27, 12),
    ("ped2", "ped2/frames", {"labels": "../ucsd/UCSDped2/Test/UCSDped2.m"}, "common",
     2, 18, 3, 27, 12),
    ("avenue", "avenue/original", {"labels": "ground_truth_demo/testing_label_mask"}, "avenue",
     2, 21, 3, 30, 11),
    ("avenue", "avenue/original", {"labels": "avenue.mat"}, "avenue", 2, 21, 3, 30, 12),
    ("avenue", "avenue/original", {"labels": "frame_labels_avenue.npy"}, "avenue",
     2, 21, 3, 30, 13),
    ("avenue", "avenue/common", {"labels": "avenue.mat"}, "common", 2, 21, 3, 30, 12),
    ("shanghaitech", "shanghaitech", {}, "common", 3, 27, 3, 24, 11),
    ("shanghaitech", "shanghaitech", {"scenes": [1]}, "common", 2, 18, 2, 18, 6),
    ("shanghaitech", "shanghaitech", {"scenes": [2]}, "common", 1, 9, 1, 6, 5),
    ("streetscene", "streetscene", {}, "streetscene", 2, 14, 2, 17, 10),
    ("streetscene", "streetscene/StreetScene", {}, "streetscene", 2, 14, 2, 17, 10),
]


@pytest.mark.parametrize(
    "dataset, root, options, layout, n_train, f_train, n_test, f_test, anomalous", COUNTS,
    ids=[f"{c[0]}-{c[1]}-{'-'.join(map(str, c[2].values())) or 'default'}" for c in COUNTS],
)
def test_counts_per_dataset_and_layout(
    fakes_root, dataset, root, options, layout, n_train, f_train, n_test, f_test, anomalous
):
    found = read_dataset(DATASETS[dataset], fakes_root / root, **options)
    assert found.layout == layout
    assert len(found.train) == n_train
    assert sum(r.num_frames for r in found.train) == f_train
    assert len(found.test) == n_test
    assert sum(r.num_frames for r in found.test) == f_test
    assert sum(int(r.labels.sum()) for r in found.test) == anomalous
    assert all(r.labels is None for r in found.train)
    assert all(r.labels.dtype == bool and len(r.labels) == r.num_frames for r in found.test)


def _anomalous(record) -> list[int]:
    return np.flatnonzero(record.labels).tolist()


def test_ucsd_labels_names_and_pixel_masks(fakes_root):
    found = read_dataset(PED1, fakes_root / "ped1/ucsd")
    assert [r.name for r in found.test] == ["Test001", "Test002", "Test003", "Test004"]
    assert [r.num_frames for r in found.test] == [10, 12, 8, 10]
    # .m ranges [3:5], [1:2, 8:10], [4:8], [1:10] (1-based) → 0-based frames
    assert [_anomalous(r) for r in found.test] == [
        [2, 3, 4], [0, 1, 7, 8, 9], [3, 4, 5, 6, 7], list(range(10))]
    assert found.test[0].extras["pixel_masks"].name == "Test001_gt"
    assert "pixel_masks" not in found.test[1].extras
    assert found.test[0].source[0].name == "001.tif"  # TIF frames, 1-based, in order
    assert "UCSD .m" in found.label_source


def test_all_ped_layouts_agree(fakes_root):
    ucsd, frames, videos = (read_dataset(PED2, fakes_root / f"ped2/{kind}")
                            for kind in ("ucsd", "frames", "videos"))
    for a, b, c in zip(ucsd.test, frames.test, videos.test, strict=True):
        assert a.num_frames == b.num_frames == c.num_frames
        assert _anomalous(a) == _anomalous(b) == _anomalous(c)
    assert [r.name for r in videos.test] == ["01", "02", "03"]
    assert videos.test[0].source.suffix == ".mp4"
    grey_frames = decode_record(frames.test[1], None, grayscale=True)
    grey_video = decode_record(videos.test[1], None, grayscale=True)
    assert grey_frames.shape == grey_video.shape == (10, 32, 64, 1)
    # JPEG vs MPEG-4 at 64x32: codec noise only (a frame mix-up differs by ~40 grey levels)
    assert np.abs(grey_frames.astype(int) - grey_video).mean() < 6


def test_avenue_label_sources_and_masks(fakes_root):
    vol = read_dataset(AVENUE, fakes_root / "avenue/original",
                       labels="ground_truth_demo/testing_label_mask")
    assert [_anomalous(r) for r in vol.test] == [[1, 2, 3], [7], [5, 6, 7, 8, 9, 10, 11]]
    assert vol.test[2].extras["pixel_mask_file"].name == "3_label.mat"
    assert "volLabel" in vol.label_source
    npy = read_dataset(AVENUE, fakes_root / "avenue/original", labels="frame_labels_avenue.npy")
    assert [_anomalous(r) for r in npy.test] == [[1, 2, 3, 4, 5], [6, 7], [5, 6, 7, 8, 9, 10]]
    frames = decode_record(vol.test[0], None, grayscale=False)
    assert frames.shape == (10, 36, 64, 3)


def test_shanghaitech_scenes_masks_and_sources(fakes_root):
    found = read_dataset(SHANGHAITECH, fakes_root / "shanghaitech")
    assert [r.name for r in found.train] == ["01_001", "01_002", "02_001"]
    assert all(r.source.suffix == ".avi" for r in found.train)  # training from videos
    assert all(isinstance(r.source, list) for r in found.test)  # testing from frames
    assert [_anomalous(r) for r in found.test] == [[2, 3, 4, 5], [0, 1], [1, 2, 3, 4, 5]]
    assert [r.extras["scene"] for r in found.test] == [1, 1, 2]
    assert found.test[0].extras["pixel_mask_file"].name == "01_0014.npy"


def test_streetscene_tracks_kept(fakes_root):
    found = read_dataset(STREETSCENE, fakes_root / "streetscene")
    assert [r.name for r in found.test] == ["Test001", "Test002"]
    assert [_anomalous(r) for r in found.test] == [[2, 3, 4, 5, 6, 7], [0, 1, 5, 6]]
    tracks = found.test[0].extras["tracks"]
    assert len(tracks) == 7 and sorted(set(tracks["track"].tolist())) == [0, 1]
    assert tracks[0]["frame"] == 2 and tracks[0]["w"] == 6 and tracks[0]["h"] == 8
    assert found.test[0].source[0].name == "00001.jpg"


# -- every bad input raises the documented error --------------------------------------------------
def test_missing_root_names_dataset_path_layouts_and_docs(tmp_path):
    missing = tmp_path / "nowhere" / "ped2"
    with pytest.raises(DatasetLayoutError) as err:
        read_dataset(PED2, missing)
    message = str(err.value)
    for part in ("UCSD Ped2", str(missing), "ucsd", "common", "UCSDpedN/Train/TrainNNN",
                 "docs/datasets.md#ucsd-ped1-and-ped2", "data.root"):
        assert part in message


def test_root_in_no_known_layout(tmp_path):
    (tmp_path / "stuff").mkdir()
    with pytest.raises(DatasetLayoutError, match=r"holds none of the layouts tried") as err:
        read_dataset(AVENUE, tmp_path)
    assert "training_videos/NN.avi" in str(err.value)
    assert "docs/datasets.md#cuhk-avenue" in str(err.value)


def test_unknown_and_wrong_forced_layout(fakes_root):
    with pytest.raises(DatasetLayoutError, match=r"(?s)unknown layout 'mp4'.*ucsd"):
        read_dataset(PED2, fakes_root / "ped2/frames", layout="mp4")
    with pytest.raises(DatasetLayoutError, match=r"holds none of the layouts tried:\n  ucsd"):
        read_dataset(PED2, fakes_root / "ped2/frames", layout="ucsd")
    with pytest.raises(DatasetLayoutError, match="holds none"):
        read_dataset(PED2, fakes_root / "ped2/frames", layout="videos")


def test_empty_video_folder(fake_copy):
    root = fake_copy("ped2/frames")
    (root / "testing/frames/04").mkdir()
    (root / "testing/frames/04/notes.txt").write_text("no frames here")
    with pytest.raises(DatasetLayoutError, match=r"video folder .*04 holds no frames"):
        read_dataset(PED2, root)


def test_missing_label_file(fake_copy):
    root = fake_copy("ped2/frames")
    (root / "ped2.mat").unlink()
    with pytest.raises(DatasetLayoutError, match=r"cannot find .*ped2.mat.*data.labels"):
        read_dataset(PED2, root)


def test_label_count_mismatch_names_video_and_counts(fake_copy):
    root = fake_copy("shanghaitech")
    np.save(root / "testing/test_frame_mask/01_0015.npy", np.zeros(7, np.uint8))
    with pytest.raises(LabelCountError, match=r"'01_0015' cover 7 frames but the video has 8"):
        read_dataset(SHANGHAITECH, root)


def test_label_range_past_video_end(fake_copy):
    root = fake_copy("ped1/ucsd")
    (root / "UCSDped1/Test/Test003/008.tif").unlink()  # 8 → 7 frames; labels reach frame 8
    with pytest.raises(LabelCountError, match=r"'Test003' reach frame 8 but the video has 7"):
        read_dataset(PED1, root)


def test_extra_video_without_labels(fake_copy):
    root = fake_copy("ped2/frames")
    (root / "testing/frames/04").mkdir()
    os.link(root / "testing/frames/01/000.jpg", root / "testing/frames/04/000.jpg")
    with pytest.raises(LabelCountError, match=r"labels for 3 videos but the test split has 4"):
        read_dataset(PED2, root)


def test_corrupt_frame_names_the_file(fake_copy):
    root = fake_copy("ped2/frames")
    bad = root / "training/frames/02/003.jpg"
    bad.write_bytes(b"not a jpeg at all")
    found = read_dataset(PED2, root)
    with pytest.raises(CorruptVideoError, match=str(bad)):
        decode_record(found.train[1], (16, 16), True)


def test_truncated_jpeg_names_the_file(fake_copy):
    root = fake_copy("streetscene")
    bad = root / "StreetScene/Test/Test002/00004.jpg"
    bad.write_bytes(bad.read_bytes()[:-200])
    found = read_dataset(STREETSCENE, root)
    with pytest.raises(CorruptVideoError, match=rf"{bad}.*truncated"):
        decode_record(found.test[1], None, False)


@pytest.mark.parametrize("fake, video", [("ped2/videos", "training/videos/02.mp4"),
                                         ("ped1/videos", "testing/videos/03.avi")])
def test_truncated_video_names_the_file(fake_copy, fake, video):
    root = fake_copy(fake)
    path = root / video
    path.write_bytes(path.read_bytes()[: int(path.stat().st_size * 0.8)])
    with pytest.raises(CorruptVideoError, match=rf"{path} is truncated"):
        read_dataset(DATASETS[fake.split("/")[0]], root)


def test_video_and_frame_folder_with_one_name(fake_copy, fakes_root):
    root = fake_copy("ped2/frames")
    os.link(fakes_root / "ped2/videos/training/videos/01.mp4", root / "training/frames/01.mp4")
    with pytest.raises(DatasetLayoutError, match="'01' appears twice"):
        read_dataset(PED2, root)


# -- the cache ------------------------------------------------------------------------------------
def _one_record(fakes_root, kind="videos"):
    return read_dataset(PED2, fakes_root / f"ped2/{kind}").test[1]


def test_cache_round_trip_is_memory_mapped(fakes_root, tmp_path):
    record = _one_record(fakes_root)
    build_cache([record], tmp_path, (16, 24), True)
    frames = load_frames(record, tmp_path, (16, 24), True)
    assert isinstance(frames, np.memmap)
    np.testing.assert_array_equal(frames, decode_record(record, (16, 24), True))
    assert [p.name for p in tmp_path.iterdir()] == [cache_path(record, tmp_path, (16, 24),
                                                               True).name]


def test_cache_key_covers_size_mtime_resolution_colour(fakes_root, tmp_path):
    record = read_dataset(PED2, fakes_root / "ped2/frames").test[0]
    key = cache_key(record, (16, 16), True)
    assert key == cache_key(record, [16, 16], True)
    assert key != cache_key(record, (16, 24), True)
    assert key != cache_key(record, (16, 16), False)
    copy = tmp_path / "000.jpg"
    copy.write_bytes(record.source[0].read_bytes())
    record.source[0] = copy
    moved = cache_key(record, (16, 16), True)
    assert moved != key  # another path
    os.utime(copy, ns=(0, 10**9))
    assert cache_key(record, (16, 16), True) != moved  # another mtime


def test_interrupted_cache_build_is_never_trusted(fakes_root, tmp_path, monkeypatch):
    record = _one_record(fakes_root, "frames")
    real = decode_module.iter_record_batches

    def dies_after_first_batch(*args):
        batches = real(*args)
        yield next(batches)
        raise KeyboardInterrupt  # a killed job

    monkeypatch.setattr("vad.data.decode.VIDEO_BATCH", 4)  # 10 frames: 3 batches
    monkeypatch.setattr(decode_module, "iter_record_batches", dies_after_first_batch)
    with pytest.raises(KeyboardInterrupt):
        build_cache([record], tmp_path, (16, 16), True)
    assert list(tmp_path.iterdir()) == []  # neither a cache file nor a temporary one

    # A temporary file left by a job killed outright (SIGKILL) is ignored as well.
    target = cache_path(record, tmp_path, (16, 16), True)
    (tmp_path / f".{target.stem}.abc123.tmp").write_bytes(b"\x93NUMPY half")
    monkeypatch.setattr(decode_module, "iter_record_batches", real)
    frames = load_frames(record, tmp_path, (16, 16), True)
    np.testing.assert_array_equal(frames, decode_record(record, (16, 16), True))


def test_damaged_cache_file_is_decoded_again(fakes_root, tmp_path):
    record = _one_record(fakes_root)
    build_cache([record], tmp_path, (16, 16), True)
    path = cache_path(record, tmp_path, (16, 16), True)
    path.write_bytes(path.read_bytes()[:-100])  # e.g. a full disk under another tool
    frames = load_frames(record, tmp_path, (16, 16), True)
    assert frames.shape == (10, 16, 16, 1)
    np.testing.assert_array_equal(frames, decode_record(record, (16, 16), True))


def test_corrupt_source_leaves_no_cache(fake_copy, tmp_path):
    root = fake_copy("ped2/frames")
    (root / "testing/frames/03/005.jpg").write_bytes(b"")
    found = read_dataset(PED2, root)
    cache = tmp_path / "cache"
    with pytest.raises(CorruptVideoError, match="005.jpg"):
        build_cache(found.test, cache, (16, 16), True)
    assert sorted(p.name.split("-")[0] for p in cache.iterdir()) == ["01", "02"]


# -- the DataModules and their configs ------------------------------------------------------------
DATAMODULES = [
    (Ped1DataModule, "ped1/ucsd", {}, 40 - 3 * 4, "UCSD .m"),
    (Ped2DataModule, "ped2/videos", {}, 27 - 3 * 3, "gt .mat"),
    (AvenueDataModule, "avenue/original", {}, 30 - 3 * 3, "volLabel"),
    (ShanghaiTechDataModule, "shanghaitech", {"scenes": [1]}, 18 - 2 * 3, "scenes [1]"),
    (StreetSceneDataModule, "streetscene", {}, 17 - 2 * 3, "track files"),
]


@pytest.mark.parametrize("cls, root, options, test_clips, source", DATAMODULES,
                         ids=[d[0].__name__ for d in DATAMODULES])
def test_datamodule_on_fakes(fakes_root, tmp_path, cls, root, options, test_clips, source):
    dm = cls(root=str(fakes_root / root), clip={"length": 4}, image_size=(16, 16),
             batch_size=2, cache_dir=str(tmp_path), **options)
    dm.prepare_data()
    dm.setup()
    assert len(dm.datasets["test"]) == test_clips  # every frame from the 4th on, once
    assert source in dm.label_source
    raw = next(iter(dm.test_dataloader()))
    channels = 1 if cls in (Ped1DataModule, Ped2DataModule) else 3
    assert raw.clip.dtype == torch.uint8 and tuple(raw.clip.shape[1:]) == (4, 16, 16, channels)
    batch = dm.transfer(raw, "cpu")
    assert tuple(batch.clip.shape[1:]) == (channels, 4, 16, 16)
    assert float(batch.clip.min()) >= 0.0 and float(batch.clip.max()) <= 1.0


@pytest.mark.parametrize("name", ["ped1", "ped2", "avenue", "shanghaitech", "streetscene"])
def test_data_config_instantiates(name, tmp_path):
    cfg = OmegaConf.create({
        "model": {"clip": {"length": 5, "target": "last"}},
        "paths": {"data_dir": str(tmp_path / "data"), "cache_dir": str(tmp_path / "cache")},
        "data": OmegaConf.load(CONF / f"{name}.yaml"),
    })
    dm = instantiate(cfg.data, _convert_="partial")
    assert dm.root == str(tmp_path / "data" / name)
    assert dm.cache_dir == tmp_path / "cache" / name
    assert dm.spec.length == 5 and dm.image_size == (256, 256)
    with pytest.raises(DatasetLayoutError, match="docs/datasets.md#"):
        dm.records("test")  # the root does not exist: a clear error, not a crash


# -- the full benchmarks' counts (data.strict) ----------------------------------------------------
def test_a_copy_that_is_not_the_benchmark_fails_naming_video_counts_and_docs(fakes_root, caplog):
    from vad.data.layouts import BenchmarkCounts, DatasetCountError, count_mismatches

    root = str(fakes_root / "ped2/frames")
    with pytest.raises(DatasetCountError,
                       match=r"2 train videos, the benchmark has 16.*3 test videos, the benchmark "
                             r"has 12.*docs/datasets.md#ucsd-ped1-and-ped2.*data.strict=false"):
        Ped2DataModule(root=root, clip={"length": 4}, strict=True).records("test")
    assert Ped2DataModule(root=root, clip={"length": 4}, strict=None).found.test  # no check
    with caplog.at_level("WARNING"):
        found = Ped2DataModule(root=root, clip={"length": 4}, strict=False).found
    assert "is not the full benchmark" in caplog.text and len(found.test) == 3

    lengths = [r.num_frames for r in found.test]
    published = BenchmarkCounts(videos={"train": len(found.train), "test": 3},
                                frames={"test": sum(lengths) + 1},
                                video_frames={"test": (*lengths[:1], lengths[1] + 1,
                                                       *lengths[2:])})
    assert count_mismatches(found, published) == [
        f"test video {found.test[1].name} has {lengths[1]} frames, the benchmark's has "
        f"{lengths[1] + 1}",
        f"{sum(lengths):,} test frames, the benchmark has {sum(lengths) + 1:,}"]


@pytest.mark.parametrize("name", ["ped1", "ped2", "avenue", "shanghaitech", "streetscene"])
def test_each_benchmark_config_checks_the_published_counts(name):
    data = OmegaConf.load(Path(__file__).parents[1] / "conf" / "data" / f"{name}.yaml")
    cls = get_class(data._target_)
    assert data.strict is True and cls.dataset is DATASETS[name]
    published = cls.benchmark
    for split, lengths in published.video_frames.items():
        assert len(lengths) == published.videos[split]
        if split in published.frames:
            assert sum(lengths) == published.frames[split]
