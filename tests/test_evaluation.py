from types import SimpleNamespace

import numpy as np
import pytest
import torch

from tests.helpers import gaussian_smooth, minmax, rank_auc
from vad.data.records import VideoRecord
from vad.evaluation.evaluator import FrameEvaluator, score_videos
from vad.evaluation.metrics import auc, eer
from vad.evaluation.report import read_scores, write_all, write_scores
from vad.evaluation.scores import aggregate_window_scores, normalize, segments


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
    """scores.csv keys rows by frame index: reading it back restores every video's scores, its
    unscored (NaN) frames and labels, and so every metric."""
    raw = [np.array([np.nan, np.nan, 1.0, 2.0, 8.0, 0.5]), np.array([3.0, 1.0, 0.5, 7.25])]
    labels = [np.array([0, 1, 0, 0, 1, 0], bool), np.array([1, 0, 0, 1], bool)]
    metrics, table, _ = score_videos(["a", "b"], raw, labels, "minmax", smoothing_sigma=1.0)
    write_scores(tmp_path / "scores.csv", table)
    names, scores, read_labels = read_scores(tmp_path / "scores.csv")
    assert names == ["a", "b"]
    for got, want in zip(scores, raw):
        np.testing.assert_array_equal(got, want)  # NaN where unscored, values exact
    np.testing.assert_array_equal(read_labels[1], labels[1])
    np.testing.assert_array_equal(read_labels[0][2:], labels[0][2:])  # unscored labels: not kept
    again, _, _ = score_videos(names, scores, read_labels, "minmax", smoothing_sigma=1.0)
    assert again == metrics


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


@pytest.mark.parametrize(("direction", "segment", "recall"),
                         [("regularity", (4, 5), 2 / 3), ("anomaly", (3, 5), 1.0)])
def test_threshold_follows_score_direction_at_an_asymmetric_theta(direction, segment, recall):
    """θ = 0.3: regularity 1 − s < 0.3 means s > 0.7; anomaly means s > 0.3. Segments are frame
    indices (frame 0 is unscored here)."""
    raw = [np.array([np.nan, 0.0, 0.2, 0.5, 0.8, 1.0, 0.1])]
    labels = [np.array([0, 0, 0, 1, 1, 1, 0], bool)]
    metrics, _, detections = score_videos(["v"], raw, labels, "minmax", threshold=0.3,
                                          score_direction=direction)
    assert detections == {"v": [segment]}
    assert metrics["detection_precision"] == 1.0
    assert metrics["detection_recall"] == pytest.approx(recall)


# -- post-processing ------------------------------------------------------------------------------
RAW = [np.array([np.nan, 2.0, 4.0, 10.0, 3.0, 1.0, 1.0, 8.0, 2.0, 2.5]),
       np.array([50.0, 52.0, 51.0, 60.0, 58.0, 50.5])]
LABELS = [np.array([0, 0, 0, 1, 1, 0, 0, 1, 0, 0], bool), np.array([0, 0, 0, 1, 1, 0], bool)]


@pytest.mark.parametrize("normalization", ["minmax", "min_over_max"])
def test_smoothing_is_a_gaussian_applied_after_normalisation(normalization):
    sigma = 1.2
    norm = minmax if normalization == "minmax" else lambda s: (s - s.min()) / s.max()
    scorable = [RAW[0][1:], RAW[1]]
    metrics, table, _ = score_videos(["a", "b"], RAW, LABELS, normalization, sigma)
    expected = [gaussian_smooth(norm(s), sigma) for s in scorable]
    for got, want in zip(table.normalized, expected):
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)
    # Smoothing first would give other numbers (the test can tell the two orders apart).
    assert not np.allclose(norm(gaussian_smooth(scorable[0], sigma)), expected[0], atol=1e-3)
    truth = np.concatenate([LABELS[0][1:], LABELS[1]])
    assert metrics["auc_micro"] == pytest.approx(rank_auc(np.concatenate(expected), truth),
                                                 abs=1e-6)
    smoothed_raw = np.concatenate([gaussian_smooth(s, sigma) for s in scorable])
    assert metrics["auc_micro_raw"] == pytest.approx(rank_auc(smoothed_raw, truth), abs=1e-6)
    np.testing.assert_array_equal(table.score[0], scorable[0])  # raw scores stay unsmoothed


def test_smoothing_changes_the_numbers_and_sigma_zero_does_not():
    _, plain, _ = score_videos(["a", "b"], RAW, LABELS, "minmax", 0.0)
    _, smoothed, _ = score_videos(["a", "b"], RAW, LABELS, "minmax", 2.0)
    np.testing.assert_array_equal(plain.normalized[0], minmax(RAW[0][1:]))
    assert np.abs(smoothed.normalized[0] - plain.normalized[0]).max() > 0.1


