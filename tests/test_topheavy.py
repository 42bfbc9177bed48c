"""Top-Heavy and 3D autoencoders (paper 004): Table 1 layer by layer, losses (Eq. 1-4), the
frozen teacher, flipping, the score, and training on synthetic and fake data."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from functools import partial
from pathlib import Path

import pytest
import torch
from torch import nn

from tests.helpers import compose_config
from vad.data.datamodule import ClipBatch
from vad.models.ae3d import AE3DModule, ae3d
from vad.models.topheavy import (
    TopHeavyModule,
    distillation_factors,
    distillation_terms,
    joint_loss,
    reconstruction_loss,
    top_heavy_ae,
)

# Table 1 of paper 004 for a 16 x 128 x 128 x 1 clip: layer -> (kernel T x H x W, output
# (C, T, H, W)); outputs in PyTorch's channel-first order.
TABLE_1 = {
    "conv1": ((1, 3, 3), (32, 16, 128, 128)),
    "pool1": ((1, 2, 2), (32, 16, 64, 64)),
    "conv2": ((1, 3, 3), (48, 16, 64, 64)),
    "pool2": ((1, 2, 2), (48, 16, 32, 32)),
    "conv3": ((3, 3, 3), (64, 16, 32, 32)),
    "pool3": ((2, 2, 2), (64, 8, 16, 16)),
    "conv4": ((3, 3, 3), (64, 8, 16, 16)),
    "tconv1": ((3, 3, 3), (48, 16, 32, 32)),
    "tconv2": ((3, 3, 3), (32, 16, 64, 64)),
    "tconv3": ((1, 3, 3), (32, 16, 128, 128)),
    "out": ((1, 3, 3), (1, 16, 128, 128)),
}
STRIDES = {"pool1": (1, 2, 2), "pool2": (1, 2, 2), "pool3": (2, 2, 2), "tconv1": (2, 2, 2),
           "tconv2": (1, 2, 2), "tconv3": (1, 2, 2)}
CLIP = {"length": 4, "target": "all"}
TINY_NET = {"in_channels": 1, "encoder_channels": [4, 4, 4, 4], "decoder_channels": [4, 4, 4]}


def layer_outputs(net: nn.Module, clip: torch.Tensor) -> dict[str, tuple[int, ...]]:
    shapes = {}
    hooks = [layer.register_forward_hook(
        lambda _m, _i, out, name=name: shapes.__setitem__(name, tuple(out.shape[1:])))
        for name, layer in net.layers.items()]
    with torch.no_grad():
        net(clip)
    for hook in hooks:
        hook.remove()
    return shapes


def test_top_heavy_follows_table_1_layer_by_layer():
    """Every layer's output shape, kernel and stride as in Table 1 (kernels too: shapes alone
    cannot tell 1x3x3 from 3x3x3), and Table 1's 341,889 parameters without BatchNorm."""
    net = top_heavy_ae(norm=False)
    shapes = layer_outputs(net, torch.zeros(1, 1, 16, 128, 128))
    assert list(shapes) == list(TABLE_1)
    kernels = net.kernel_sizes()
    for name, (kernel, output) in TABLE_1.items():
        assert kernels[name] == kernel, name
        assert shapes[name] == output, name
        layer = net.layers[name]
        module = layer if isinstance(layer, nn.MaxPool3d) else layer[0]
        stride = module.stride if isinstance(module.stride, tuple) else (module.stride,) * 3
        assert stride == STRIDES.get(name, (1, 1, 1)), name
    assert isinstance(net.layers["out"][-1], nn.Sigmoid)
    assert sum(p.numel() for p in net.parameters()) == 341_889
    # our BatchNorm adds 2 x 320 parameters (the channels of the seven hidden layers)
    assert sum(p.numel() for p in top_heavy_ae().parameters()) == 341_889 + 2 * 320
    rgb = top_heavy_ae(in_channels=3, norm=False)
    assert rgb(torch.rand(1, 3, 4, 16, 16)).shape == (1, 3, 4, 16, 16)


