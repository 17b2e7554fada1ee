"""base_args.group_linear: the position-wise linear paths between a group and its token."""

from __future__ import annotations

import pytest
import torch

from codec.models.almtokenizer import ALMTokenizer
from codec.models.almtokenizer.group_linear import GroupLinear
from tests.tiny_models import kmeans_warm, untrained_tiny_alm


def test_summarize_and_expand_apply_one_matrix_per_position() -> None:
    g = torch.Generator().manual_seed(0)
    layer = GroupLinear(4, window_max=5)
    with torch.no_grad():
        layer.weight.copy_(torch.randn(5, 4, 4, generator=g))
    frames = torch.randn(2, 7, 4, generator=g)  # 7 frames, w = 3: 3 groups, the last padded
    out = layer.summarize(frames, 3)
    assert out.shape == (2, 3, 4)
    expected = sum(layer.weight[j] @ frames[1, 3 + j] for j in range(3))  # group 1, clip 1
    torch.testing.assert_close(out[1, 1], expected)
    torch.testing.assert_close(out[0, 2], layer.weight[0] @ frames[0, 6])  # zero padding
    tokens = torch.randn(2, 3, 4, generator=g)
    spread = layer.expand(tokens, 3)
    assert spread.shape == (2, 3, 3, 4)
    torch.testing.assert_close(spread[0, 2, 1], layer.weight[1] @ tokens[0, 2])
    with pytest.raises(ValueError, match="window_max"):
        layer.summarize(frames, 6)


def test_zero_paths_load_over_a_plain_checkpoint_and_start_unchanged() -> None:
    plain = kmeans_warm(untrained_tiny_alm())
    torch.manual_seed(0)
    grown = untrained_tiny_alm(group_linear=True)
    added = grown.load_start_state(plain.state_dict(), "plain")
    assert set(added) == {"group_in.weight", "group_out.weight"}
    wav = torch.randn(2, 1, 4800, generator=torch.Generator().manual_seed(1)) * 0.1
    with torch.no_grad():
        torch.testing.assert_close(grown.eval().reconstruct(wav, 3), plain.reconstruct(wav, 3))
    # a file that holds the paths loads them strictly: one path without the other is an error
    state = grown.state_dict()
    assert grown.load_start_state(state, "grown") == []
    broken = {k: v for k, v in state.items() if k != "group_out.weight"}
    with pytest.raises(Exception, match="missing"):
        ALMTokenizer.from_config(grown.config_dict()).load_start_state(broken, "broken")


def test_both_paths_learn_in_stage_2_and_the_decoders_in_stage_3() -> None:
    model = kmeans_warm(untrained_tiny_alm(group_linear=True)).train()
    wav = torch.randn(2, 1, 4800, generator=torch.Generator().manual_seed(2)) * 0.1
    out = model(wav, 3, stage=2)
    (out.losses["loss/latent"] + out.recon.abs().mean()).backward()
    for layer in (model.group_in, model.group_out):
        assert layer is not None and layer.weight.grad is not None
        assert float(layer.weight.grad[:3].abs().sum()) > 0  # positions j < w learn
        assert float(layer.weight.grad[3:].abs().sum()) == 0  # the others are unused at w=3
    stage3 = {id(p) for p in model.decoder_parameters()}
    assert id(model.group_out.weight) in stage3 and id(model.group_in.weight) not in stage3


def test_reconstruct_frames_is_what_frame_error_measures() -> None:
    model = kmeans_warm(untrained_tiny_alm(group_linear=True))
    wav = torch.randn(2, 1, 4800, generator=torch.Generator().manual_seed(3)) * 0.1
    frames, decoded = model.reconstruct_frames(wav, 3)
    assert frames.shape == decoded.shape
    z, z_hat = model.standardizer(frames), model.standardizer(decoded)
    rel = (z_hat - z).pow(2).sum((1, 2)) / z.pow(2).sum((1, 2))
    torch.testing.assert_close(rel, model.frame_error(frames, 3), rtol=1e-4, atol=1e-5)
