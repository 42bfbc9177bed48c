"""ONNX export of each method's score graph: onnxruntime (CPU) agrees with PyTorch."""

import json
from pathlib import Path

import hydra
import numpy as np
import pytest
import torch

from tests.helpers import compose_config, tiny_run
from vad.checkpoint import load_model
from vad.export import ScoreGraph, export, export_onnx, onnx_scores

SIZE = 32


def tiny_model(tmp_path: Path, method: str, *overrides: str):
    cfg = compose_config(tmp_path, f"model={method}", f"data.size={SIZE}", *overrides)
    torch.manual_seed(0)
    model = hydra.utils.instantiate(cfg.model, _convert_="object").eval()
    # Non-trivial BatchNorm statistics, so that eval-mode normalisation is part of the check.
    for module in model.modules():
        if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
            module.running_mean.uniform_(-0.2, 0.2)
            module.running_var.uniform_(0.5, 1.5)
    return model


@pytest.mark.parametrize("method, overrides", [
    ("convstae", ()), ("latentpred", ()), ("latentpred", ("model.score.kind=p_mse",)),
    ("topheavy", ()), ("ae3d", ()), ("desdnet", ()), ("stdae", ()),
])
def test_onnx_scores_equal_pytorch_scores(tmp_path: Path, method: str, overrides):
    model = tiny_model(tmp_path, method, *overrides)
    if method == "latentpred":  # the background frame is part of the score graph
        model.net.set_background(torch.rand(1, SIZE, SIZE))
    if method == "stdae":  # phase 2: the cluster distance D_u weighs the error map
        model.set_centres(torch.randn_like(model.centres))
        assert model.clustering
    frames = len(model.clip_spec.offsets)
    generator = torch.Generator().manual_seed(1)
    example = torch.rand(2, 1, frames, SIZE, SIZE, generator=generator)
    path = tmp_path / f"{method}.onnx"
    export_onnx(model, example, path)
    clip = torch.rand(3, 1, frames, SIZE, SIZE, generator=generator)  # another batch size
    with torch.no_grad():
        expected = ScoreGraph(model)(clip).numpy()
    got = onnx_scores(path, clip.numpy())
    assert got.shape == expected.shape == (3, len(model.clip_spec.target_positions))
    assert np.std(expected) > 0  # the clips get different scores: the check means something
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-7)
    assert not model.training  # exporting left the model in eval mode


def test_export_cli_writes_onnx_and_sidecar_from_a_run(tmp_path: Path):
    ckpt = tiny_run(tmp_path / "run", "model=convstae")
    out = tmp_path / "export"
    cfg = compose_config(out, f"ckpt_path={ckpt}", "frame_size=[32,32]", config_name="export")
    result = export(cfg)
    onnx_path = out / "last.onnx"
    assert result["path"] == str(onnx_path) and onnx_path.exists()
    assert result["max_relative_error"] < 1e-4
    sidecar = json.loads(onnx_path.with_suffix(".json").read_text())
    assert sidecar["input"]["shape"] == ["batch", 1, 10, 32, 32]
    assert sidecar["input"]["value_range"] == [0.0, 1.0]
    assert sidecar["clip"]["target_offsets"] == list(range(10))  # convstae scores every frame
    assert sidecar["output"]["shape"] == ["batch", 10]
    assert not list(out.glob(".*.tmp"))  # written through a rename, nothing left over
    clip = np.random.default_rng(0).random((4, 1, 10, 32, 32), dtype=np.float32)
    assert onnx_scores(onnx_path, clip).shape == (4, 10)


def test_export_takes_the_trained_frame_size_from_the_checkpoint_recipe(tmp_path: Path):
    """The run kept the source size (data.image_size=null): the recipe knows it was 32x32."""
    ckpt = tiny_run(tmp_path / "run", "model=convstae")
    out = tmp_path / "export"
    export(compose_config(out, f"ckpt_path={ckpt}", config_name="export"))
    assert json.loads((out / "last.json").read_text())["input"]["shape"] == ["batch", 1, 10, 32, 32]


def test_export_of_a_latentpred_run_keeps_its_background_frame(tmp_path: Path):
    ckpt = tiny_run(tmp_path / "run", "model=latentpred")
    cfg = compose_config(tmp_path / "export", f"ckpt_path={ckpt}", "frame_size=[32,32]",
                         config_name="export")
    result = export(cfg)
    assert result["max_relative_error"] < 1e-4
    sidecar = json.loads(Path(result["path"]).with_suffix(".json").read_text())
    assert sidecar["clip"]["target_offsets"] == [13]  # t = k + 6 with k = 8: offset 7 + 6
    assert sidecar["input"]["shape"] == ["batch", 1, 9, 32, 32]
    # The checkpoint's training mean frame is loaded and in the graph: a clip of exactly that
    # frame scores in onnxruntime what it scores in PyTorch.
    model, _ = load_model(ckpt)
    assert model.net.background.shape == (1, 32, 32)
    background = model.net.background.expand(1, 1, 9, 32, 32).numpy()
    with torch.no_grad():
        expected = ScoreGraph(model)(torch.from_numpy(background.copy())).numpy()
    np.testing.assert_allclose(onnx_scores(Path(result["path"]), background), expected, rtol=1e-4)