def test_prose_decoder_and_3d_autoencoder_differ_only_in_kernels():
    prose = top_heavy_ae(decoder="prose").kernel_sizes()
    assert prose["tconv2"] == (1, 3, 3)  # §III.A: one 3D and two 2D transposed convolutions
    assert {k: v for k, v in prose.items() if k != "tconv2"} == {
        k: v[0] for k, v in TABLE_1.items() if k != "tconv2"}
    net = ae3d(norm=False)
    shapes = layer_outputs(net, torch.zeros(1, 1, 16, 128, 128))
    for name, (kernel, output) in TABLE_1.items():
        assert shapes[name] == output, name
        assert net.kernel_sizes()[name] == (kernel if name.startswith("pool") else (3, 3, 3))
    assert sum(p.numel() for p in net.parameters()) == 389_121


def test_clip_sizes_are_checked():
    with pytest.raises(ValueError, match="axis T = 5 must divide by 2"):
        top_heavy_ae(**TINY_NET)(torch.rand(1, 1, 5, 16, 16))
    with pytest.raises(ValueError, match="axis H = 12 must divide by 8"):
        top_heavy_ae(**TINY_NET)(torch.rand(1, 1, 4, 12, 16))


# -- modules and losses ---------------------------------------------------------------------------
def make_module(training: str = "plain", cls=TopHeavyModule, lr: float = 1e-2, **kwargs):
    return cls(clip=CLIP, net=TINY_NET, optimizer=partial(torch.optim.Adam, lr=lr),
               training=training, **kwargs)


def make_batch(batch: int = 3, size: int = 16, seed: int = 0, flow: bool = True) -> ClipBatch:
    g = torch.Generator().manual_seed(seed)
    clip = torch.rand(batch, 1, 4, size, size, generator=g)
    flows = torch.rand(batch, 2, 4, size, size, generator=g) if flow else None
    return ClipBatch(clip, torch.zeros(batch, dtype=torch.long),
                     torch.arange(4).repeat(batch, 1), torch.arange(batch), flows)


class Fixed(nn.Module):
    """Reconstructs with a known error: f(x) = x − error (per sample)."""

    def __init__(self, error: torch.Tensor) -> None:
        super().__init__()
        self.error = error
        self.weight = nn.Parameter(torch.ones(()))  # something to train

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x - self.weight * self.error.view(-1, *[1] * (x.dim() - 1))


def test_reconstruction_loss_is_per_sample_mae():
    x = torch.zeros(2, 1, 2, 2, 2)
    recon = x.clone()
    recon[0, 0, 0, 0, 0] = -0.8  # one of 8 values off by 0.8, sign must not matter
    recon[1] = 0.25
    torch.testing.assert_close(reconstruction_loss(x, recon), torch.tensor([0.1, 0.25]))


def test_joint_loss_is_ls_plus_ls_times_lt_on_a_hand_made_batch():
    """Eq. 4 with L_s = mean(0.1, 0.3) = 0.2 and L_t = mean(0.5, 0.1) = 0.3: 0.2 + 0.06, and
    both networks get gradients (dL/dθ₁ ∝ 1 + L_t, dL/dθ₂ ∝ L_s)."""
    module = make_module("joint", flip=False)
    module.net = Fixed(torch.tensor([0.1, 0.3]))
    module.temporal = Fixed(torch.tensor([0.5, 0.1]))
    batch = make_batch(2)
    losses = module.losses(batch)
    assert losses["loss"].item() == pytest.approx(0.2 + 0.2 * 0.3)
    assert losses["spatial"].item() == pytest.approx(0.2)
    assert losses["temporal"].item() == pytest.approx(0.3)
    losses["loss"].backward()
    # d/dw of w·L_s(1 + w'·L_t) at w = w' = 1: L_s(1 + L_t) and L_s·L_t
    assert module.net.weight.grad.item() == pytest.approx(0.2 * 1.3)
    assert module.temporal.weight.grad.item() == pytest.approx(0.2 * 0.3)
    assert joint_loss(torch.tensor(0.5), torch.tensor(0.4))["loss"].item() == pytest.approx(0.7)
    # the logged factors 1 + L_t,i: their mean is the one factor on ∂L̄_s/∂θ₁ (0.2·1.3 / 0.2)
    torch.testing.assert_close(losses["factors"], torch.tensor([1.5, 1.1]))
    assert losses["factors"].mean().item() == pytest.approx(module.net.weight.grad.item() / 0.2)


