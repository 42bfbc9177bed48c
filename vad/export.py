"""``python -m vad.export ckpt_path=<run>/checkpoints/<name>.ckpt format=onnx``: a checkpoint's
*score* graph as ONNX, for inference without PyTorch or this package.

The exported graph is the method's own `score` (`vad.models.base.VADModule`): a float clip
``(B, C, T', H, W)`` in the data's ``value_range`` → ``(B, n_targets)`` anomaly scores (higher =
more anomalous) of the clip's target frames, with a dynamic batch axis. Everything else (reading
and resizing frames, window aggregation, per-video normalisation) stays outside the graph and is
described in a JSON sidecar written beside the ``.onnx`` (``<output>.json``): the input shape,
value range, clip layout and how to turn outputs into frame scores.

Which methods export (opset 17, onnxruntime on CPU within 1e-4 of PyTorch, ``tests/test_export.py``):
convstae, latentpred (its batched score: encoder and motion model for Z-MSE, the decoder too for
R-/P-MSE), topheavy, ae3d, desdnet and stdae. The exported latentpred graph encodes all k + 1
frames of every clip; the encode-each-frame-once ring buffer (`StreamingScorer`) is Python
around two networks and is not part of the export.
"""

from __future__ import annotations

import logging
import os
import warnings
from pathlib import Path

import hydra
import numpy as np
import torch
from omegaconf import DictConfig
from torch import nn

import vad  # noqa: F401  (registers OmegaConf resolvers)
from vad.checkpoint import load_model
from vad.data.datamodule import ClipBatch
from vad.models.base import VADModule
from vad.results import write_json_atomic
from vad.train import CONFIG_DIR
from vad.utils import exit_after_failure, task_wrapper

log = logging.getLogger(__name__)

FORMATS = ("onnx",)


class ScoreGraph(nn.Module):
    """A method's `score` as a function of the clip alone (the graph that is exported).

    ``forward``: float clip ``(B, C, T', H, W)`` in ``value_range`` → ``(B, n_targets)`` float32.
    """

    def __init__(self, model: VADModule) -> None:
        super().__init__()
        self.model = model
        # Eval mode (BatchNorm running statistics) for the graph and after it: the exporter
        # restores the mode the wrapper had, recursively.
        self.eval()

    def forward(self, clip: torch.Tensor) -> torch.Tensor:
        # Scores read only the frames: the batch's bookkeeping fields are not part of the graph.
        return self.model.score(ClipBatch(clip, None, None, None)).float()


