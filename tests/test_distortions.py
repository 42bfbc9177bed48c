"""Test-time distortions (vad/data/distortions.py) and how the data module applies them."""

import numpy as np
import pytest

from tests.helpers import tiny_synthetic
from vad.data.distortions import Distortion, blur, brightness, noise, rain, subsample

CLIP = {"length": 4, "target": "last", "dilation": 1, "future_offset": 1}


def textured(dtype=np.uint8, n=4, size=32, seed=0):
    """Frames ``(n, size, size, 1)`` with fine texture, in the middle of the range."""
    values = np.random.default_rng(seed).uniform(0.2, 0.6, (n, size, size, 1))
    return (values * 255).round().astype(np.uint8) if dtype == np.uint8 else values.astype(dtype)


@pytest.mark.parametrize("dtype", [np.uint8, np.float32])
def test_brightness_scales_the_mean(dtype):
    frames = textured(dtype)
    for factor in (0.5, 1.5):
        out = brightness(frames, factor)
        assert out.dtype == frames.dtype
        np.testing.assert_allclose(out.astype(float).mean(), factor * frames.astype(float).mean(),
                                   rtol=0.01)
    np.testing.assert_array_equal(brightness(frames, 1.0), frames)
    assert brightness(frames, 10.0).max() == (255 if dtype == np.uint8 else 1.0)  # clipped


def high_frequency_energy(frames) -> float:
    """Mean squared difference of horizontally and vertically neighbouring pixels."""
    x = frames.astype(float)
    return float((np.diff(x, axis=1) ** 2).mean() + (np.diff(x, axis=2) ** 2).mean())


@pytest.mark.parametrize("dtype", [np.uint8, np.float32])
def test_blur_removes_high_frequencies_and_keeps_the_mean(dtype):
    frames = textured(dtype)
    energies = [high_frequency_energy(blur(frames, sigma)) for sigma in (0.0, 1.0, 2.0)]
    assert energies[0] == high_frequency_energy(frames)
    assert energies[1] < 0.3 * energies[0] and energies[2] < energies[1]
    np.testing.assert_allclose(blur(frames, 1.0).astype(float).mean(),
                               frames.astype(float).mean(), rtol=0.01)


@pytest.mark.parametrize("dtype, full", [(np.uint8, 255.0), (np.float32, 1.0)])
def test_noise_has_the_requested_std_and_repeats_under_a_seed(dtype, full):
    frames = np.full((8, 32, 32, 1), 128 if dtype == np.uint8 else 0.5, dtype=dtype)
    out = noise(frames, 0.05, seed=3)
    difference = out.astype(float) - frames.astype(float)
    assert difference.std() == pytest.approx(0.05 * full, rel=0.03)
    assert abs(difference.mean()) < 0.005 * full
    np.testing.assert_array_equal(out, noise(frames, 0.05, seed=3))
    assert not np.array_equal(out, noise(frames, 0.05, seed=4))
    np.testing.assert_array_equal(noise(frames, 0.0, seed=3), frames)


def test_rain_adds_bright_streaks_new_in_every_frame():
    frames = np.full((4, 64, 64, 1), 40, dtype=np.uint8)
    out = rain(frames, 0.03, seed=1)
    assert (out >= frames).all()
    streak = out[..., 0] > frames[..., 0]
    assert 0.015 < streak.mean() <= 0.03  # covers about `density` (streaks may overlap)
    assert out[..., 0][streak].min() >= 0.3 * 40 + 0.7 * 255 - 1  # bright: opacity 0.7 of white
    # Streaks, not speckle: most streak pixels continue in the next row (one column either way).
    below = np.zeros_like(streak)
    below[:, :-1] = streak[:, 1:] | np.roll(streak, 1, axis=2)[:, 1:] | np.roll(streak, -1, axis=2)[:, 1:]
    assert (streak & below).sum() > 0.7 * streak.sum()
    assert not np.array_equal(streak[0], streak[1])  # rain falls: new streaks per frame
    np.testing.assert_array_equal(out, rain(frames, 0.03, seed=1))
    assert not np.array_equal(out, rain(frames, 0.03, seed=2))
    np.testing.assert_array_equal(rain(frames, 0.0), frames)


def test_subsample_keeps_every_dth_frame():
    frames = np.arange(10, dtype=np.uint8)[:, None, None, None] * np.ones((1, 2, 2, 1), np.uint8)
    np.testing.assert_array_equal(subsample(frames, 3)[:, 0, 0, 0], [0, 3, 6, 9])
    np.testing.assert_array_equal(Distortion("subsample", 3).kept(10), [0, 3, 6, 9])
    np.testing.assert_array_equal(Distortion("noise", 0.1).kept(10), np.arange(10))
    with pytest.raises(ValueError, match="one of"):
        Distortion("fog", 1.0)


def test_datamodule_scores_distorted_test_frames_and_kept_labels():
    dm = tiny_synthetic(CLIP, frames_per_video=30, num_test_videos=2)
    dm.prepare_data()
    dm.setup("test")
    clean = [dm.datasets["test"].store.video(i).copy() for i in range(2)]
    labels = [r.labels.copy() for r in dm.test_records]
    assert any(y.any() for y in labels)

    dm.set_test_distortion(Distortion("rain", 0.05, seed=7))
    dm.setup("test")
    for i in range(2):  # video i seeded with seed + i: repeatable, and each video its own rain
        np.testing.assert_array_equal(dm.datasets["test"].store.video(i),
                                      rain(clean[i], 0.05, seed=7 + i))
    assert [r.num_frames for r in dm.test_records] == [30, 30]

    dm.set_test_distortion(Distortion("subsample", 2))
    dm.setup("test")
    for i, record in enumerate(dm.test_records):
        np.testing.assert_array_equal(dm.datasets["test"].store.video(i), clean[i][::2])
        np.testing.assert_array_equal(record.labels, labels[i][::2])
        assert record.num_frames == 15
    batch = dm.datasets["test"].__getitems__(range(len(dm.datasets["test"])))
    assert batch.frames.max() == 14  # clips index the kept frames only

    dm.set_test_distortion(None)
    dm.setup("test")
    np.testing.assert_array_equal(dm.datasets["test"].store.video(0), clean[0])
    assert [len(r.labels) for r in dm.test_records] == [30, 30]
