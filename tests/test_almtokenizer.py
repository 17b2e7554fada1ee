"""ALMTokenizer model-level properties: shapes, windows, bitrate, codes, causality, checkpoints,
training contract. Tiny configs keep every test CPU-small."""

from __future__ import annotations

import json
import math

import pytest
import torch

from codec.almtokenizer import ALMConfig, ALMTokenizer, BaseArgs, MAEArgs, preset
from codec.base import Encoded, TrainOutput
from codec.checkpoint import CheckpointError, load_codec

HOP = 480


def tiny_config(**base: object) -> ALMConfig:
    args = dict(
        patch_dim=16,
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
        stft_dim=32,
        stft_encoder_layers=2,
        stft_decoder_layers=1,
        seanet_filters=4,
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
    assert demo.frame_rate(4) == 12.5
    assert demo.bitrate(4) == pytest.approx(412.5)  # 12.5 tokens/s x 3 codebooks x 11 bits
    assert demo.bitrate() == demo.bitrate(demo.config.base_args.default_window)
    for w in range(2, 11):
        assert demo.bitrate(w) == pytest.approx(50 / w * 3 * math.log2(2048))
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
        return m.encode(wav, window).latents, m.encode(other, window).latents


@pytest.mark.parametrize("frontend", ["stft", "seanet"])
def test_future_input_never_changes_past_tokens(frontend: str) -> None:
    m = ALMTokenizer(tiny_config(frontend=frontend)).eval()
    for window, g in ((2, 2), (5, 1), (10, 3)):
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


def test_stage1_trains_the_frontend_only_path() -> None:
    m = ALMTokenizer(tiny_config()).train()
    wav = torch.randn(2, 1, 5000) * 0.1
    out = m(wav, 7, stage=1)
    assert out.recon.shape == wav.shape and out.codes is None and out.losses == {}
    (out.recon - wav).abs().mean().backward()
    assert all(p.grad is not None for p in m.frontend_parameters())
    assert all(p.grad is None for p in m.encoder.parameters())
    with pytest.raises(ValueError, match="stage"):
        m(wav, 2, stage=3)


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
