"""The robustness suite: ``vad.evaluate … robustness=default`` on a tiny synthetic checkpoint."""

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from tests.helpers import compose_config, tiny_run
from vad.evaluate import evaluate


def test_robustness_table_has_a_row_per_condition_and_identity_rows_equal_the_plain_auc(
        tmp_path: Path):
    ckpt = tiny_run(tmp_path / "run", "model=convstae")
    plain = evaluate(compose_config(tmp_path / "plain", f"ckpt_path={ckpt}", "eval.plots=false",
                                    config_name="eval"))
    out = tmp_path / "robust"
    cfg = compose_config(out, f"ckpt_path={ckpt}", "robustness=default", "eval.plots=false",
                         "robustness.levels.noise=[0.0,0.1]",
                         "robustness.levels.subsample=[1,2]", config_name="eval")
    clean = evaluate(cfg)
    assert clean["test/auc_micro"] == pytest.approx(plain["test/auc_micro"], abs=1e-9)

    with (out / "robustness.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    conditions = [(r["distortion"], r["level"]) for r in rows]
    assert conditions == [("none", ""), *[("brightness", x) for x in ("0.5", "0.75", "1.25", "1.5")],
                          ("blur", "1.0"), ("blur", "2.0"), ("noise", "0.0"), ("noise", "0.1"),
                          ("rain", "0.01"), ("rain", "0.03"), ("subsample", "1.0"),
                          ("subsample", "2.0")]
    auc = {c: float(r["auc_micro"]) for c, r in zip(conditions, rows)}
    for identity in [("noise", "0.0"), ("subsample", "1.0")]:
        assert auc[identity] == pytest.approx(plain["test/auc_micro"], abs=1e-9)
    assert auc[("noise", "0.1")] != pytest.approx(plain["test/auc_micro"], abs=1e-6)

    # Subsampling scores the kept frames (every 2nd of 2 x 40; ConvSTAE scores all) with their
    # own labels.
    saved = json.loads((out / "robustness" / "subsample_2" / "metrics.json").read_text())
    clean_scores = np.genfromtxt(out / "scores.csv", delimiter=",", names=True, dtype=None,
                                 encoding=None)
    kept = clean_scores["frame"] % 2 == 0
    assert saved["num_frames"] == kept.sum() == 40
    assert saved["num_anomalous_frames"] == clean_scores["label"][kept].sum()
    sub_scores = np.genfromtxt(out / "robustness" / "subsample_2" / "scores.csv", delimiter=",",
                               names=True, dtype=None, encoding=None)
    np.testing.assert_array_equal(sub_scores["label"], clean_scores["label"][kept])

    assert "| noise | 0.1 |" in (out / "robustness.md").read_text()
    assert (out / "robustness.png").stat().st_size > 0
    assert (out / "metrics.json").exists()  # the clean evaluation's files, as without the suite