def test_distillation_uses_the_teachers_per_sample_loss():
    """Eq. 2-3 per sample: mean_i (L_s,i + (L_t,i − L_s,i)²), not with batch means (which would
    give 0.2 + (0.3 − 0.2)² = 0.21 here)."""
    module = make_module("distill", distill={"teacher_epochs": 0}, flip=False)
    module.net = Fixed(torch.tensor([0.1, 0.3]))
    module.temporal = Fixed(torch.tensor([0.5, 0.1]))
    losses = module.losses(make_batch(2))
    expected = ((0.1 + 0.4**2) + (0.3 + 0.2**2)) / 2
    assert losses["loss"].item() == pytest.approx(expected)
    assert losses["distill"].item() == pytest.approx((0.4**2 + 0.2**2) / 2)
    losses["loss"].backward()
    assert module.temporal.weight.grad is None  # L_t is a fixed teacher signal
    terms = distillation_terms(torch.tensor([0.1, 0.3]), torch.tensor([0.5, 0.1]))
    assert terms["loss"].item() == pytest.approx(expected)


def test_distillation_factors_weight_each_samples_gradient():
    """∂/∂w of mean_i (L_s,i + (L_t,i − L_s,i)²) with L_s,i = w·e_i (e = 0.1, 0.3; L_t = 0.5,
    0.1) is mean_i (1 + 2(L_s,i − L_t,i))·e_i = (0.2·0.1 + 1.4·0.3)/2 = 0.22: the factors 0.2
    and 1.4 are what training_step logs (mean 0.8, std 0.6)."""
    module = make_module("distill", distill={"teacher_epochs": 0}, flip=False)
    module.net = Fixed(torch.tensor([0.1, 0.3]))
    module.temporal = Fixed(torch.tensor([0.5, 0.1]))
    losses = module.losses(make_batch(2))
    torch.testing.assert_close(losses["factors"], torch.tensor([0.2, 1.4]))
    losses["loss"].backward()
    assert module.net.weight.grad.item() == pytest.approx((0.2 * 0.1 + 1.4 * 0.3) / 2)
    torch.testing.assert_close(distillation_factors(torch.tensor([0.05]), torch.tensor([0.02])),
                               torch.tensor([1.06]))
    logged = {}
    module.log = lambda name, value, **_: logged.__setitem__(name, value.detach().item())
    module.net.weight.grad = None
    module.training_step(make_batch(2), 0)
    assert logged["train/distill_factor_mean"] == pytest.approx(0.8)
    assert logged["train/distill_factor_std"] == pytest.approx(0.6)
    assert logged["train/loss_spatial"] == pytest.approx(0.2)
    assert "train/loss_factors" not in logged


def test_flow_network_leaves_the_random_draws_of_plain_training():
    """plain (with data.flow) is the control of joint/distill: the same spatial initial
    weights and the same draws afterwards (shuffles, flips)."""
    draws = {}
    for training in ("plain", "joint", "distill"):
        torch.manual_seed(0)
        module = make_module(training)
        draws[training] = (module.net.state_dict()["layers.conv1.0.weight"], torch.rand(4))
    for training in ("joint", "distill"):
        torch.testing.assert_close(draws[training], draws["plain"], rtol=0, atol=0)


