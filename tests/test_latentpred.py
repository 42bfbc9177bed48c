"""Latent-code prediction (paper 003): shortcut, motion models, Eq. 1-2, phases, background,
streaming == batched scoring, a short learning run, and the configs on every fake layout."""

from __future__ import annotations

import json
import subprocess
import sys
from functools import partial
from pathlib import Path

import lightning as L
import numpy as np
import pytest
import torch
from torch import nn

from tests.helpers import compose_config, multirun, tiny_run
from vad.checkpoint import RECIPE_KEY, RecipeError
from vad.data.clips import ClipSpec
from vad.data.datamodule import ClipBatch
from vad.data.synthetic import SyntheticDataModule
from vad.evaluation.scores import aggregate_window_scores
from vad.models.latentpred import (
    SCORE_KINDS,
    Conv3DMotion,
    LatentPred,
    LatentPredModule,
    StreamingScorer,
    build_motion_model,
    l2_penalty,
)

K, OFFSET = 4, 2  # small k and t − k keep the tests fast
CLIP = {"length": K, "target": "next", "future_offset": OFFSET}
TINY_NET = {"in_channels": 1, "base_channels": 4, "max_channels": 8, "num_blocks": 2,
            "latent_channels": 4, "motion": {"kind": "conv3d", "channels": [8, 8, 8]}}


def make_module(**kwargs) -> LatentPredModule:
    kwargs.setdefault("net", TINY_NET)
    return LatentPredModule(clip=kwargs.pop("clip", CLIP),
                            optimizer=partial(torch.optim.Adam, lr=kwargs.pop("lr", 1e-3)),
                            **kwargs)


def make_batch(batch: int = 3, frames: int = K + 1, size: int = 16, seed: int = 0) -> ClipBatch:
    clip = torch.rand(batch, 1, frames, size, size, generator=torch.Generator().manual_seed(seed))
    return ClipBatch(clip, torch.zeros(batch, dtype=torch.long),
                     torch.zeros(batch, 1, dtype=torch.long), torch.arange(batch))


def randomize_batchnorm(module: nn.Module, seed: int = 0) -> None:
    """Non-trivial running statistics, so that eval-mode BatchNorm is not the identity."""
    g = torch.Generator().manual_seed(seed)
    for m in module.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.running_mean.copy_(torch.randn(m.running_mean.shape, generator=g) * 0.1)
            m.running_var.copy_(torch.rand(m.running_var.shape, generator=g) + 0.5)


def tiny_datamodule(**kwargs) -> SyntheticDataModule:
    defaults = dict(clip=CLIP, num_train_videos=2, num_test_videos=1, frames_per_video=16,
                    size=16, image_size=None, batch_size=4, eval_batch_size=8,
                    val_fraction=0.0)
    return SyntheticDataModule(**{**defaults, **kwargs})


def tiny_trainer(epochs: int, **kwargs) -> L.Trainer:
    kwargs.setdefault("logger", False)
    kwargs.setdefault("enable_checkpointing", False)
    return L.Trainer(max_epochs=epochs, accelerator="cpu", enable_progress_bar=False,
                     enable_model_summary=False, num_sanity_val_steps=0, limit_val_batches=0,
                     **kwargs)


# -- the network ----------------------------------------------------------------------------------
def test_code_shape_and_frame_size_check():
    net = LatentPred(in_channels=3, num_inputs=8, base_channels=4, max_channels=16, num_blocks=4,
                     latent_channels=6)
    z, features = net.encode(torch.rand(2, 3, 128, 192))  # Table 1's Ped2 size, 4 blocks
    assert z.shape == (2, 6, 8, 12)
    assert [f.shape[-2:] for f in features] == [(128, 192), (64, 96), (32, 48), (16, 24)]
    assert net.decode(z, features).shape == (2, 3, 128, 192)
    with pytest.raises(ValueError, match="divide by 2\\^num_blocks"):
        net.encode(torch.rand(1, 3, 120, 192))


