import numpy as np
import torch

from vad.data.synthetic import ANOMALY_KINDS, SyntheticDataModule, generate_split


def test_generator_is_deterministic_and_labelled():
    a = generate_split(0, 3, 40, 32, anomalous=True)
    b = generate_split(0, 3, 40, 32, anomalous=True)
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x.source, y.source)
        np.testing.assert_array_equal(x.labels, y.labels)
    assert [r.extras["anomaly"] for r in a] == list(ANOMALY_KINDS)
    # One anomalous object per video: one run of anomalous frames, pinned exactly.
    assert [np.flatnonzero(r.labels).tolist() for r in a] == [
        list(range(11, 40)), list(range(19, 40)), list(range(20, 40))]
    assert a[0].source.shape == (40, 32, 32, 1) and a[0].source.dtype == np.uint8
    assert not np.array_equal(generate_split(1, 1, 40, 32, True)[0].source, a[0].source)


def test_training_split_is_normal_and_shares_the_scene():
    train = generate_split(0, 2, 30, 32, anomalous=False)
    test = generate_split(0, 1, 30, 32, anomalous=True)
    assert all(r.labels is None and r.extras["anomaly"] is None for r in train)
    # Same fixed camera: per-pixel medians over time (the background) agree across splits.
    background = [np.median(r.source[..., 0], axis=0) for r in (train[0], test[0])]
    assert np.median(np.abs(background[0] - background[1])) < 3  # lanes aside


def test_anomalous_frames_are_not_brighter_overall():
    """An untrained model must not find anomalies by counting bright pixels."""
    records = generate_split(0, 6, 80, 64, anomalous=True)
    energy = [np.abs(r.source[..., 0].astype(float) - 128).sum((1, 2)) for r in records]
    ratio = np.mean([e[r.labels].mean() / e[~r.labels].mean() for e, r in zip(energy, records)])
    assert 0.95 < ratio < 1.05


def test_device_resident_batches_equal_host_batches():
    clip = {"length": 4, "target": "last"}
    host = SyntheticDataModule(clip=clip, num_train_videos=2, num_test_videos=1,
                               frames_per_video=20, size=32)
    resident = SyntheticDataModule(clip=clip, num_train_videos=2, num_test_videos=1,
                                   frames_per_video=20, size=32, device_resident=True)
    for dm in (host, resident):
        dm.setup()
    a, b = host.datasets["test"][5], resident.datasets["test"][5]
    assert isinstance(resident.datasets["test"].store.frames, torch.Tensor)
    torch.testing.assert_close(a.clip, b.clip)
    assert a.clip.dtype == torch.uint8 and a.clip.shape == (4, *host.datasets["test"].frame_size, 1)
    assert a.frames.tolist() == b.frames.tolist() == [8]


def test_default_benchmark_labels_are_pinned():
    """The test split every documented synthetic number is measured on (conf/data/synthetic.yaml:
    6 videos of 80 frames at 64x64, seed 0): 234 anomalous frames, one run per video."""
    records = generate_split(0, 6, 80, 64, anomalous=True)
    runs = [(29, 79), (28, 52), (39, 79), (27, 79), (34, 58), (41, 79)]
    assert [np.flatnonzero(r.labels).tolist() for r in records] == [
        list(range(a, b + 1)) for a, b in runs]
    assert sum(int(r.labels.sum()) for r in records) == 234