def test_teacher_is_trained_first_then_frozen():
    """Phase 1 (teacher_epochs): only the flow network learns; phase 2: a spatial step leaves
    the teacher's weights and BatchNorm statistics unchanged and changes the student."""
    module = make_module("distill", distill={"teacher_epochs": 1})
    optimizer = module.configure_optimizers()
    batch = make_batch(4)
    # phase 1: epoch 0 < teacher_epochs
    assert module.teacher_phase
    module.train()
    spatial_before = copy.deepcopy(module.net.state_dict())
    teacher_before = copy.deepcopy(module.temporal.state_dict())
    losses = module.losses(batch)
    assert set(losses) == {"loss", "temporal"}
    losses["loss"].backward()
    optimizer.step()
    optimizer.zero_grad()
    assert all(torch.equal(v, module.net.state_dict()[k]) for k, v in spatial_before.items())
    assert any(not torch.equal(v, module.temporal.state_dict()[k])
               for k, v in teacher_before.items())
    # phase 2: pretend the teacher epochs are over
    module.distill_cfg.teacher_epochs = 0
    module.on_train_epoch_start()
    module.train()
    assert not module.temporal.training and module.net.training
    teacher_before = copy.deepcopy(module.temporal.state_dict())
    spatial_before = copy.deepcopy(module.net.state_dict())
    for seed in range(2):
        loss = module.losses(make_batch(4, seed=seed))["loss"]
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    for k, v in teacher_before.items():
        assert torch.equal(v, module.temporal.state_dict()[k]), k
    assert any(not torch.equal(v, module.net.state_dict()[k]) for k, v in spatial_before.items())


def test_teacher_loads_from_a_checkpoint(tmp_path: Path):
    teacher = make_module("joint")
    path = tmp_path / "teacher.ckpt"
    torch.save({"state_dict": teacher.state_dict()}, path)
    student = make_module("distill", distill={"teacher_epochs": 0, "teacher_ckpt": str(path)})
    for k, v in teacher.temporal.state_dict().items():
        assert torch.equal(v, student.temporal.state_dict()[k])


def test_distill_and_joint_need_flow():
    with pytest.raises(ValueError, match="data.flow"):
        make_module("joint").losses(make_batch(flow=False))
    assert make_module("plain").temporal is None
    with pytest.raises(ValueError, match="plain, distill, joint|one of"):
        make_module("nope")


def test_flip_mirrors_frames_and_negates_u():
    batch = make_batch(2)
    flipped = TopHeavyModule.flip_batch(batch, torch.tensor([True, False]))
    torch.testing.assert_close(flipped.clip[0], batch.clip[0].flip(-1))
    torch.testing.assert_close(flipped.clip[1], batch.clip[1])
    torch.testing.assert_close(flipped.flow[0, 0], 1.0 - batch.flow[0, 0].flip(-1))  # u → −u
    torch.testing.assert_close(flipped.flow[0, 1], batch.flow[0, 1].flip(-1))
    torch.testing.assert_close(flipped.flow[1], batch.flow[1])


def test_score_is_the_per_frame_mae_of_the_spatial_network():
    """Frame t of clip b has 1 + t + 2b pixels off by ±0.5 in a 16x16 frame."""
    module = make_module("joint")
    error = torch.zeros(2, 1, 4, 16, 16)
    expected = torch.zeros(2, 4)
    for b in range(2):
        for t in range(4):
            n = 1 + t + 2 * b
            error[b, 0, t].view(-1)[:n] = torch.tensor([0.5 if i % 2 else -0.5 for i in range(n)])
            expected[b, t] = 0.5 * n / 256

    class Known(nn.Module):
        def forward(self, x):
            return x - error

    module.net = Known()
    module.temporal = None  # the score never needs the flow network
    scores = module.score(make_batch(2, flow=False))
    torch.testing.assert_close(scores, expected)
    module.score_error = "mse"  # each of the n pixels off by 0.5² instead of 0.5
    torch.testing.assert_close(module.score(make_batch(2, flow=False)), expected * 0.5)
    with pytest.raises(ValueError, match="score_error"):
        make_module("plain", score_error="max")


def test_ae3d_module_uses_the_3d_network():
    module = make_module("joint", cls=AE3DModule)
    assert module.net.kernel_sizes()["conv1"] == (3, 3, 3)
    assert module.temporal.layers["conv1"][0].in_channels == 2