def test_previous_frame_shortcut_uses_frame_k_minus_1():
    """T̂_q comes from z_q and T_{q−1}'s features: not T_q's, and nothing else."""
    torch.manual_seed(0)
    net = LatentPred(num_inputs=K, **{k: v for k, v in TINY_NET.items() if k != "in_channels"})
    randomize_batchnorm(net)
    net.eval()
    clip = torch.rand(2, 1, K, 16, 16)
    z, features = net.encode_clip(clip)
    recon = net.reconstruct(z, features)  # frames 2..k
    assert recon.shape == (2, 1, K - 1, 16, 16)
    for q in range(1, K):  # 0-based frame q, reconstructed from frame q − 1's features
        previous = [f[:, q - 1] for f in features]
        same = [f[:, q] for f in features]
        assert torch.allclose(recon[:, :, q - 1], net.decode(z[:, q], previous), atol=1e-6)
        assert not torch.allclose(recon[:, :, q - 1], net.decode(z[:, q], same), atol=1e-3)
    # Changing frame 1 changes T̂_2 (its shortcut) but not T̂_4; changing frame 3 leaves T̂_2.
    changed = clip.clone()
    changed[:, :, 0] = torch.rand(2, 1, 16, 16)
    again = net.reconstruct(*net.encode_clip(changed))
    assert not torch.allclose(again[:, :, 0], recon[:, :, 0], atol=1e-3)
    assert torch.allclose(again[:, :, 2], recon[:, :, 2], atol=1e-6)
    changed = clip.clone()
    changed[:, :, 2] = torch.rand(2, 1, 16, 16)
    again = net.reconstruct(*net.encode_clip(changed))
    assert torch.allclose(again[:, :, 0], recon[:, :, 0], atol=1e-6)
    # Without shortcuts at some levels the decoder takes fewer channels there.
    partial_net = LatentPred(num_inputs=K, shortcut_levels=[1],
                             **{k: v for k, v in TINY_NET.items() if k != "in_channels"})
    assert partial_net.decoder.skip_channels == [0, 8]


@pytest.mark.parametrize(("k", "steps"), [(8, [4, 2, 1]), (6, [3, 2, 1])])
def test_conv3d_motion_model_temporal_stride(k: int, steps: list[int]):
    """§3.2: stride 2 in time, 1 in space: k codes → one code of z's shape."""
    motion = Conv3DMotion(latent_channels=6, channels=[8, 8, 8])
    codes = torch.rand(2, 6, k, 8, 12)
    x, seen = codes, []
    for block in motion.blocks:
        conv = block[0]
        assert conv.kernel_size == (3, 3, 3) and conv.stride == (2, 1, 1)
        assert isinstance(block[1], nn.BatchNorm3d) and isinstance(block[2], nn.LeakyReLU)
        x = block(x)
        seen.append(tuple(x.shape))
    assert seen == [(2, 8, t, 8, 12) for t in steps]
    assert motion(codes).shape == (2, 6, 8, 12)


@pytest.mark.parametrize("kind", ["convlstm", "autoregressive"])
def test_other_motion_models_give_a_code(kind: str):
    kwargs = {"kernel_size": 3} if kind == "convlstm" else {}
    motion = build_motion_model(6, kind, [8, 8], **kwargs)
    codes = torch.rand(2, 6, 5, 4, 4)
    assert motion(codes).shape == (2, 6, 4, 4)
    if kind == "autoregressive":  # causal in time: the prediction ignores nothing but the future
        motion.eval()
        shifted = codes.clone()
        shifted[:, :, 0] += 1.0
        assert not torch.allclose(motion(shifted), motion(codes))
    with pytest.raises(ValueError, match="motion model must be one of"):
        build_motion_model(6, "transformer")


# -- Eq. (1) --------------------------------------------------------------------------------------
def test_loss_terms_follow_eq_1():
    module = make_module()
    batch = make_batch()
    module.net.set_background(torch.full((1, 16, 16), 0.25))
    terms = module.loss_terms(batch.clip)
    z, features = module.net.encode_clip(batch.clip)
    recon = module.net.reconstruct(z[:, :K], [f[:, :K] for f in features])
    target = batch.clip[:, :, 1:K] - 0.25  # frames 2..k, background subtracted
    z_hat = module.net.predict(z[:, :K].transpose(1, 2))
    n = len(batch.clip)
    assert terms["recon"].item() == pytest.approx(((recon - target) ** 2).sum().item() / n,
                                                  rel=1e-5)
    assert terms["latent"].item() == pytest.approx(((z_hat - z[:, K]) ** 2).sum().item() / n,
                                                   rel=1e-5)
    kernels = [p for name, p in module.net.named_parameters() if p.ndim > 1]
    assert terms["l2"].item() == pytest.approx(sum(p.pow(2).sum() for p in kernels).item(),
                                               rel=1e-5)
    losses = module.losses(batch)
    expected = terms["recon"] + 0.001 * terms["latent"] + 0.001 * terms["l2"]  # phase 1
    assert losses["loss"].item() == pytest.approx(expected.item(), rel=1e-5)
    mean = make_module(loss={"reduction": "mean"})
    mean.load_state_dict(module.state_dict())
    assert mean.loss_terms(batch.clip)["recon"].item() == pytest.approx(
        ((recon - target) ** 2).mean().item(), rel=1e-5)