def export_onnx(model: VADModule, example: torch.Tensor, path: Path, opset: int = 17) -> None:
    """Write ``model``'s score graph for clips shaped like ``example`` to ``path`` (through a
    temporary file and a rename: never half-written), the batch axis dynamic."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        # The TorchScript-tracing exporter (the torch.export-based one needs onnxscript, which
        # is not a dependency): each method's Python control flow (clip length, score variant,
        # phase) is fixed by the checkpoint and traces to one graph, so the tracer's warnings
        # about Python branches on shapes say nothing here; nor does its deprecation notice.
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore", torch.jit.TracerWarning)
            warnings.filterwarnings("ignore", message=".*legacy TorchScript-based ONNX export",
                                    category=DeprecationWarning)
            torch.onnx.export(ScoreGraph(model), (example,), str(tmp), dynamo=False,
                              input_names=["clip"], output_names=["score"], opset_version=opset,
                              dynamic_axes={"clip": {0: "batch"}, "score": {0: "batch"}})
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def onnx_scores(path: Path, clip: np.ndarray) -> np.ndarray:
    """Run an exported score graph with onnxruntime on the CPU: ``(B, C, T', H, W)`` →
    ``(B, n_targets)``."""
    import onnxruntime

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(["score"], {"clip": clip.astype(np.float32)})[0]


def describe(model: VADModule, input_shape: tuple[int, ...], value_range, grayscale: bool,
             eval_cfg: DictConfig | dict) -> dict:
    """The sidecar: what goes into the graph and how its outputs become frame scores."""
    spec = model.clip_spec
    targets = spec.offsets[spec.target_positions]
    return {
        "method": f"{type(model).__module__}.{type(model).__name__}",
        "input": {"name": "clip", "shape": ["batch", *input_shape[1:]],
                  "layout": "B, C, T, H, W", "dtype": "float32",
                  "value_range": list(value_range), "grayscale": grayscale,
                  "pixels": "uint8 frames resized to H x W, mapped linearly from [0, 255] to "
                            "value_range"},
        "clip": {"length": spec.length, "target": spec.target, "dilation": spec.dilation,
                 "future_offset": spec.future_offset,
                 "frame_offsets": [int(o) for o in spec.offsets],
                 "target_offsets": [int(o) for o in targets]},
        "output": {"name": "score", "shape": ["batch", len(targets)],
                   "meaning": "anomaly score (higher = more anomalous) of frame start + "
                              "target_offsets[j] for a clip of frames start + frame_offsets"},
        "scoring": {
            "window_aggregation": eval_cfg.get("window_aggregation", "mean"),
            "normalization": eval_cfg.get("normalization", "minmax"),
            "smoothing_sigma": eval_cfg.get("smoothing_sigma", 0.0),
            "steps": "slide the clip over a video with stride 1; a frame covered by several "
                     "clips gets the window_aggregation of their scores; frames no clip reaches "
                     "get none; then normalise per video and smooth as vad.evaluation does "
                     "(minmax needs the whole video: for live use, threshold raw scores)",
        },
    }


@task_wrapper
def export(cfg: DictConfig) -> dict:
    if cfg.format not in FORMATS:
        raise ValueError(f"format must be one of {FORMATS}, got {cfg.format!r}")
    ckpt_path = Path(cfg.ckpt_path)
    if not ckpt_path.exists():
        raise FileNotFoundError(f"checkpoint not found: {ckpt_path} (set ckpt_path=...)")
    model, recipe = load_model(ckpt_path)
    run_cfg = recipe.config
    trained_size = recipe.preprocessing.image_size if recipe.preprocessing else None
    frame_size = cfg.frame_size or trained_size or run_cfg.data.get("image_size")
    if frame_size is None:
        raise ValueError("the run kept its source frame size (data.image_size=null): give the "
                         "frames' size as frame_size=[H,W]")
    channels = 1 if run_cfg.data.grayscale else 3
    shape = (cfg.example_batch, channels, len(model.clip_spec.offsets), *frame_size)
    low, high = run_cfg.data.value_range
    example = torch.rand(shape, generator=torch.Generator().manual_seed(0)) * (high - low) + low
    output = Path(cfg.output or Path(cfg.paths.output_dir) / f"{ckpt_path.stem}.onnx")
    export_onnx(model, example, output, cfg.opset)
    sidecar = describe(model, shape, (low, high), bool(run_cfg.data.grayscale), run_cfg.eval)
    # A check on a batch of another size than the traced one: the batch axis is really dynamic.
    check = example[:1] if cfg.example_batch > 1 else example.repeat(2, 1, 1, 1, 1)
    with torch.no_grad():
        expected = ScoreGraph(model)(check).numpy()
    got = onnx_scores(output, check.numpy())
    error = float(np.max(np.abs(got - expected) / np.maximum(np.abs(expected), 1e-6)))
    sidecar["check"] = {"max_relative_error_vs_pytorch": error, "batch": len(check)}
    write_json_atomic(output.with_suffix(".json"), sidecar)
    log.info("wrote %s and %s (onnxruntime vs PyTorch: max relative error %.2e)", output,
             output.with_suffix(".json"), error)
    return {"path": str(output), "max_relative_error": error}


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="export.yaml")
def main(cfg: DictConfig) -> None:
    try:
        export(cfg)
    except Exception:
        exit_after_failure()
        raise


if __name__ == "__main__":
    main()