# -- training through vad.train -------------------------------------------------------------------
@pytest.mark.parametrize("model", ["topheavy", "ae3d"])
def test_configs_compose_with_training_modes(tmp_path: Path, model: str):
    import hydra

    for training in ("plain", "distill", "joint"):
        cfg = compose_config(tmp_path, f"model={model}", f"model.training={training}",
                             "+data.flow.bound=4")
        module = hydra.utils.instantiate(cfg.model, _convert_="object")
        datamodule = hydra.utils.instantiate(cfg.data, _convert_="object")
        assert module.training_mode == training and datamodule.flow.bound == 4


@pytest.mark.parametrize("training", ["distill", "joint"])
def test_flow_modes_run_end_to_end_on_synthetic(tmp_path: Path, training: str):
    from vad.train import train

    cfg = compose_config(tmp_path, "model=topheavy", f"model.training={training}",
                         "model.clip.length=4", "+data.flow.bound=4",
                         "+data.flow.tvl1={nscales:1,warps:1,outerIterations:2}",
                         "data.num_train_videos=1", "data.num_test_videos=1",
                         "data.frames_per_video=12", "data.size=16", "trainer.max_epochs=2",
                         "eval.plots=false", "callbacks.model_checkpoint.monitor=null")
    metrics, objects = train(cfg)
    assert "test/auc_micro" in metrics
    assert "train/loss_temporal_epoch" in metrics and "val/loss_temporal" in metrics
    assert f"train/{training}_factor_mean_epoch" in metrics
    if training == "distill":
        assert not any(p.requires_grad for p in objects["model"].temporal.parameters())
    # scripts/topheavy_factors.py reads the factors back from the checkpoint: on the held-out
    # clips its L_s and L_t are the last epoch's val/loss and val/loss_temporal.
    script = Path(__file__).resolve().parents[1] / "scripts" / "topheavy_factors.py"
    ckpt = Path(cfg.paths.output_dir) / "checkpoints" / "last.ckpt"
    result = subprocess.run([sys.executable, str(script), str(ckpt), "--split", "val"],
                            check=True, capture_output=True, text=True, cwd=tmp_path)
    row = json.loads(result.stdout)
    assert row["training"] == training and row["clips"] > 0
    assert row["l_s"] == pytest.approx(float(metrics["val/loss"]), rel=1e-4)
    assert row["l_t"] == pytest.approx(float(metrics["val/loss_temporal"]), rel=1e-4)
    expected = 1 + 2 * (row["l_s"] - row["l_t"]) if training == "distill" else 1 + row["l_t"]
    assert row["factor_mean"] == pytest.approx(expected, rel=1e-5)


def test_short_synthetic_run_beats_the_untrained_model(tmp_path: Path):
    """Plain Top-Heavy on the synthetic benchmark shrunk to keep it short (32x32 frames, 4-frame
    clips, every 2nd test window), 3 epochs vs the same model untrained (same seed). Measured
    (docs/results.md): trained 0.719, untrained 0.448."""
    from vad.train import train

    common = ("model=topheavy", "seed=0", "model.clip.length=4", "data.size=32",
              "data.test_window_step=2", "eval.plots=false")
    trained, _ = train(compose_config(tmp_path / "trained", *common, "trainer.max_epochs=3"))
    untrained, _ = train(compose_config(tmp_path / "untrained", *common, "train=false"))
    assert trained["test/auc_micro"] >= untrained["test/auc_micro"] + 0.15
    assert trained["test/excluded_frames"] == 0


FAKES = [("ped1", "ped1/ucsd"), ("ped2", "ped2/videos"), ("avenue", "avenue/original"),
         ("shanghaitech", "shanghaitech"), ("streetscene", "streetscene")]


@pytest.mark.parametrize("model", ["topheavy", "ae3d"])
@pytest.mark.parametrize("data, root", FAKES)
def test_fast_dev_run_on_every_fake_layout(tmp_path: Path, fakes_root: Path, model: str,
                                           data: str, root: str):
    from vad.train import train

    cfg = compose_config(tmp_path, "debug=fdr", f"model={model}", f"data={data}",
                         f"data.root={fakes_root / root}", "data.strict=null",  # fakes: small
                         "model.clip.length=4",
                         "data.image_size=[32,32]", "data.num_workers=0")
    metrics, _ = train(cfg)
    assert "test/auc_micro" in metrics