def test_latent_target_is_detached_by_default():
    """No gradient reaches T_t through z_t unless ``loss.detach_target=false``.

    Eval-mode BatchNorm: in training mode T_t also enters the batch statistics every frame of
    the batch is normalised with, a path the target's detach does not (and should not) cut.
    """
    for detach, reaches_target in [(True, False), (False, True)]:
        module = make_module(loss={"detach_target": detach}).eval()
        clip = make_batch().clip.requires_grad_(True)
        module.loss_terms(clip)["latent"].backward()
        assert clip.grad[:, :, :K].abs().sum() > 0  # the inputs z_1..z_k are trained
        assert (clip.grad[:, :, K].abs().sum() > 0) == reaches_target


# -- the two phases -------------------------------------------------------------------------------
class PhaseSpy(LatentPredModule):
    def setup(self, stage: str) -> None:
        self.seen: dict[int, tuple[float, float]] = {}

    def training_step(self, batch, batch_idx):
        self.seen[self.current_epoch] = self.lambdas
        return super().training_step(batch, batch_idx)


def test_phase_switch_changes_loss_weights_at_the_configured_epoch(tmp_path: Path):
    L.seed_everything(0)
    module = PhaseSpy(clip=CLIP, net=TINY_NET, optimizer=partial(torch.optim.Adam, lr=1e-3),
                      phase={"switch": "epoch", "switch_epoch": 2})
    trainer = tiny_trainer(3, limit_train_batches=2, default_root_dir=tmp_path,
                           enable_checkpointing=True)
    trainer.fit(module, tiny_datamodule())
    assert module.seen == {0: (1.0, 0.001), 1: (1.0, 0.001), 2: (0.001, 1.0)}
    # The phase travels in the checkpoint: a resumed run stays in phase 2.
    checkpoint = torch.load(trainer.checkpoint_callback.last_model_path or
                            trainer.checkpoint_callback.best_model_path, weights_only=False)
    assert int(checkpoint["state_dict"]["phase"]) == 1


@pytest.mark.parametrize("reset", [True, False])
def test_phase_switch_resets_the_optimiser_state(reset: bool):
    """Issue 25, item 3: ``phase.reset_optimizer=true`` re-creates Adam's state when phase 2
    starts: after 3 phase-1 and 3 phase-2 steps every parameter's Adam state counts 3 steps (its
    moments hold phase 2's gradients only); ``false`` (the default, measured better on real Ped2:
    docs/results.md) keeps all 6."""
    L.seed_everything(0)
    module = make_module(phase={"switch": "epoch", "switch_epoch": 1, "reset_optimizer": reset})
    assert not make_module().phase_cfg.reset_optimizer  # the default
    trainer = tiny_trainer(2, limit_train_batches=3)
    trainer.fit(module, tiny_datamodule())
    assert int(module.phase) == 1
    state = trainer.optimizers[0].state
    steps = {int(state[p]["step"]) for p in module.parameters()}
    assert steps == ({3} if reset else {6})


@pytest.mark.parametrize("trains", ["all", "motion"])
def test_phase_two_trains_the_motion_model_alone_when_asked(trains: str):
    """``phase.phase2_trains=motion`` (ours, issue 25): in phase 2 the encoder, ``to_latent`` and
    the decoder keep their phase-1 weights and BatchNorm statistics; only the motion model moves.
    ``all`` (the default, the paper's reading) trains every part in both phases."""
    L.seed_everything(0)
    module = make_module(phase={"switch": "epoch", "switch_epoch": 1, "phase2_trains": trains})
    assert make_module().phase_cfg.phase2_trains == "all"  # the default
    after_phase1 = {}

    class Snapshot(L.Callback):
        def on_train_epoch_end(self, trainer, pl_module):
            if trainer.current_epoch == 0:
                after_phase1.update({k: v.clone() for k, v in pl_module.net.state_dict().items()})

    trainer = tiny_trainer(2, limit_train_batches=2, callbacks=[Snapshot()])
    trainer.fit(module, tiny_datamodule())
    assert int(module.phase) == 1
    moved = {k for k, v in module.net.state_dict().items()
             if v.is_floating_point() and not torch.equal(v, after_phase1[k])}
    assert any(k.startswith("motion.") for k in moved)
    appearance = {k for k in moved if not k.startswith("motion.")}
    if trains == "motion":
        assert appearance == set()
    else:
        assert any(k.startswith("encoder.") for k in appearance)
        assert any(k.endswith("running_mean") for k in appearance)


