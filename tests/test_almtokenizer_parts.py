"""ALMTokenizer building blocks: config, interleaving, transformer masks, RVQ, MAE, depth-AR.
The front end has its own file (test_almtokenizer_frontend.py)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from codec.models.almtokenizer import ALMConfig, BaseArgs, preset
from codec.models.almtokenizer.depth_ar import DepthAR
from codec.models.almtokenizer.interleave import (
    frame_positions,
    group_means,
    interleave_masks,
    interleave_queries,
    num_groups,
    query_positions,
    retrieve_frames,
    retrieve_queries,
)
from codec.models.almtokenizer.mae import MAEDecoder, random_frame_mask
from codec.models.almtokenizer.quantizer import ResidualVQ, kmeans
from codec.models.almtokenizer.transformer import Transformer, group_causal_mask


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


# --- config ------------------------------------------------------------------------------
def test_config_round_trip_and_strictness() -> None:
    cfg = preset("demo")
    assert ALMConfig.from_dict(cfg.to_dict()) == cfg
    assert ALMConfig.from_dict(preset("paper").to_dict()) == preset("paper")
    d = cfg.to_dict()
    d["base_args"]["n_layer"] = 3
    with pytest.raises(ValueError, match="base_args.n_layer"):
        ALMConfig.from_dict(d)
    for key, bad in (
        ("dim", "256"),
        ("causal", 1),
        ("n_codebooks", True),
        ("encodec_ratios", [8, "6"]),
    ):
        d = cfg.to_dict()
        d["base_args"][key] = bad
        with pytest.raises(ValueError, match=f"base_args.{key}"):
            ALMConfig.from_dict(d)
    with pytest.raises(ValueError, match="mae_args.mask_ratio"):
        ALMConfig.from_dict({"mae_args": {"mask_ratio": "high"}})
    with pytest.raises(ValueError, match=r"^decoder_args: unknown key"):
        ALMConfig.from_dict({"decoder_args": {}})
    # ints are accepted for floats, values are validated
    assert ALMConfig.from_dict({"mae_args": {"mask_ratio": 0}}).mae_args.mask_ratio == 0.0
    with pytest.raises(ValueError, match="encodec_ratios"):
        ALMConfig(BaseArgs(encodec_ratios=[8, 6, 5, 2]))  # hop 480 is not 24000 / 75
    for gone in ("stft", "seanet", "mel"):
        with pytest.raises(ValueError, match="frontend"):
            ALMConfig(BaseArgs(frontend=gone))
    with pytest.raises(ValueError, match="preset"):
        preset("huge")


# --- interleaving ------------------------------------------------------------------------
def test_query_and_frame_positions_are_exact() -> None:
    assert query_positions(2, 3).tolist() == [3, 7]
    assert frame_positions(2, 3).tolist() == [0, 1, 2, 4, 5, 6]
    assert query_positions(3, 2).tolist() == [2, 5, 8]
    for w in range(1, 11):
        n = 7
        q, f = query_positions(n, w), frame_positions(n, w)
        assert sorted(q.tolist() + f.tolist()) == list(range(n * (w + 1)))
        # the naive "every w-th position" is wrong from the second query on
        assert q.tolist() != list(range(w, n * (w + 1), w))[:n]


@pytest.mark.parametrize("window", range(2, 11))
def test_interleave_then_retrieve(window: int) -> None:
    B, T, D = 2, 23, 4
    frames = torch.randn(B, T, D)
    query = torch.full((D,), 7.0)
    inter = interleave_queries(frames, query, window)
    n = num_groups(T, window)
    assert inter.num_tokens == n == math.ceil(T / window)
    assert inter.seq.shape == (B, n * window + n, D)
    seq = inter.seq
    assert torch.equal(seq[:, query_positions(n, window)], query.expand(B, n, D))
    padded = torch.nn.functional.pad(frames, (0, 0, 0, n * window - T))
    assert torch.equal(seq[:, frame_positions(n, window)], padded)
    assert torch.equal(retrieve_frames(seq, window), padded)
    assert torch.equal(retrieve_queries(seq, window), query.expand(B, n, D))


@pytest.mark.parametrize("window", [2, 3, 7, 10])
def test_mask_interleaving_keeps_exactly_the_mask_positions(window: int) -> None:
    """Decoder side: token g at g*(w+1)+w, masks before it; retrieval returns n*w masks and
    never a token (the reference reproduction's decode kept token positions)."""
    B, n, D = 2, 5, 3
    tokens = torch.arange(1, n + 1).float()[None, :, None].expand(B, n, D)
    mask = torch.zeros(D)
    seq = interleave_masks(tokens, mask, window)
    assert seq.shape == (B, n * (window + 1), D)
    assert torch.equal(seq[:, query_positions(n, window)], tokens)
    kept = retrieve_frames(seq, window)
    assert kept.shape == (B, n * window, D) and torch.all(kept == 0)
    assert torch.equal(retrieve_queries(seq, window), tokens)
    with pytest.raises(ValueError, match="multiple"):
        retrieve_frames(seq[:, :-1], window)


def test_group_causal_mask() -> None:
    m = group_causal_mask(6, 3, torch.device("cpu"))
    assert m[0].tolist() == [True, True, True, False, False, False]
    assert m[4].tolist() == [True] * 6
    assert torch.equal(group_causal_mask(5, 1, torch.device("cpu")), torch.ones(5, 5).tril().bool())


def test_transformer_causal_and_rope_position_dependence() -> None:
    t = Transformer(16, 2, 2, 32, causal=True).eval()
    x = torch.randn(1, 8, 16)
    y = x.clone()
    y[:, 5:] = torch.randn(1, 3, 16)
    with torch.no_grad():
        a, b = t(x), t(y)
        torch.testing.assert_close(a[:, :5], b[:, :5])
        # RoPE: the same vectors at other positions give other outputs
        rolled = t(torch.roll(x, 1, dims=1))
    assert not torch.allclose(rolled[:, 1:], a[:, :-1], atol=1e-4)


# --- quantizer ---------------------------------------------------------------------------
def test_kmeans_recovers_clusters() -> None:
    centers = torch.randn(4, 3) * 5
    x = (centers[:, None] + 0.05 * torch.randn(4, 50, 3)).reshape(-1, 3)
    found = kmeans(x, 4, iters=20)
    dist = torch.cdist(centers, found).min(1).values
    assert dist.max() < 0.1
    assert kmeans(x[:3], 8, iters=5).shape == (8, 3)  # fewer vectors than centroids


def test_rvq_kmeans_init_ema_and_straight_through() -> None:
    rvq = ResidualVQ(dim=6, n_q=2, codebook_size=8, codebook_dim=None, decay=0.8)
    rvq.train()
    centers = torch.randn(8, 6) * 3
    x = centers[torch.randint(0, 8, (64,))] + 0.01 * torch.randn(64, 6)
    x = x.T.reshape(1, 6, 64).requires_grad_(True)
    out = rvq(x)
    assert all(bool(cb.initialized) for cb in rvq.codebooks)
    assert out.codes.shape == (1, 2, 64) and out.layer_outputs.shape == (1, 2, 6, 64)
    err = (out.quantized - x).pow(2).mean()
    assert err < 0.05  # k-means found the clusters
    out.quantized.sum().backward()
    torch.testing.assert_close(x.grad, torch.ones_like(x))  # straight-through
    rvq.eval()
    # codes were chosen before this step's EMA update moved the codewords a little
    torch.testing.assert_close(rvq.decode(rvq.encode(x)), out.quantized.detach(), atol=1e-3, rtol=0)


def test_rvq_warmup_passes_through_then_initialises_on_the_buffer() -> None:
    rvq = ResidualVQ(dim=6, n_q=2, codebook_size=8, codebook_dim=None, warmup_steps=3).train()
    centers = torch.randn(8, 6) * 3
    batches = [centers[torch.randint(0, 8, (40,))] + 0.01 * torch.randn(40, 6) for _ in range(4)]
    for x in batches[:3]:
        x = x.T.reshape(1, 6, 40)
        out = rvq(x)
        assert torch.equal(out.quantized, x) and float(out.commit_loss) == 0.0
        assert out.commit_loss.requires_grad == x.requires_grad
        assert not any(bool(cb.initialized) for cb in rvq.codebooks)
    x = batches[3].T.reshape(1, 6, 40)
    out = rvq(x)  # fourth call: k-means on the 120 buffered vectors, then quantize
    assert all(bool(cb.initialized) for cb in rvq.codebooks) and int(rvq.steps) == 4
    assert (out.quantized - x).pow(2).mean() < 0.05 and out.commit_loss > 0
    rvq.eval()
    assert not torch.equal(rvq(x).quantized, x)  # eval mode never passes through


def test_group_means_and_per_group_queries() -> None:
    frames = torch.arange(2 * 5 * 3, dtype=torch.float32).reshape(2, 5, 3)
    means = group_means(frames, 2)  # groups (0, 1), (2, 3), (4, pad)
    torch.testing.assert_close(means[:, 1], frames[:, 2:4].mean(1))
    torch.testing.assert_close(means[:, 2], frames[:, 4] / 2)
    inter = interleave_queries(frames, means, 2)
    torch.testing.assert_close(retrieve_queries(inter.seq, 2), means)
    with pytest.raises(ValueError, match="query"):
        interleave_queries(frames, means[:, :2], 2)
    tokens = torch.randn(2, 3, 3)
    masks = torch.randn(2, 3, 2, 3)
    seq = interleave_masks(tokens, masks, 2)
    torch.testing.assert_close(retrieve_frames(seq, 2), masks.reshape(2, 6, 3))
    torch.testing.assert_close(retrieve_queries(seq, 2), tokens)


def test_rvq_ema_moves_codewords_and_replaces_dead_codes() -> None:
    rvq = ResidualVQ(dim=2, n_q=1, codebook_size=4, decay=0.5, dead_code_steps=3).train()
    data = torch.tensor([[0.0, 0.0], [10.0, 10.0]]).repeat(8, 1).T[None]  # [1, 2, 16]
    rvq(data)
    cb = rvq.codebooks[0]
    far = torch.tensor([[100.0, 100.0]]).T[None].repeat(1, 1, 8)
    for _ in range(4):
        rvq(far)
    # an EMA codeword moved towards the new data, and unused codes were re-seeded from it
    assert torch.cdist(cb.embed, torch.tensor([[100.0, 100.0]])).min() < 1.0
    assert int(cb.code_age.max()) < 3


def test_semantic_prior_initialises_first_codebook(tmp_path) -> None:
    centers = np.random.default_rng(0).normal(size=(4, 3)).astype(np.float32) * 4
    feats = np.repeat(centers, 30, axis=0) + 0.01
    np.save(tmp_path / "prior.npy", feats)
    rvq = ResidualVQ(dim=3, n_q=2, codebook_size=4, prior_path=str(tmp_path / "prior.npy"))
    rvq.train()(torch.randn(1, 3, 10))
    found = rvq.codebooks[0].embed
    assert torch.cdist(torch.from_numpy(centers) + 0.01, found).min(1).values.max() < 0.2
    np.save(tmp_path / "bad.npy", np.zeros((10, 5), np.float32))
    bad = ResidualVQ(dim=3, n_q=1, codebook_size=4, prior_path=str(tmp_path / "bad.npy"))
    with pytest.raises(ValueError, match="bad.npy"):
        bad.train()(torch.randn(1, 3, 10))


# --- MAE and depth-AR --------------------------------------------------------------------
def test_random_frame_mask_count() -> None:
    m = random_frame_mask(3, 20, 0.3, torch.device("cpu"))
    assert m.shape == (3, 20) and m.sum(1).tolist() == [6, 6, 6]
    assert random_frame_mask(1, 4, 0.1, torch.device("cpu")).sum() == 1


def test_mae_loss_only_counts_masked_frames() -> None:
    pred, target = torch.randn(2, 10, 4), torch.randn(2, 10, 4)
    mask = torch.zeros(2, 10, dtype=torch.bool)
    mask[:, :3] = True
    other = pred.clone()
    other[:, 3:] += 5
    assert MAEDecoder.loss(pred, target, mask) == MAEDecoder.loss(other, target, mask)
    other[:, 0] += 5
    assert MAEDecoder.loss(other, target, mask) != MAEDecoder.loss(pred, target, mask)


def test_depth_ar_targets_are_detached() -> None:
    ar = DepthAR(codebook_dim=4, n_q=3, dim=8, n_layers=1, n_heads=2)
    layers = torch.randn(2, 3, 4, 5, requires_grad=True)
    loss = ar(layers)
    assert loss.ndim == 0 and loss > 0
    loss.backward()
    assert layers.grad[:, :2].abs().sum() > 0
    assert torch.all(layers.grad[:, 2] == 0)  # the last layer is only ever a target
