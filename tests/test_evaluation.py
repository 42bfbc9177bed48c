import numpy as np
import pytest

from vad.evaluation.evaluator import score_videos
from vad.evaluation.metrics import auc, eer
from vad.evaluation.report import read_scores, write_all, write_scores
from vad.evaluation.scores import aggregate_window_scores, normalize, segments


def rank_auc(scores, labels):
    """Independent Mann-Whitney AUC."""
    pos, neg = scores[labels], scores[~labels]
    greater = (pos[:, None] > neg[None, :]).sum() + 0.5 * (pos[:, None] == neg[None, :]).sum()
    return greater / (len(pos) * len(neg))


def test_auc_known_answers_and_raw_scale():
    labels = np.array([0, 0, 1, 1], bool)
    assert auc(np.array([1.0, 2, 3, 4]), labels) == 1.0
    assert auc(np.array([4.0, 3, 2, 1]), labels) == 0.0
    assert auc(np.ones(4), labels) == 0.5
    # Raw reconstruction errors far outside [0, 1] must not be squashed by a sigmoid.
    assert auc(np.array([1000.0, 1001, 1002, 1003]), labels) == 1.0


def test_auc_matches_rank_auc():
    rng = np.random.default_rng(0)
    labels = rng.random(500) < 0.3
    scores = rng.normal(size=500) + labels * 0.8
    assert auc(scores, labels) == pytest.approx(rank_auc(scores, labels), abs=1e-6)


def test_eer_known_curves():
    labels = np.array([0, 0, 0, 0, 1, 1, 1, 1], bool)
    assert eer(np.arange(8.0), labels) == pytest.approx(0.0)
    assert eer(-np.arange(8.0), labels) == pytest.approx(1.0)
    # One negative above one positive: FPR = FNR = 1/4 at the crossing.
    assert eer(np.array([0, 1, 2, 5, 4, 6, 7, 8.0]), labels) == pytest.approx(0.25)


def test_normalizations():
    s = np.array([2.0, 4.0, 6.0])
    np.testing.assert_allclose(normalize(s, "minmax"), [0, 0.5, 1])
    np.testing.assert_allclose(normalize(s, "min_over_max"), [0, 1 / 3, 2 / 3])  # paper 002 Eq. 12
    np.testing.assert_allclose(normalize(s, "none"), s)
    with pytest.raises(ValueError):
        normalize(s, "zscore")


def test_window_aggregation_and_unscored_frames():
    video = np.array([0, 0, 0, 1])
    frame = np.array([1, 1, 2, 0])
    score = np.array([1.0, 3.0, 5.0, 7.0])
    mean = aggregate_window_scores(video, frame, score, [4, 2], "mean")
    np.testing.assert_allclose(mean[0], [np.nan, 2.0, 5.0, np.nan])
    np.testing.assert_allclose(mean[1], [7.0, np.nan])
    assert aggregate_window_scores(video, frame, score, [4, 2], "max")[0][1] == 3.0


def test_micro_raw_macro_differ_and_exclusion():
    # Video a: high scale, anomalies at the end; video b: low scale, anomalies in the middle.
    raw = [np.array([np.nan, 10, 11, 12, 20, 21]), np.array([1.0, 1, 3, 3, 1, 1])]
    labels = [np.array([0, 0, 0, 0, 1, 1], bool), np.array([0, 0, 1, 1, 0, 0], bool)]
    metrics, table, _ = score_videos(["a", "b"], raw, labels, "minmax")
    assert metrics["excluded_frames"] == 1
    assert metrics["num_frames"] == 11
    assert metrics["auc_macro"] == 1.0  # each video ranks perfectly on its own
    assert metrics["auc_micro"] == 1.0  # per-video min-max puts both videos on one scale
    assert metrics["auc_micro_raw"] < 0.9  # video a's normal frames outscore b's anomalies
    assert table.frame[0].tolist() == [1, 2, 3, 4, 5]


def test_single_class_video_skipped_by_macro(caplog):
    raw = [np.array([1.0, 2, 3, 4]), np.array([5.0, 1, 2, 0])]
    labels = [np.array([0, 0, 1, 1], bool), np.zeros(4, bool)]
    with caplog.at_level("INFO"):
        metrics, _, _ = score_videos(["a", "b"], raw, labels, "none")
    assert metrics["macro_num_videos"] == 1
    assert metrics["macro_skipped_videos"] == ["b"]
    assert "single class" in caplog.text


def test_threshold_detections_on_regularity():
    raw = [np.array([0.0, 0.1, 0.9, 1.0, 0.05])]
    labels = [np.array([0, 0, 1, 1, 0], bool)]
    metrics, _, detections = score_videos(["v"], raw, labels, "minmax", threshold=0.5)
    assert detections == {"v": [(2, 3)]}
    assert metrics["detection_precision"] == 1.0 and metrics["detection_recall"] == 1.0
    assert segments(np.array([1, 1, 0, 1], bool)) == [(0, 1), (3, 3)]


def test_scores_csv_round_trip(tmp_path):
    raw = [np.array([np.nan, 1.0, 2.0, 8.0]), np.array([3.0, 1.0, 0.5])]
    labels = [np.array([0, 0, 0, 1], bool), np.array([1, 0, 0], bool)]
    metrics, table, _ = score_videos(["a", "b"], raw, labels, "minmax")
    write_scores(tmp_path / "scores.csv", table)
    names, scores, read_labels = read_scores(tmp_path / "scores.csv")
    again, _, _ = score_videos(names, scores, read_labels, "minmax")
    assert names == ["a", "b"]
    assert again["auc_micro"] == pytest.approx(metrics["auc_micro"])


def test_single_class_pooled_labels_give_nan_not_a_crash(tmp_path):
    """A fast_dev_run on real data may score only normal frames."""
    metrics, table, _ = score_videos(["a"], [np.array([1.0, 2, np.nan])],
                                     [np.array([0, 0, 1], bool)], "minmax")
    assert np.isnan(metrics["auc_micro"]) and np.isnan(metrics["eer"])
    assert metrics["excluded_frames"] == 1
    write_all(tmp_path, {**metrics, "score_direction": "anomaly"}, table, {}, plots=True)
    assert (tmp_path / "plots" / "anomaly_a.png").exists()
    assert not (tmp_path / "plots" / "roc.png").exists()


def test_anomaly_direction_threshold():
    raw = [np.array([0.0, 0.1, 0.9, 1.0, 0.05])]
    labels = [np.array([0, 0, 1, 1, 0], bool)]
    _, _, detections = score_videos(["v"], raw, labels, "minmax", threshold=0.5,
                                    score_direction="anomaly")
    assert detections == {"v": [(2, 3)]}
