"""ALMTokenizer model-level properties: shapes, windows, bitrate, codes, causality, checkpoints,
training contract. Tiny configs keep every test CPU-small."""

from __future__ import annotations

import json
import math

import pytest
import torch

from codec.checkpoint import CheckpointError
from codec.models.almtokenizer import ALMConfig, ALMTokenizer, BaseArgs, MAEArgs, preset
from codec.models.base import Encoded, TrainOutput
from codec.models.registry import load_codec

HOP = 320  # the EnCodec architecture's hop: 75 frames per second


def tiny_config(**base: object) -> ALMConfig:
    """A tiny ALMTokenizer on a tiny randomly initialised EnCodec-architecture autoencoder."""
    args = dict(
        patch_dim=16,
        encodec_n_filters=2,
        encodec_lstm=0,
        dim=32,
        n_heads=2,
        n_layers=2,
        decoder_n_layers=2,
        ffn_dim=64,
        codebook_size=32,
        codebook_dim=8,
        ar_layers=1,
        ar_dim=16,
        ar_n_heads=2,
    )
    args.update(base)
    return ALMConfig(BaseArgs(**args), MAEArgs(dim=16, n_heads=2, n_layers=1))


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


@pytest.fixture(scope="module")
def model() -> ALMTokenizer:
    torch.manual_seed(0)
    m = ALMTokenizer(tiny_config())
    m.train()
    m(torch.randn(2, 1, 9600) * 0.1, 2, stage=2)  # initialise the codebooks by k-means
    return m.eval()


@pytest.mark.parametrize("window", range(2, 11))
def test_round_trip_shapes_every_window(model: ALMTokenizer, window: int) -> None:
    for n in (4801, 7777, 24000):
        wav = torch.randn(2, 1, n) * 0.1
        with torch.no_grad():
            enc = model.encode(wav, window)
            frames = math.ceil(n / HOP)
            tokens = math.ceil(frames / window)
            assert isinstance(enc, Encoded)
            assert enc.latents.shape == (2, model.latent_dim, tokens)
            assert enc.quantized.shape == (2, model.latent_dim, tokens)
            assert enc.codes.shape == (2, 3, tokens) and enc.codes.dtype == torch.int64
            assert model.num_frames(n, window) == tokens
            assert enc.window == window and enc.num_samples == n
            assert model.decode(enc.quantized, window, num_samples=n).shape == (2, 1, n)
            assert model.decode(enc.latents, window).shape == (2, 1, tokens * window * HOP)
            assert model.reconstruct(wav, window).shape == (2, 1, n)


def test_bitrate_formula() -> None:
    demo = ALMTokenizer(preset("demo"))
    assert demo.frame_rate(6) == 12.5
    assert demo.bitrate(6) == pytest.approx(412.5)  # 12.5 tokens/s x 3 codebooks x 11 bits
    assert demo.bitrate() == demo.bitrate(demo.config.base_args.default_window)
    for w in range(2, 11):
        assert demo.bitrate(w) == pytest.approx(75 / w * 3 * math.log2(2048))
    with pytest.raises(ValueError, match="window"):
        demo.frame_rate(0)


def test_demo_preset_size() -> None:
    n = sum(p.numel() for p in ALMTokenizer(preset("demo")).parameters())
    assert 5e6 <= n <= 15e6, n


def test_decode_codes_equals_decode_quantized(model: ALMTokenizer) -> None:
    wav = torch.randn(2, 1, 12345) * 0.1
    with torch.no_grad():
        enc = model.encode(wav, 3)
        a = model.decode(model.codes_to_latents(enc.codes, 3), 3, wav.shape[-1])
        b = model.decode(enc.quantized, 3, wav.shape[-1])
        c = model.decode_codes(enc.codes, 3, wav.shape[-1])
    assert torch.equal(a, b) and torch.equal(a, c)
    # and quantization does something: continuous latents decode differently
    assert not torch.equal(enc.latents, enc.quantized)


