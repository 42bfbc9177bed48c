import numpy as np
import pytest

from vad.data.clips import ClipSpec, build_clip_index


def frames_of(index, spec):
    return [start + spec.offsets * step for _, start, step in index]


def test_last_target_leaves_first_frames_unscored():
    spec = ClipSpec(length=4, target="last")
    index = build_clip_index([(0, 0, 10)], spec)
    assert len(index) == 7
    targets = sorted({int(f[spec.target_positions][0]) for f in frames_of(index, spec)})
    assert targets == list(range(3, 10))  # frames 0..2 are unscorable


def test_next_target_appends_future_frame():
    spec = ClipSpec(length=3, target="next", future_offset=2)
    np.testing.assert_array_equal(spec.offsets, [0, 1, 2, 4])
    index = build_clip_index([(0, 0, 10)], spec)
    assert index[:, 1].max() == 5  # last clip loads frames 5, 6, 7 and 9
    assert spec.target_positions.tolist() == [3]


def test_strides_and_dilation():
    spec = ClipSpec(length=3, target="all", dilation=2)
    index = build_clip_index([(0, 0, 20)], spec, strides=(1, 2))
    steps = set(index[:, 2].tolist())
    assert steps == {2, 4}
    assert all(f.max() < 20 for f in frames_of(index, spec))
    assert (index[index[:, 2] == 4][:, 1].max()) == 20 - 9


def test_window_step_with_cover_end_reaches_every_frame():
    spec = ClipSpec(length=4, target="all")
    index = build_clip_index([(0, 0, 11), (1, 0, 3)], spec, window_step=4, cover_end=True)
    covered = set(np.concatenate(frames_of(index[index[:, 0] == 0], spec)).tolist())
    assert covered == set(range(11))
    assert not (index[:, 0] == 1).any()  # video 1 is shorter than a clip


def test_bad_spec_rejected():
    with pytest.raises(ValueError, match="target"):
        ClipSpec(length=3, target="middle")