def test_macro_auc_value_skips_one_class_videos():
    """Per-video AUCs 1 and 3/4; two one-class videos (all normal, all anomalous) are skipped,
    not averaged in as 0.5."""
    raw = [np.array([1.0, 2, 3, 4]), np.array([1.0, 3, 3.5, 4]), np.array([5.0, 1, 2, 0]),
           np.array([1.0, 1, 2, 1])]
    labels = [np.array([0, 0, 1, 1], bool), np.array([0, 1, 0, 1], bool), np.zeros(4, bool),
              np.ones(4, bool)]
    assert rank_auc(raw[1], labels[1]) == 0.75
    metrics, _, _ = score_videos(["a", "b", "c", "d"], raw, labels, "none")
    assert metrics["auc_macro"] == pytest.approx((1.0 + 0.75) / 2, abs=1e-6)
    assert metrics["macro_num_videos"] == 2 and metrics["macro_skipped_videos"] == ["c", "d"]


# -- DDP: the evaluator's gather ------------------------------------------------------------------
def _clip_batches(clips, length=4):
    """FrameScores of clips (index, start) of video 0 (target ``all``), scored by clip index."""
    from vad.models.base import FrameScores

    index = torch.tensor([i for i, _ in clips])
    frames = torch.tensor([[s + t for t in range(length)] for _, s in clips])
    return FrameScores(torch.zeros(len(clips), dtype=torch.long), frames,
                       index[:, None].float().expand(-1, length), index)


def _run_rank(evaluator, batches, world_size, all_gather, rank, records):
    trainer = SimpleNamespace(datamodule=SimpleNamespace(test_records=records, label_source="x"),
                              is_global_zero=rank == 0)
    module = SimpleNamespace(trainer=SimpleNamespace(world_size=world_size), all_gather=all_gather,
                             device=torch.device("cpu"), log_dict=lambda *args, **kwargs: None)
    evaluator.on_test_epoch_start(trainer, module)
    for i, batch in enumerate(batches):
        evaluator.on_test_batch_end(trainer, module, batch, None, i)
    evaluator.on_test_epoch_end(trainer, module)


def test_gather_drops_the_duplicates_a_distributed_sampler_pads_in(tmp_path):
    """Five windows (T = 4, target ``all``) of one 8-frame video, each scoring its frames with
    its own clip index. Two ranks as DistributedSampler(shuffle=False) splits them: rank 0 gets
    clips 0, 2, 4, rank 1 gets 1, 3 and clip 0 again as padding. Each frame's score must be the
    mean over the distinct windows that contain it, as in one process."""
    records = [VideoRecord("v", np.zeros((8, 2, 2, 1), np.uint8), 8,
                           labels=np.array([0, 0, 0, 0, 1, 1, 0, 0], bool))]
    starts = {i: i for i in range(5)}
    rank_clips = [[(0, 0), (2, 2), (4, 4)], [(1, 1), (3, 3), (0, 0)]]
    expected = np.array([np.mean([i for i, s in starts.items() if s <= f < s + 4])
                         for f in range(8)])
    assert expected[0] == 0 and expected[3] == 1.5

    sent = {}

    def gather_rank1(rows):  # rank 1 goes first and keeps what it sent for rank 0's gather
        sent[1] = rows
        return torch.stack([rows, rows])

    def gather_rank0(rows):
        assert rows.shape == sent[1].shape  # padded to equal length, as all_gather needs
        return torch.stack([rows, sent[1]])

    _run_rank(FrameEvaluator(plots=False), [_clip_batches(rank_clips[1])], 2, gather_rank1, 1,
              records)
    ranked = FrameEvaluator(output_dir=str(tmp_path / "ddp"), plots=False)
    _run_rank(ranked, [_clip_batches(rank_clips[0][:2]), _clip_batches(rank_clips[0][2:])], 2,
              gather_rank0, 0, records)
    single = FrameEvaluator(output_dir=str(tmp_path / "one"), plots=False)
    _run_rank(single, [_clip_batches([(i, s) for i, s in starts.items()])], 1, None, 0, records)

    names, scores, _ = read_scores(tmp_path / "ddp" / "scores.csv")
    np.testing.assert_allclose(scores[0], expected, rtol=1e-12)
    assert (tmp_path / "ddp" / "scores.csv").read_text() == (tmp_path / "one" / "scores.csv").read_text()
    drop = ("inference_fps",)
    assert ({k: v for k, v in ranked.metrics.items() if k not in drop}
            == {k: v for k, v in single.metrics.items() if k not in drop})
    assert ranked.metrics["num_frames"] == 8


