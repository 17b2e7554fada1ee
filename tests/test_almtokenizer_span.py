"""Sliding-window attention (`base_args.attn_span`): tokens only see nearby frames."""

from __future__ import annotations

import pytest
import torch

from codec.models.almtokenizer import ALMConfig, ALMTokenizer
from codec.models.almtokenizer.config import BaseArgs, MAEArgs


def _model(span: int | None) -> ALMTokenizer:
    torch.manual_seed(0)
    cfg = ALMConfig(
        BaseArgs(dim=32, n_heads=2, n_layers=2, decoder_n_layers=2, ffn_dim=64,
                 codebook_size=16, codebook_dim=8, ar_layers=0, encodec_n_filters=2,
                 encodec_lstm=0, patch_dim=16, attn_span=span),
        MAEArgs(dim=16, n_heads=2, n_layers=0),
    )  # fmt: skip
    return ALMTokenizer(cfg).eval()


@torch.no_grad()
def test_span_limits_how_far_back_a_token_sees() -> None:
    w, span = 2, 6
    e = torch.randn(1, 16, 40)
    far = e.clone()
    far[:, :, :4] += 5.0  # change only the first two windows
    for model, sees_far in ((_model(span), False), (_model(None), True)):
        _, h = model.encode_frames(e, w)
        _, h2 = model.encode_frames(far, w)
        last = (h[..., -1] - h2[..., -1]).abs().max().item()
        assert (last > 1e-5) is sees_far
        assert (h[..., 0] - h2[..., 0]).abs().max() > 1e-5  # the changed window itself differs


def test_span_must_be_positive() -> None:
    with pytest.raises(ValueError, match="attn_span"):
        ALMConfig.from_dict({"base_args": {"attn_span": 0}, "mae_args": {}})