def test_reduced_recipes_freeze_the_appearance_ae_in_phase_two(tmp_path: Path):
    """The reduced recipes (Ped2, and Ped1 built on it) train the motion model alone in phase 2
    (measured: docs/results.md, issue 25); the paper's full recipe keeps training every part."""
    for experiment, trains in (("latentpred_ped2_cpu", "motion"), ("latentpred_ped1_cpu", "motion"),
                               ("latentpred_ped2", "all")):
        cfg = compose_config(tmp_path / experiment, f"experiment={experiment}")
        assert cfg.model.phase.phase2_trains == trains, experiment


def test_plateau_switch_waits_for_the_reconstruction_term_to_stop_improving():
    module = make_module(phase={"switch": "plateau", "patience": 2, "min_delta": 0.05,
                                "switch_epoch": 100})
    for epoch, recon in enumerate([10.0, 8.0, 7.0, 6.9, 6.8]):
        module.update_plateau(recon, next_epoch=epoch + 1)
        # 7.0 improves on 8.0 by > 5 %; 6.9 and 6.8 do not improve on 7.0 by 5 %.
        assert int(module.phase) == (1 if epoch == 4 else 0), epoch
    late = make_module(phase={"switch": "plateau", "patience": 5, "switch_epoch": 2})
    late.update_plateau(10.0, next_epoch=1)
    assert int(late.phase) == 0
    late.update_plateau(5.0, next_epoch=2)  # still improving, but switch_epoch is the latest
    assert int(late.phase) == 1 and late.lambdas == (0.001, 1.0)


# -- the background frame -------------------------------------------------------------------------
def test_background_comes_from_training_frames_and_travels_in_the_checkpoint(
        tmp_path: Path, monkeypatch):
    L.seed_everything(0)
    datamodule = tiny_datamodule()
    splits = []
    original = SyntheticDataModule.mean_frame

    def spy(self, split="train"):
        splits.append(split)
        return original(self, split)

    monkeypatch.setattr(SyntheticDataModule, "mean_frame", spy)
    module = make_module()
    trainer = tiny_trainer(1, limit_train_batches=2, default_root_dir=tmp_path,
                           enable_checkpointing=True)
    trainer.fit(module, datamodule)
    assert splits == ["train"]
    expected = original(datamodule, "train")
    assert torch.allclose(module.net.background, expected)
    assert not torch.allclose(expected, original(datamodule, "test"), atol=1e-4)
    path = trainer.checkpoint_callback.last_model_path or trainer.checkpoint_callback.best_model_path
    assert torch.equal(torch.load(path, weights_only=False)["state_dict"]["net.background"],
                       module.net.background)
    # Testing the checkpoint with a fresh module takes the saved background: no recomputation.
    fresh = make_module()
    assert fresh.net.background.numel() == 0
    tiny_trainer(1).test(fresh, tiny_datamodule(), ckpt_path=path, verbose=False)
    assert splits == ["train"] and torch.equal(fresh.net.background, module.net.background)
    loaded = LatentPredModule.load_from_checkpoint(path, optimizer=torch.optim.Adam,
                                                   weights_only=False)
    assert torch.equal(loaded.net.background, module.net.background)
    # An untrained model tested directly (train=false) computes it from the training frames.
    untrained = make_module()
    tiny_trainer(1).test(untrained, tiny_datamodule(), verbose=False)
    assert splits == ["train", "train"] and untrained.net.background.shape == (1, 16, 16)


