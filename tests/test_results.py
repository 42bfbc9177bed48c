"""`python -m vad.results`: per-video comparison of two runs and the summary table of
docs/results.md, from run folders (vad/results.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from omegaconf import OmegaConf

from tests.helpers import compose_config
from vad.results import compare_table, main, replace_section, score_agreement, summary_table

PED2 = "vad.data.ped.Ped2DataModule"


def fake_run(folder: Path, model: str, auc: float, commit: str, started: str, *,
             experiment: str | None = None, size=(256, 256), sigma: float = 0.0,
             overrides: tuple[str, ...] = (), per_video: list | None = None,
             lacks: tuple[str, ...] = ()) -> Path:
    """A finished run folder as `vad.train` leaves it (run.json, metrics.json, .hydra/): a
    recipe's run gets the recipe's composed config with its overrides, less the ``lacks`` keys
    (options added after it ran)."""
    (folder / ".hydra").mkdir(parents=True)
    if experiment:
        values = [o for o in overrides if "." in o.split("=")[0]]
        cfg = compose_config(folder, f"experiment={experiment}", *values)
        config = OmegaConf.to_container(cfg, resolve=False)
        del config["hydra"]
        for key in lacks:
            *parents, leaf = key.split(".")
            node = config
            for name in parents:
                node = node[name]
            del node[leaf]
    else:
        config = {"model": {"_target_": model},
                  "data": {"_target_": PED2, "image_size": list(size)}}
    (folder / ".hydra" / "config.yaml").write_text(yaml.safe_dump(config))
    (folder / "run.json").write_text(json.dumps({
        "task": "train", "overrides": [*(f"experiment={experiment}",) * bool(experiment),
                                       *overrides],
        "commit": commit, "started": started, "status": "ok", "wall_s": 1.0}))
    (folder / "metrics.json").write_text(json.dumps({
        "auc_micro": auc, "normalization": "minmax", "normalization_window": 0,
        "smoothing_sigma": sigma, "per_video": per_video or []}))
    return folder


def row(table: str, model: str) -> list[str]:
    (line,) = [line for line in table.splitlines() if f"| `{model}` |" in line and "ped2" in line]
    return [cell.strip() for cell in line.strip("|").split("|")]


def test_the_summary_takes_the_runs_of_the_recipe_as_it_is_now(tmp_path):
    desdnet = "vad.models.desdnet.DESDnetModule"
    fake_run(tmp_path / "old", desdnet, 0.9, "aaa", "2026-01-01T00:00:00",
             experiment="desdnet_ped2_cpu", size=(128, 128), sigma=3.0)
    for i, auc in enumerate([0.70, 0.75]):
        fake_run(tmp_path / f"new{i}", desdnet, auc, "bbb", f"2026-02-0{i + 1}T00:00:00",
                 experiment="desdnet_ped2_cpu", size=(128, 128), sigma=3.0, overrides=(f"seed={i}",))
    # An ablation is not the recipe: never the summary's number, however good ...
    fake_run(tmp_path / "ablation", desdnet, 0.99, "bbb", "2026-02-03T00:00:00",
             experiment="desdnet_ped2_cpu", size=(128, 128), sigma=3.0,
             overrides=("model.loss.lambda_rgb=0",))
    # ... nor an older recipe (10 epochs now), however new ...
    fake_run(tmp_path / "stale", desdnet, 0.98, "ddd", "2026-02-05T00:00:00",
             experiment="desdnet_ped2_cpu", size=(128, 128), sigma=3.0,
             overrides=("trainer.max_epochs=3",))
    # ... nor a run from before an option the recipe now sets (the residual output) ...
    fake_run(tmp_path / "before_option", desdnet, 0.97, "bbb", "2026-02-02T06:00:00",
             experiment="desdnet_ped2_cpu", sigma=3.0, lacks=("model.net.residual",))
    # ... but a value given on the command line that the recipe now has is the recipe.
    fake_run(tmp_path / "now", desdnet, 0.60, "bbb", "2026-02-02T12:00:00",
             experiment="desdnet_ped2_cpu", size=(128, 128), sigma=3.0,
             overrides=("trainer.max_epochs=10", "seed=2"))
    reference = "vad.models.framediff.FrameDiffModule"
    fake_run(tmp_path / "fd128", reference, 0.901, "ccc", "2026-02-04T00:00:00", size=(128, 128),
             sigma=3.0)
    fake_run(tmp_path / "fd256", reference, 0.905, "ccc", "2026-02-04T00:00:01", sigma=3.0)
    fake_run(tmp_path / "fd256plain", reference, 0.913, "ccc", "2026-02-04T00:00:02")
    table = summary_table([tmp_path])
    cells = row(table, "desdnet")
    assert cells == ["ped2", "`desdnet`", "0.738 ± 0.125 (4 runs: aaa, bbb)", "**not run**",
                     "97.5 % (paper 000)", "0.905 (256×256)"]
    # STD-AE's recipe is scored unsmoothed: the unsmoothed reference, at its own size.
    assert row(table, "stdae")[2:] == ["**not run**", "**not run**", "96.7 % (paper 001)",
                                       "0.913 (256×256)"]
    assert row(table, "convstae")[-1] == "**not run**"  # min_over_max: no reference run


def test_summary_is_written_under_its_heading(tmp_path):
    doc = tmp_path / "results.md"
    doc.write_text("# Results\n\nintro\n\n## Summary\n\nold table\n\n## Other\n\nkept\n")
    replace_section(doc, "## Summary", "new table")
    assert doc.read_text() == "# Results\n\nintro\n\n## Summary\n\nnew table\n\n## Other\n\nkept\n"
    fresh = tmp_path / "fresh.md"
    fresh.write_text("# Results\n\nintro\n\n## Other\n")
    replace_section(fresh, "## Summary", "table")
    assert fresh.read_text() == "# Results\n\nintro\n\n## Summary\n\ntable\n\n## Other\n"


def test_compare_prints_both_runs_per_video(tmp_path, capsys):
    def entry(video, auc, padded):
        return {"video": video, "frames": 10, "anomalous_frames": 5, "anomalous_share": 0.5,
                "auc": auc, "auc_padded": padded}

    a = fake_run(tmp_path / "a", "m", 0.8, "x", "t", per_video=[entry("01", 0.8, 0.82),
                                                                 entry("02", None, 0.9)])
    b = fake_run(tmp_path / "b", "m", 0.9, "x", "t", per_video=[entry("01", 0.6, 0.65),
                                                                 entry("02", None, 0.95)])
    main(["--compare", str(a), str(b)])
    lines = capsys.readouterr().out.splitlines()
    assert lines[2] == "| 01 | 10 | 50% | 0.800 | 0.600 | 0.820 | 0.650 | -0.170 |"
    assert lines[3] == "| 02 | 10 | 50% | — | — | 0.900 | 0.950 | +0.050 |"
    old = tmp_path / "old"
    old.mkdir()
    (old / "metrics.json").write_text("{}")
    with pytest.raises(ValueError, match="scores_csv="):
        compare_table(old, b)


def write_scores(folder: Path, scores: dict[str, list[float]]) -> Path:
    lines = ["video,frame,score,score_normalized,label"]
    lines += [f"{video},{frame},{value},0,0" for video, values in scores.items()
              for frame, value in enumerate(values)]
    (folder / "scores.csv").write_text("\n".join(lines) + "\n")
    return folder


def test_agreement_ranks_raw_scores_pooled_and_within_videos(tmp_path, capsys):
    reference = write_scores(fake_run(tmp_path / "ref" / "background", "m", 0.84, "x", "t"), {
        "01": [*range(10), 99.0], "02": [10.0 + i for i in range(10)], "03": [1.0, 2.0]})
    same = write_scores(fake_run(tmp_path / "a" / "same", "m", 0.8, "x", "t"), {
        "01": [2.0 * i + 1 for i in range(10)], "02": [50.0 + i for i in range(10)]})
    # Each video's ranking reversed, the order of the videos kept: the pooled ρ by hand,
    # 1 − 6 Σd² / (n(n² − 1)) with Σd² = 2 × 330 over n = 20 frames.
    flipped = write_scores(fake_run(tmp_path / "b" / "flipped", "m", 0.7, "x", "t"), {
        "01": [9.0 - i for i in range(10)], "02": [109.0 - i for i in range(10)]})
    assert score_agreement(same, reference) == pytest.approx((1.0, 1.0, 20))
    assert score_agreement(flipped, reference) == pytest.approx((1 - 6 * 660 / (20 * 399), -1.0, 20))
    main(["--agreement", "--reference", str(reference), str(same), str(flipped)])
    lines = capsys.readouterr().out.splitlines()
    assert lines[2] == "| a/same | 0.800 | 0.840 | 1.000 | 1.000 | 20 |"
    assert lines[3] == "| b/flipped | 0.700 | 0.840 | 0.504 | -1.000 | 20 |"
    (same / "scores.csv").unlink()
    with pytest.raises(FileNotFoundError, match="scores.csv is missing"):
        score_agreement(same, reference)


def test_rows_give_their_margin_over_the_reference(tmp_path, capsys):
    reference = fake_run(tmp_path / "framediff", "vad.models.framediff.FrameDiffModule", 0.9,
                         "x", "t")
    method = fake_run(tmp_path / "method", "vad.models.desdnet.DESDnetModule", 0.85, "x", "t")
    main([str(method), "--reference", str(reference)])
    header, _, line = capsys.readouterr().out.splitlines()
    assert header.endswith("| margin over framediff (0.900) |")
    # auc_micro, auc_micro_raw, auc_macro, eer, frames/s, versions (none in a fake run), margin
    assert line.endswith("| 0.850 | — | — | — | — | — | -0.050 |")


def test_archived_runs_give_the_same_summary(tmp_path):
    runs = tmp_path / "outputs"
    fake_run(runs / "fd", "vad.models.framediff.FrameDiffModule", 0.913, "ccc",
             "2026-02-04T00:00:02")
    (runs / "fd" / "scores.csv").write_text("video,frame\n")  # not archived
    main([str(runs / "fd"), "--archive", str(tmp_path / "docs_runs")])
    kept = tmp_path / "docs_runs" / "fd"
    assert sorted(p.name for p in kept.rglob("*") if p.is_file()) == [
        "config.yaml", "metrics.json", "run.json"]
    assert summary_table([tmp_path / "docs_runs"]) == summary_table([runs])


def test_run_json_names_the_commit_the_command_started_from(tmp_path, monkeypatch):
    from vad.results import RunRecord

    record = RunRecord(tmp_path, ["seed=1"], "train")
    monkeypatch.setenv("VAD_COMMIT", "started_at")
    record.start()
    monkeypatch.setenv("VAD_COMMIT", "committed_meanwhile")  # a commit while the run trains
    record.finish("ok")
    assert json.loads((tmp_path / "run.json").read_text())["commit"] == "started_at"


@pytest.mark.parametrize("threads", [1, 2])
def test_run_json_names_the_torch_threads(tmp_path, threads):
    """The thread count sets the order of floating-point sums (a run on 2 threads is not the run
    on 1): run.json's machine line says which it was."""
    import torch

    from vad.results import RunRecord

    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        record = RunRecord(tmp_path, ["seed=1"], "train")
        record.start()
        record.finish("ok")
    finally:
        torch.set_num_threads(before)
    machine = json.loads((tmp_path / "run.json").read_text())["machine"]
    assert machine.endswith({1: ", 1 thread", 2: ", 2 threads"}[threads])


def test_a_row_shows_what_a_run_computed_not_where_it_wrote(tmp_path):
    """An evaluation's ``ckpt_path`` is what it scored and stays in its command; a training
    run's ``ckpt_path`` (resume) and every run's output folder are bookkeeping."""
    from vad.results import read_run

    def command(task: str, overrides: list[str]) -> str:
        folder = tmp_path / task
        folder.mkdir()
        (folder / "run.json").write_text(json.dumps({"task": task, "overrides": overrides,
                                                      "status": "ok"}))
        (folder / "metrics.json").write_text(json.dumps({"auc_micro": 0.8}))
        return read_run(folder).command

    assert command("evaluate", ["ckpt_path=run/checkpoints/epoch_007.ckpt", "model=topheavy",
                                "model.score_error=mse", "+run_dir=outputs/rescored"]) == (
        "python -m vad.evaluate ckpt_path=run/checkpoints/epoch_007.ckpt model=topheavy "
        "model.score_error=mse")
    assert command("train", ["experiment=stdae_ped2_cpu", "ckpt_path=last", "seed=1",
                             "run_dir=outputs/stdae/s1"]) == (
        "python -m vad.train experiment=stdae_ped2_cpu seed=1")