def test_window_minmax_normalises_each_frame_within_its_centred_window():
    """Paper 003's ShanghaiTech protocol: min–max over the frames around each frame, cut off at
    the video's ends (hand-computed), recorded in the policy; a window < 2 is refused."""
    from vad.evaluation.evaluator import evaluation_policy

    scores = np.array([0.0, 4.0, 2.0, 10.0, 6.0, 6.0])
    # window 3: [0,4] [0,4,2] [4,2,10] [2,10,6] [10,6,6] [6,6]
    expected = [0.0, 1.0, 0.0, 1.0, 0.0, 0.0]
    np.testing.assert_allclose(normalize(scores, "window_minmax", 3), expected)
    np.testing.assert_allclose(normalize(scores, "window_minmax", 100), scores / 10)
    with pytest.raises(ValueError, match="normalization_window"):
        normalize(scores, "window_minmax", 0)
    metrics, table, _ = score_videos(["a"], [scores], [np.array([0, 1, 0, 1, 0, 0], bool)],
                                     "window_minmax", normalization_window=3)
    np.testing.assert_allclose(table.normalized[0], expected)
    assert evaluation_policy("window_minmax", 0, "mean", None, "anomaly", 3)[
        "normalization_window"] == 3


# -- EER and the threshold on the scores they are defined on --------------------------------------
# Two videos on different scales, each perfectly ranked: normalised per video they separate the
# classes completely (EER 0); pooled raw, each video's normal frames overlap the other's
# anomalies (EER 0.5: FPR = FNR = 1/2 between the two scales).
SCALED_RAW = [np.array([0.0, 1, 2, 3]), np.array([10.0, 11, 12, 13])]
SCALED_LABELS = [np.array([0, 0, 1, 1], bool)] * 2


def test_eer_is_that_of_the_normalised_scores():
    metrics, _, _ = score_videos(["a", "b"], SCALED_RAW, SCALED_LABELS, "minmax")
    assert metrics["auc_micro"] == 1.0 and metrics["eer"] == 0.0
    assert metrics["auc_micro_raw"] == pytest.approx(0.75)


def test_eer_of_raw_scores_when_nothing_is_normalised():
    metrics, _, _ = score_videos(["a", "b"], SCALED_RAW, SCALED_LABELS, "none")
    assert metrics["eer"] == pytest.approx(0.5)
    assert metrics["auc_micro"] == pytest.approx(0.75) == metrics["auc_micro_raw"]


def test_the_threshold_applies_to_the_normalised_regularity():
    # Regularity 1 - s below 0.5 <=> normalised s > 0.5: frames 2 and 3 of each video. On raw
    # scores every frame of video b (1 - 10 < 0.5) would be flagged.
    metrics, _, detections = score_videos(["a", "b"], SCALED_RAW, SCALED_LABELS, "minmax",
                                          threshold=0.5)
    assert detections == {"a": [(2, 3)], "b": [(2, 3)]}
    assert metrics["detection_precision"] == 1.0 and metrics["detection_recall"] == 1.0


# -- the two macro AUCs ------------------------------------------------------------------------
def test_padded_macro_auc_counts_single_class_videos():
    raw = [np.array([0.1, 0.2, 0.9, 0.8]), np.array([0.2, 0.5, 0.9])]
    labels = [np.array([0, 0, 1, 1], bool), np.ones(3, bool)]  # b: every frame anomalous
    metrics, _, _ = score_videos(["a", "b"], raw, labels, "none", macro_auc="padded")
    # b padded: a normal frame at 0.2, an anomalous one at 0.9 -> anomalies {0.2, 0.5, 0.9, 0.9}
    # against the normal 0.2: (0.5 + 1 + 1 + 1) / 4.
    assert metrics["per_video"][1]["auc_padded"] == pytest.approx(0.875)
    assert metrics["per_video"][1]["auc"] is None
    # a padded: normals {0.1, 0.1, 0.2}, anomalies {0.8, 0.9, 0.9}: 1.
    assert metrics["per_video"][0]["auc_padded"] == 1.0
    assert metrics["auc_macro_padded"] == pytest.approx((1 + 0.875) / 2)
    assert metrics["auc_macro_skip"] == 1.0  # video a alone
    assert metrics["auc_macro"] == metrics["auc_macro_padded"]
    assert metrics["macro_num_videos"] == 2
    skipped, _, _ = score_videos(["a", "b"], raw, labels, "none")
    assert skipped["auc_macro"] == 1.0 and skipped["macro_num_videos"] == 1
    assert skipped["macro_skipped_videos"] == ["b"]
    with pytest.raises(ValueError, match="eval.macro_auc"):
        score_videos(["a", "b"], raw, labels, "none", macro_auc="all")


def test_padded_auc_by_hand():
    rng = np.random.default_rng(1)
    scores, labels = rng.random(40), rng.random(40) < 0.4
    padded_scores = np.concatenate([[scores.min()], scores, [scores.max()]])
    padded_labels = np.concatenate([[False], labels, [True]])
    metrics, _, _ = score_videos(["v"], [scores], [labels], "minmax")
    assert metrics["per_video"][0]["auc_padded"] == pytest.approx(
        rank_auc(minmax(padded_scores), padded_labels), abs=1e-6)