# -- streaming == batched -------------------------------------------------------------------------
@pytest.mark.parametrize("kind", SCORE_KINDS)
def test_streaming_scores_equal_batched_scores(kind: str):
    """§4.2: encoding each frame once gives the scores of the batched (clip-wise) scorer."""
    torch.manual_seed(0)
    module = make_module(score={"kind": kind})
    randomize_batchnorm(module)
    module.net.set_background(torch.rand(1, 16, 16) * 0.5)
    module.eval()
    video = torch.rand(20, 1, 16, 16, generator=torch.Generator().manual_seed(1))
    streamed = module.streaming_scorer().score_video(video)
    first = K + OFFSET - 1  # the first k + offset − 1 frames get no score
    assert torch.isnan(streamed[:first]).all() and not torch.isnan(streamed[first:]).any()
    spec = ClipSpec(**CLIP)
    starts = torch.arange(len(video) - spec.span() + 1)
    clips = torch.stack([video[s + torch.from_numpy(spec.offsets)] for s in starts])
    batch = ClipBatch(clips.permute(0, 2, 1, 3, 4), torch.zeros(len(starts), dtype=torch.long),
                      (starts + spec.offsets[-1])[:, None], starts)
    with torch.no_grad():
        batched = module.score(batch)[:, 0]
    assert torch.allclose(streamed[batch.frames[:, 0]], batched, rtol=1e-5, atol=1e-7)
    # Two streams at once score like one each.
    scorer = StreamingScorer(module.net, OFFSET, kind)
    pair = [scorer.step(torch.stack([f, f.flip(-1)])) for f in video]
    assert torch.allclose(pair[-1][0], streamed[-1], rtol=1e-5)


@pytest.mark.parametrize("kind", SCORE_KINDS)
def test_scores_are_fp32_under_a_bf16_autocast(kind: str):
    """Issue 25, item 4: a ``bf16-mixed`` trainer runs test steps under autocast; the codes and
    the score are still computed in fp32, equal to the scores outside autocast."""
    module = make_module(score={"kind": kind})
    randomize_batchnorm(module)
    module.eval()
    batch = make_batch()
    dtypes = []
    module.net.to_latent.register_forward_hook(lambda m, i, out: dtypes.append(out.dtype))
    with torch.no_grad():
        reference = module.score(batch)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            scored = module.test_step(batch, 0)
    assert dtypes == [torch.float32, torch.float32]
    assert scored.score.dtype == torch.float32
    assert torch.equal(scored.score, reference)


def test_span_frames_give_each_frame_the_mean_of_the_clips_containing_it(monkeypatch):
    """Issue 25, item 6 (Abati et al.'s ShanghaiTech protocol): with ``score.frames=span`` a
    clip's score goes to every frame T_1..T_t of its span (k + offset = 6 frames here), and the
    shared window aggregation (mean) gives each frame the mean of the clips containing it."""
    module = make_module(score={"frames": "span"})
    targets = torch.tensor([[5], [6], [7]])  # clips spanning frames 0-5, 1-6, 2-7
    monkeypatch.setattr(module, "score", lambda batch: torch.tensor([[1.0], [2.0], [4.0]]))
    batch = ClipBatch(torch.zeros(3, 1, K + 1, 16, 16), torch.zeros(3, dtype=torch.long),
                      targets, torch.arange(3))
    out = module.test_step(batch, 0)
    assert out.frames.tolist() == [list(range(0, 6)), list(range(1, 7)), list(range(2, 8))]
    (frame_scores,) = aggregate_window_scores(
        out.video.repeat_interleave(6).numpy(), out.frames.reshape(-1).numpy(),
        out.score.reshape(-1).numpy(), [10], "mean")
    expected = [1, 1.5, 7 / 3, 7 / 3, 7 / 3, 7 / 3, 3, 4, np.nan, np.nan]
    np.testing.assert_allclose(frame_scores, expected)
    # The default scores the target frame only.
    target_only = make_module()
    monkeypatch.setattr(target_only, "score", lambda batch: torch.tensor([[1.0], [2.0], [4.0]]))
    assert target_only.test_step(batch, 0).frames.tolist() == [[5], [6], [7]]


def test_shanghaitech_recipe_uses_abati_et_al_clip_means_then_video_minmax(tmp_path: Path):
    """Issue 25, item 6: not a 300-frame window min-max, but clip means per frame, then min-max
    over the whole video."""
    cfg = compose_config(tmp_path, "experiment=latentpred_shanghaitech")
    assert cfg.model.score.frames == "span"
    assert cfg.eval.window_aggregation == "mean"
    assert cfg.eval.normalization == "minmax"