def _cut_tokens(m: ALMTokenizer, window: int, g: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Latents of a clip and of the same clip with everything after token g replaced."""
    n = 6 * window * HOP
    wav = torch.randn(1, 1, n) * 0.1
    other = wav.clone()
    cut = (g + 1) * window * HOP
    other[..., cut:] = torch.randn(1, 1, n - cut) * 0.1
    with torch.no_grad():
        if not bool(m.standardizer.ready):  # unit-scale frames, so the input matters
            m.standardizer.fit(m.patchify(torch.randn(4, 1, n) * 0.1, window))
        return m.encode(wav, window).latents, m.encode(other, window).latents


@pytest.mark.parametrize("lstm", [0, 1])
def test_future_input_never_changes_past_tokens(lstm: int) -> None:
    """Causal from frame 7 on: EnCodec's causal convs reflect-pad on the left, so the first
    frames see up to frame 6 (an autoencoder property, documented in frontend_encodec)."""
    m = ALMTokenizer(tiny_config(encodec_lstm=lstm)).eval()
    for window, g in ((2, 3), (5, 1), (10, 3)):
        a, b = _cut_tokens(m, window, g)
        torch.testing.assert_close(a[..., : g + 1], b[..., : g + 1], atol=1e-5, rtol=1e-5)
        assert (a[..., g + 1 :] - b[..., g + 1 :]).abs().max() > 1e-3


def test_non_causal_model_does_see_the_future() -> None:
    """The causality test above can fail: without the causal mask past tokens change."""
    m = ALMTokenizer(tiny_config(causal=False)).eval()
    a, b = _cut_tokens(m, 4, 1)
    assert (a[..., :2] - b[..., :2]).abs().max() > 1e-4


def test_decoder_is_window_causal(model: ALMTokenizer) -> None:
    tokens = torch.randn(1, model.latent_dim, 5)
    changed = tokens.clone()
    changed[..., 3:] = torch.randn(1, model.latent_dim, 2)
    with torch.no_grad():
        a, b = model.decode_frames(tokens, 4), model.decode_frames(changed, 4)
    assert torch.allclose(a[..., : 3 * 4], b[..., : 3 * 4], atol=1e-6)
    assert (a[..., 3 * 4 :] - b[..., 3 * 4 :]).abs().max() > 1e-3


def test_save_load_identical_output(model: ALMTokenizer, tmp_path) -> None:
    path = model.save_pretrained(tmp_path / "ckpt", meta={"step": 1})
    loaded = ALMTokenizer.from_pretrained(path)
    assert isinstance(loaded, ALMTokenizer) and not loaded.training
    assert loaded.config == model.config
    wav = torch.randn(1, 1, 10000) * 0.1
    with torch.no_grad():
        e1, e2 = model.encode(wav, 5), loaded.encode(wav, 5)
        assert torch.equal(e1.codes, e2.codes)
        assert torch.equal(model.decode(e1.quantized, 5), loaded.decode(e2.quantized, 5))
    for k, v in model.state_dict().items():
        assert torch.equal(v, loaded.state_dict()[k]), k


def test_strict_loading_rejects_mismatched_config(model: ALMTokenizer, tmp_path) -> None:
    path = model.save_pretrained(tmp_path / "ckpt")
    cfg_path = path / "config.json"
    cfg = json.loads(cfg_path.read_text())
    cfg["model"]["base_args"]["dim"] = 48
    cfg["model"]["base_args"]["ffn_dim"] = 96
    cfg_path.write_text(json.dumps(cfg))
    with pytest.raises(CheckpointError, match="model.safetensors"):
        load_codec(path)
    cfg["model"]["base_args"]["dim"] = 32
    cfg["model"]["base_args"]["not_a_key"] = 1
    cfg_path.write_text(json.dumps(cfg))
    with pytest.raises(CheckpointError, match="not_a_key"):
        load_codec(path)


def test_stage2_losses_and_gradients() -> None:
    m = ALMTokenizer(tiny_config()).train()
    m.freeze_frontend()
    wav = torch.randn(2, 1, 9000) * 0.1
    out = m(wav, 3, stage=2)
    assert isinstance(out, TrainOutput)
    assert set(out.losses) == {"loss/commit", "loss/latent", "loss/mae", "loss/ar"}
    assert all(torch.isfinite(v) and v.ndim == 0 for v in out.losses.values())
    assert out.recon.shape == wav.shape
    assert out.codes.shape == (2, 3, math.ceil(math.ceil(9000 / HOP) / 3))
    assert {f"stats/codebook_usage_{k}" for k in range(3)} <= set(out.stats)
    loss = (out.recon - wav).abs().mean() + sum(out.losses.values())
    loss.backward()
    assert all(p.grad is None for p in m.frontend_parameters())
    for part in (m.encoder, m.decoder, m.mae, m.depth_ar):
        grads = [p.grad for p in part.parameters()]
        assert all(g is not None for g in grads)
        assert sum(float(g.abs().sum()) for g in grads) > 0
    assert m.query_token.grad is not None and m.query_token.grad.abs().sum() > 0
    assert m.mask_token.grad is not None and m.mask_token.grad.abs().sum() > 0
    # parameter groups partition the model
    n_front, n_back = len(m.frontend_parameters()), len(m.backbone_parameters())
    assert n_front + n_back == len(list(m.parameters())) and n_front > 0


def test_stage2_optional_losses_follow_config() -> None:
    cfg = tiny_config(ar_layers=0)
    cfg.mae_args.n_layers = 0
    out = ALMTokenizer(cfg).train()(torch.randn(1, 1, 4800) * 0.1, 2, stage=2)
    assert set(out.losses) == {"loss/commit", "loss/latent"}


def test_stage2_eval_mode_reports_the_same_losses_without_updating_codebooks() -> None:
    m = ALMTokenizer(tiny_config()).eval()
    before = {k: v.clone() for k, v in m.quantizer.state_dict().items()}
    with torch.no_grad():
        out = m(torch.randn(1, 1, 4800) * 0.1, 2, stage=2)
    assert set(out.losses) == {"loss/commit", "loss/latent", "loss/mae", "loss/ar"}
    for k, v in m.quantizer.state_dict().items():
        assert torch.equal(v, before[k]), k


def test_stage1_is_the_frozen_autoencoder_alone() -> None:
    m = ALMTokenizer(tiny_config()).train()
    assert not m.frontend.training  # frozen parts stay in eval mode
    wav = torch.randn(2, 1, 5000) * 0.1
    out = m(wav, 7, stage=1)
    assert out.recon.shape == wav.shape and out.codes is None and out.losses == {}
    assert not out.recon.requires_grad and m.frontend_frozen
    with torch.no_grad():
        ref = m.frontend.decoder(m.frontend.encoder(m.frontend.pad_to_hop(wav)))[..., :5000]
    assert torch.equal(out.recon, ref)
    with pytest.raises(ValueError, match="stage"):
        m(wav, 2, stage=4)


def test_training_step_reduces_loss() -> None:
    """A few stage-2 steps on one batch lower the reconstruction + auxiliary loss."""
    m = ALMTokenizer(tiny_config()).train()
    m.freeze_frontend()
    opt = torch.optim.Adam(m.backbone_parameters(), lr=3e-3)
    t = torch.arange(4800) / 24000
    wav = (0.3 * torch.sin(2 * math.pi * 220 * t)).reshape(1, 1, -1).repeat(2, 1, 1)
    first = last = 0.0
    for step in range(15):
        out = m(wav, 2, stage=2)
        loss = (out.recon - wav).abs().mean() + sum(out.losses.values())
        opt.zero_grad()
        loss.backward()
        opt.step()
        loss = loss.detach()
        first = loss.item() if step == 0 else first
        last = loss.item()
    assert last < first


def test_output_bias_starts_at_zero_and_frames_are_standardised() -> None:
    m = ALMTokenizer(tiny_config())
    assert torch.count_nonzero(m.frame_out.bias) == 0
    assert not bool(m.standardizer.ready)
    frames = torch.randn(4, 16, 30) * 5 + torch.arange(16.0)[None, :, None]
    m.train()(torch.randn(4, 1, 30 * HOP), 3, stage=2, frames=frames)  # fits on first batch
    assert bool(m.standardizer.ready)
    z = m.standardizer(frames)
    torch.testing.assert_close(z.mean((0, 2)), torch.zeros(16), atol=1e-4, rtol=0)
    torch.testing.assert_close(z.std((0, 2)), torch.ones(16), atol=1e-3, rtol=0)
    torch.testing.assert_close(m.standardizer.inverse(z), frames, atol=1e-4, rtol=1e-4)
    # a dead channel is floored, not divided by ~0
    m.standardizer.set_stats(torch.zeros(16), torch.cat([torch.zeros(1), torch.ones(15)]))
    assert float(m.standardizer.std[0]) == pytest.approx(0.05)


def test_frame_statistics_travel_with_the_checkpoint(tmp_path) -> None:
    m = ALMTokenizer(tiny_config())
    m.standardizer.set_stats(torch.linspace(-3, 3, 16), torch.linspace(1, 6, 16))
    loaded = ALMTokenizer.from_pretrained(m.save_pretrained(tmp_path / "ckpt"))
    assert bool(loaded.standardizer.ready)
    assert torch.equal(loaded.standardizer.mean, m.standardizer.mean)
    assert torch.equal(loaded.standardizer.std, m.standardizer.std)


def test_cached_frames_give_the_same_step_as_encoding() -> None:
    m = ALMTokenizer(tiny_config()).eval()
    m.standardizer.set_stats(torch.zeros(16), torch.ones(16))
    wav = torch.randn(2, 1, 12 * HOP) * 0.1
    with torch.no_grad():
        frames = m.patchify(wav, 3)
        torch.manual_seed(1)
        a = m(wav, 3, stage=2)
        torch.manual_seed(1)
        b = m(wav, 3, stage=2, frames=frames)
    assert torch.equal(a.recon, b.recon)
    assert all(torch.equal(a.losses[k], b.losses[k]) for k in a.losses)
    with pytest.raises(ValueError, match="frames"):
        m(wav, 3, stage=2, frames=frames[:, :8])


def test_reconstruction_loss_trains_through_the_frozen_decoder() -> None:
    """Gradients of a waveform loss reach the transformers through unpatchify, never the
    autoencoder's own weights."""
    cfg = tiny_config(ar_layers=0)
    cfg.mae_args.n_layers = 0
    m = ALMTokenizer(cfg).train()
    wav = torch.randn(2, 1, 9 * HOP) * 0.1
    out = m(wav, 3, stage=2)
    assert out.recon.requires_grad
    (out.recon - wav).abs().mean().backward()
    assert all(p.grad is None for p in m.frontend_parameters())
    assert m.frame_out.weight.grad is not None and m.frame_out.weight.grad.abs().sum() > 0
    assert all(p.grad is not None for p in m.encoder.parameters())
    assert 0 < out.stats["stats/latent_rel"] < 10


def test_frame_error_is_zero_only_for_a_perfect_decoder() -> None:
    m = ALMTokenizer(tiny_config()).eval()
    m.standardizer.set_stats(torch.zeros(16), torch.ones(16))
    frames = torch.randn(3, 16, 12)
    err = m.frame_error(frames, 3, quantize=False)
    assert err.shape == (3,) and bool((err > 0).all())
    with torch.no_grad():
        m.frame_out.weight.zero_()  # predicts the mean: error = ||z||^2 / ||z||^2 = 1
    torch.testing.assert_close(m.frame_error(frames, 3), torch.ones(3))
