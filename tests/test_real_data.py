"""The real benchmark files in ../shared/data: exact counts, label alignment, sources agree.

Each test skips, with the reason, when its folder is absent (the project must pass without it).
Frames are decoded at small sizes and for a few videos only, to keep this file fast.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import scipy.io

from vad.data.decode import decode_record
from vad.data.labels import load_labels, read_frame_mask, read_gt_mat, read_m_file
from vad.data.layouts import read_dataset
from vad.data.ped import PED1, PED2

SHARED = Path(__file__).parents[2] / "shared" / "data"


def needs(folder: str):
    """Skip unless ``../shared/data/<folder>`` exists."""
    return pytest.mark.skipif(not (SHARED / folder).is_dir(),
                              reason=f"real data {SHARED / folder} is absent")


def _counts(found) -> tuple[int, int, int, int, int]:
    return (len(found.train), sum(r.num_frames for r in found.train), len(found.test),
            sum(r.num_frames for r in found.test), sum(int(r.labels.sum()) for r in found.test))


@needs("ped2")
def test_ped2_frames_counts_and_alignment():
    found = read_dataset(PED2, SHARED / "ped2")
    assert found.layout == "common"
    assert _counts(found) == (16, 2550, 12, 2010, 1648)
    first = found.test[0]
    assert first.name == "01" and first.num_frames == 180
    # Test video 01: frames 61-180 (1-based) anomalous, i.e. 0-based 60..179.
    assert np.flatnonzero(first.labels).tolist() == list(range(60, 180))


@needs("ped2-mp4")
@needs("ped2")
def test_ped2_mp4_matches_frames():
    frames = read_dataset(PED2, SHARED / "ped2")
    videos = read_dataset(PED2, SHARED / "ped2-mp4")
    assert _counts(videos) == (16, 2550, 12, 2010, 1648)
    assert [r.name for r in videos.test] == [r.name for r in frames.test]
    for a, b in zip(frames.test, videos.test, strict=True):
        assert a.num_frames == b.num_frames
        np.testing.assert_array_equal(a.labels, b.labels)
    for a, b in ((frames.test[0], videos.test[0]), (frames.train[5], videos.train[5])):
        jpeg = decode_record(a, (60, 90), grayscale=True).astype(np.int16)
        h264 = decode_record(b, (60, 90), grayscale=True).astype(np.int16)
        assert np.abs(jpeg - h264).mean() < 2.0  # grey levels; a one-frame shift gives > 2
        assert np.abs(jpeg[1:] - h264[:-1]).mean() > np.abs(jpeg - h264).mean()


@needs("ped1-mp4")
def test_ped1_mp4_counts():
    found = read_dataset(PED1, SHARED / "ped1-mp4")
    assert _counts(found) == (34, 6800, 36, 7200, 4045)
    assert {r.num_frames for r in found.train + found.test} == {200}
    # Test video 05 has two segments, [5:90, 140:200] (1-based).
    expected = np.r_[4:90, 139:200]
    assert np.flatnonzero(found.test[4].labels).tolist() == expected.tolist()


@needs("ucsd-labels")
@pytest.mark.parametrize("number, mat, folder", [(1, "ped1.mat", "ped1-mp4"),
                                                 (2, "ped2.mat", "ped2")])
def test_ucsd_m_and_mat_label_sources_agree(number, mat, folder):
    if not (SHARED / folder).is_dir():
        pytest.skip(f"real data {SHARED / folder} is absent")
    m_file = SHARED / "ucsd-labels" / f"UCSDped{number}.m"
    assert read_m_file(m_file) == read_gt_mat(SHARED / folder / mat)
    via_m = read_dataset({1: PED1, 2: PED2}[number], SHARED / folder, labels=m_file)
    via_mat = read_dataset({1: PED1, 2: PED2}[number], SHARED / folder)
    assert "UCSD .m" in via_m.label_source and "gt .mat" in via_mat.label_source
    for a, b in zip(via_m.test, via_mat.test, strict=True):
        np.testing.assert_array_equal(a.labels, b.labels)


@needs("avenue-labels")
def test_avenue_label_sources():
    masks = SHARED / "avenue-labels" / "ground_truth_demo" / "testing_label_mask"
    assert len(list(masks.glob("*_label.mat"))) == 21
    # Each volLabel cell holds one mask per frame, so its shape is the video's length.
    lengths = [scipy.io.whosmat(masks / f"{i}_label.mat")[0][1][1] for i in range(1, 22)]
    assert lengths[:3] == [1439, 1211, 923] and sum(lengths) == 15324
    videos = [(f"{i:02d}", n) for i, n in enumerate(lengths, 1)]
    vol = load_labels(masks, videos)  # the folder, as the avenue layout reads it (~15 s)
    assert [len(a) for a in vol] == lengths
    assert sum(int(a.sum()) for a in vol) == 3712
    npy = load_labels(SHARED / "avenue-labels" / "frame_labels_avenue.npy", videos)
    assert sum(int(a.sum()) for a in npy) == 3867
    assert sum(int((a != b).sum()) for a, b in zip(npy, vol, strict=True)) == 441


@needs("shanghaitech-labels")
def test_shanghaitech_frame_masks():
    masks = sorted((SHARED / "shanghaitech-labels" / "test_frame_mask").glob("*.npy"))
    labels = [read_frame_mask(path) for path in masks]
    assert len(masks) == 107
    assert sum(len(a) for a in labels) == 40791
    assert sum(int(a.sum()) for a in labels) == 17326
    assert masks[0].stem == "01_0014" and len(labels[0]) == 265 and int(labels[0].sum()) == 76
    assert sorted({int(p.stem[:2]) for p in masks}) == list(range(1, 13))


@needs("ped2-mp4")
def test_ped2_mp4_datamodule_covers_every_test_frame(tmp_path):
    from vad.data.ped import Ped2DataModule

    dm = Ped2DataModule(root=str(SHARED / "ped2-mp4"), clip={"length": 1}, image_size=(32, 32),
                        cache_dir=str(tmp_path))
    dm.setup("test")  # decodes and caches the test videos only (the train split is tested above)
    index = dm.datasets["test"].index
    assert len(index) == 2010  # one clip per test frame
    assert sum(int(r.labels.sum()) for r in dm.test_records) == 1648
    assert len(list(tmp_path.glob("*.npy"))) == 12


@pytest.mark.parametrize("cls_name, folder", [("Ped2DataModule", "ped2"),
                                              ("Ped2DataModule", "ped2-mp4"),
                                              ("Ped1DataModule", "ped1-mp4")])
def test_real_benchmarks_pass_the_published_counts_check(cls_name, folder):
    """data.strict=true (the configs' default) accepts the real sets; Ped1's counts reject Ped2."""
    if not (SHARED / folder).is_dir():
        pytest.skip(f"real data {SHARED / folder} is absent")
    from vad.data import ped
    from vad.data.layouts import DatasetCountError, check_counts

    found = getattr(ped, cls_name)(root=str(SHARED / folder), clip={"length": 1},
                                   strict=True).found
    assert len(found.test) == getattr(ped, cls_name).benchmark.videos["test"]
    other = ped.Ped1DataModule if cls_name == "Ped2DataModule" else ped.Ped2DataModule
    with pytest.raises(DatasetCountError, match="test videos, the benchmark has"):
        check_counts(getattr(ped, cls_name).dataset, found, other.benchmark, strict=True)