def test_a_checkpoint_of_another_method_fails_with_one_line():
    """Resuming or testing from another method's checkpoint: the base hook's one-line
    `RecipeError`, not a state-dict error (issue 25: the override skipped ``super()``)."""
    module = make_module()
    other = {RECIPE_KEY: {"config": {"model": {"_target_": "vad.models.desdnet.DESDnetModule"}}}}
    with pytest.raises(RecipeError, match=r"holds a desdnet model .* not latentpred"):
        module.on_load_checkpoint(other)
    own = {RECIPE_KEY: {"config": {"model": {
        "_target_": "vad.models.latentpred.LatentPredModule"}}}, "latentpred_epoch_recon": []}
    module.on_load_checkpoint(own)


# -- learning -------------------------------------------------------------------------------------
def test_short_synthetic_run_beats_the_untrained_model(tmp_path: Path):
    """Z-MSE after 8 short epochs on a reduced synthetic benchmark (32x32, k = 4, t = k + 3) vs
    the same model untrained, through `vad.train`.

    Measured through `vad.train` (1 thread, load ~8 on 2 cores; docs/results.md): untrained
    0.439 (seed 0); trained 0.669 / 0.731 / 0.798 with seeds 0 / 1 / 2, about 40 s of training.
    """
    from vad.train import train

    common = ["model=latentpred", "data=synthetic", "seed=0", "eval.plots=false",
              "data.size=32", "data.num_train_videos=4", "data.num_test_videos=6",
              "data.frames_per_video=60", "data.batch_size=4", "model.clip.length=4",
              "model.clip.future_offset=3", "model.net.num_blocks=2", "model.optimizer.lr=3e-3",
              "model.phase.switch_epoch=3", "~callbacks.model_checkpoint"]
    untrained, _ = train(compose_config(tmp_path / "untrained", *common, "train=false"))
    trained, _ = train(compose_config(tmp_path / "trained", *common, "trainer.max_epochs=8"))
    assert trained["test/auc_micro"] >= untrained["test/auc_micro"] + 0.15
    assert trained["test/auc_micro"] >= 0.6
    assert trained["train/phase"] == 1.0


# -- configs --------------------------------------------------------------------------------------
FAKES = [("ped1", "ped1/ucsd", []), ("ped2", "ped2/videos", []),
         ("avenue", "avenue/original", []),
         ("shanghaitech", "shanghaitech", ["data.scenes=[1]", "model.score.frames=span"]),
         ("streetscene", "streetscene", [])]


@pytest.mark.parametrize(("data", "root", "extra"), FAKES, ids=[f[0] for f in FAKES])
def test_fast_dev_run_on_every_fake_layout(fakes_root: Path, tmp_path: Path, data, root, extra):
    from vad.train import train

    cfg = compose_config(tmp_path, "model=latentpred", f"data={data}",
                         f"data.root={fakes_root / root}", "data.strict=null",  # fakes: small
                         "debug=fdr", "data.image_size=[16,32]",
                         "data.num_workers=0", "model.clip.length=2", "model.clip.future_offset=1",
                         "model.net.num_blocks=2", *extra)
    metrics, _ = train(cfg)
    assert 0 <= metrics["test/auc_micro"] <= 1


