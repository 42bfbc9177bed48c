"""Label readers: every format turns into the right frames, and bad counts raise."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.io

from vad.data.labels import (
    LabelCountError,
    LabelError,
    load_labels,
    ranges_to_mask,
    read_frame_mask,
    read_gt_mat,
    read_m_file,
    read_track_file,
    read_vol_label,
    track_mask,
)

M_FILE = """TestVideoFile = {};
% a comment: TestVideoFile{end+1}.gt_frame = [1:2];
TestVideoFile{end+1}.gt_frame = [61:180];
TestVideoFile{end+1}.gt_frame = [5:90, 140:200];
TestVideoFile{end+1}.gt_frame = [1:15 45:113];
TestVideoFile{end+1}.gt_frame = [7];
"""


def _cell(entries: list[np.ndarray]) -> np.ndarray:
    cell = np.empty((1, len(entries)), dtype=object)
    for i, entry in enumerate(entries):
        cell[0, i] = entry
    return cell


def test_m_file_ranges_with_several_segments(tmp_path):
    path = tmp_path / "UCSDped1.m"
    path.write_text(M_FILE)
    assert read_m_file(path) == [
        [(61, 180)],
        [(5, 90), (140, 200)],
        [(1, 15), (45, 113)],
        [(7, 7)],
    ]


def test_m_file_without_entries_raises(tmp_path):
    path = tmp_path / "empty.m"
    path.write_text("x = 1;\n")
    with pytest.raises(LabelError, match="no 'gt_frame"):
        read_m_file(path)


def test_ranges_are_one_based_inclusive():
    mask = ranges_to_mask([(1, 2), (8, 10)], 10, "02", "x.m")
    assert np.flatnonzero(mask).tolist() == [0, 1, 7, 8, 9]


def test_range_past_the_video_names_video_and_counts():
    with pytest.raises(LabelCountError, match=r"video '03'.*frame 12.*has 10 frames"):
        ranges_to_mask([(5, 12)], 10, "03", "x.m")


def test_gt_mat_two_by_k_ranges(tmp_path):
    path = tmp_path / "ped1.mat"
    gt = _cell([
        np.array([[61], [180]], np.uint8),
        np.array([[5, 140], [90, 200]], np.uint8),  # [5 140; 90 200]: two segments
        np.array([[300], [1000]], np.uint16),        # past uint8: must not wrap
    ])
    scipy.io.savemat(path, {"gt": gt})
    assert read_gt_mat(path) == [[(61, 180)], [(5, 90), (140, 200)], [(300, 1000)]]


def test_gt_mat_without_gt_raises(tmp_path):
    path = tmp_path / "other.mat"
    scipy.io.savemat(path, {"labels": np.zeros(3)})
    with pytest.raises(LabelError, match="no variable 'gt'.*labels"):
        read_gt_mat(path)


def test_vol_label_any_pixel(tmp_path):
    masks = [np.zeros((6, 8), np.uint8) for _ in range(5)]
    masks[1][0, 0] = 1
    masks[4][5, 7] = 1
    path = tmp_path / "1_label.mat"
    scipy.io.savemat(path, {"volLabel": _cell(masks)})
    assert read_vol_label(path).tolist() == [False, True, False, False, True]


def test_frame_mask_npy(tmp_path):
    path = tmp_path / "a.npy"
    np.save(path, np.array([[0, 1, 1, 0]], np.int8))
    assert read_frame_mask(path).tolist() == [False, True, True, False]
    np.save(path, np.array([0, 2, 1]))
    with pytest.raises(LabelError, match="0/1"):
        read_frame_mask(path)


def test_track_file_columns_and_frames(tmp_path):
    path = tmp_path / "Test001_gt.txt"
    path.write_text(
        "00003.jpg 0 100.5 200.0 20 40\n"
        "Test001/00004.jpg 0 102.5 200.0 20 40\n"
        "00009.jpg 1 10 20 5 6\n"
    )
    tracks = read_track_file(path)
    assert tracks["frame"].tolist() == [2, 3, 8]
    assert tracks["track"].tolist() == [0, 0, 1]
    assert tracks[1]["cx"] == 102.5 and tracks[2]["h"] == 6
    assert np.flatnonzero(track_mask(tracks, 10, "Test001", path)).tolist() == [2, 3, 8]
    with pytest.raises(LabelCountError, match=r"frame 9 but the video has 8 frames"):
        track_mask(tracks, 8, "Test001", path)


def test_track_file_bad_line_names_file_and_line(tmp_path):
    path = tmp_path / "Test002_gt.txt"
    path.write_text("00001.jpg 0 1 2 3 4\nframe 0 1 2\n")
    with pytest.raises(LabelError, match=r"Test002_gt.txt:2"):
        read_track_file(path)


def test_concatenated_npy_is_split_by_video_length(tmp_path):
    path = tmp_path / "frame_labels.npy"
    np.save(path, np.array([[0, 1, 0, 1, 1, 0, 0]], np.int8))
    labels = load_labels(path, [("01", 3), ("02", 4)])
    assert [lab.tolist() for lab in labels] == [[False, True, False], [True, True, False, False]]
    with pytest.raises(LabelCountError, match=r"holds 7 frame labels.*have 8 frames"):
        load_labels(path, [("01", 3), ("02", 5)])


def test_per_video_npy_length_mismatch_names_video_and_counts(tmp_path):
    np.save(tmp_path / "01_0014.npy", np.zeros(5, np.uint8))
    with pytest.raises(LabelCountError, match=r"video '01_0014' cover 5 frames.*has 6 frames"):
        load_labels(tmp_path, [("01_0014", 6)])
    with pytest.raises(LabelError, match="no label file for test video '01_0015'"):
        load_labels(tmp_path, [("01_0015", 6)])


def test_m_file_with_fewer_entries_than_videos(tmp_path):
    path = tmp_path / "UCSDped2.m"
    path.write_text(M_FILE)
    with pytest.raises(LabelCountError, match=r"labels for 4 videos but the test split has 5"):
        load_labels(path, [(f"{i:02d}", 200) for i in range(5)])
