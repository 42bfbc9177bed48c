import pytest
import torch

from vad.models.blocks.convlstm import ConvLSTM
from vad.models.convstae import ConvSTAE


@pytest.mark.parametrize("size", [(64, 64), (227, 227), (60, 90)])
def test_convstae_reconstructs_any_size(size):
    net = ConvSTAE(1, [8, 4, 4], [11, 5, 3], [4, 2, 1], [4, 2, 4])
    clip = torch.rand(2, 1, 10, *size)
    out = net(clip)
    assert out.shape == clip.shape
    assert 0 <= out.min() and out.max() <= 1  # sigmoid output, frames in [0, 1]


@pytest.mark.parametrize("peephole", [False, True])
def test_convlstm_shapes_state_dict_and_gradients(peephole):
    lstm = ConvLSTM(3, [5, 2], peephole=peephole)
    x = torch.randn(2, 3, 4, 6, 7, requires_grad=True)
    y = lstm(x)
    assert y.shape == (2, 2, 4, 6, 7)
    y.sum().backward()
    assert x.grad[:, :, 0].abs().sum() > 0  # the first frame reaches every later output
    again = ConvLSTM(3, [5, 2], peephole=peephole)
    again.load_state_dict(lstm.state_dict())  # checkpoints load (no lazy parameters)
    torch.testing.assert_close(again(x), y)


def test_convlstm_is_causal():
    lstm = ConvLSTM(1, [3])
    x = torch.randn(1, 1, 5, 4, 4)
    changed = x.clone()
    changed[:, :, 3:] += 1
    torch.testing.assert_close(lstm(x)[:, :, :3], lstm(changed)[:, :, :3])


def test_module_rejects_a_clip_target_it_cannot_score():
    from functools import partial

    from vad.models.convstae import ConvSTAEModule

    with pytest.raises(ValueError, match="model.clip.target=all"):
        ConvSTAEModule(clip={"length": 10, "target": "last"}, net={"in_channels": 1},
                       optimizer=partial(torch.optim.Adam, lr=1e-3))