def test_score_sweep_rescores_one_checkpoint(tmp_path: Path):
    """``vad.evaluate -m +sweep=latentpred_scores ckpt_path=…``: Table 5's R-, Z- and P-MSE of
    one checkpoint as three rescoring jobs; nothing is trained (issue 25, item 5)."""
    ckpt = tiny_run(tmp_path / "run", "model=latentpred", "model.clip.length=2",
                    "model.clip.future_offset=1", "model.net.num_blocks=2")
    before = ckpt.stat().st_mtime_ns
    (tmp_path / "cwd").mkdir()
    result, sweep = multirun(tmp_path / "cwd", "+sweep=latentpred_scores", f"ckpt_path={ckpt}",
                             "eval.plots=false", "data.eval_batch_size=64", task="evaluate",
                             timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    aucs = {}
    for job in ("0", "1", "2"):
        saved = json.loads((sweep / job / "metrics.json").read_text())
        config = (sweep / job / ".hydra" / "overrides.yaml").read_text()
        aucs[next(k for k in SCORE_KINDS if k in config)] = saved["auc_micro"]
        assert saved["checkpoint"] == str(ckpt) or Path(saved["checkpoint"]).name == ckpt.name
        assert not list((sweep / job).rglob("*.ckpt"))  # nothing trained
    assert sorted(aucs) == sorted(SCORE_KINDS)
    assert aucs["r_mse"] != aucs["z_mse"]
    assert ckpt.stat().st_mtime_ns == before


def test_score_sweep_does_not_retrain_under_vad_train(tmp_path: Path):
    """``vad.train -m sweep=latentpred_scores`` stops before training, naming the sweep file
    (it used to train one model per score kind)."""
    result, _ = multirun(tmp_path, "sweep=latentpred_scores", "debug=fdr", timeout=300)
    assert result.returncode != 0
    assert "latentpred_scores" in result.stderr and "robustness" in result.stderr
    assert not list(tmp_path.rglob("metrics.json"))


def test_a_checkpoint_is_rescored_with_another_score_kind(tmp_path: Path):
    """``vad.evaluate ckpt_path=… model=latentpred model.score.kind=r_mse``: Table 5's other
    scores of the same weights; the recipe's own kind reproduces the training run's score."""
    from vad.evaluate import evaluate

    ckpt = tiny_run(tmp_path / "run", "model=latentpred", "model.clip.length=2",
                    "model.clip.future_offset=1", "model.net.num_blocks=2", "test=true")
    trained = json.loads((tmp_path / "run" / "metrics.json").read_text())
    aucs = {}
    for kind in SCORE_KINDS:
        metrics = evaluate(compose_config(tmp_path / kind, f"ckpt_path={ckpt}", "model=latentpred",
                                          f"model.score.kind={kind}", "eval.plots=false",
                                          config_name="eval"))
        aucs[kind] = metrics["test/auc_micro"]
    assert aucs["z_mse"] == pytest.approx(trained["auc_micro"], abs=1e-6)
    assert aucs["r_mse"] != pytest.approx(aucs["z_mse"], abs=1e-6)


def test_l2_penalty_counts_kernels_only():
    conv = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2))
    nn.init.ones_(conv[0].weight)
    assert l2_penalty(conv).item() == pytest.approx(18.0)
    assert np.isfinite(l2_penalty(LatentPred(num_inputs=2, **{
        k: v for k, v in TINY_NET.items() if k != "in_channels"})).item())


@pytest.mark.parametrize("kind", ["conv3d", "convlstm", "autoregressive"])
def test_motion_model_variants_from_config(tmp_path: Path, kind: str):
    """Table 5's motion-model columns are one override of the model config."""
    import hydra

    cfg = compose_config(tmp_path, "model=latentpred", f"model.net.motion.kind={kind}")
    module = hydra.utils.instantiate(cfg.model, _convert_="object")
    batch = make_batch(batch=2, frames=cfg.model.clip.length + 1, size=64)
    losses = module.losses(batch)
    assert torch.isfinite(losses["loss"]) and module.score(batch).shape == (2, 1)


def test_zmse_parts_script_reproduces_the_test_run_and_trains_the_motion_model(tmp_path: Path):
    """``scripts/latentpred_zmse_parts.py`` (issue 25's table): its Eq. 2 row is the test run's
    own auc_micro on the same frames, and ``--train-motion`` trains the motion model alone: the
    Z-MSE row moves, the rows that do not read the motion model stay."""
    ckpt = tiny_run(tmp_path / "run", "model=latentpred", "model.clip.length=3",
                    "model.clip.future_offset=2", "model.net.num_blocks=2", "test=true",
                    "eval.plots=false")
    tested = json.loads((tmp_path / "run" / "metrics.json").read_text())
    script = Path(__file__).resolve().parents[1] / "scripts" / "latentpred_zmse_parts.py"
    rows = {}
    for epochs in (0, 1):
        result = subprocess.run([sys.executable, str(script), str(ckpt), "--train-motion",
                                 str(epochs), "--batch", "4"],
                                check=True, capture_output=True, text=True, cwd=tmp_path)
        rows[epochs] = json.loads(result.stdout)
    frozen, trained = rows[0], rows[1]
    assert frozen["z_mse"]["auc_micro"] == pytest.approx(tested["auc_micro"], abs=1e-4)
    assert frozen["z_mse"]["auc_micro_raw"] == pytest.approx(tested["auc_micro_raw"], abs=1e-4)
    assert frozen["frames"] == tested["num_frames"]
    assert "train_motion" not in frozen and trained["train_motion"]["steps"] > 0
    assert trained["z_mse"] != frozen["z_mse"]
    for kind in ("copy", "pixel_copy", "pixel_diff1", "code_norm"):
        assert trained[kind] == frozen[kind]
