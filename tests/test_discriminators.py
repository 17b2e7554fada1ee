"""The spectrogram discriminators: shapes, gradients to the waveform, and what each can see."""

from __future__ import annotations

import math

import torch

from codec.training.config import DiscriminatorConfig
from codec.training.discriminators import MultiMelDiscriminator, STFTDiscriminator
from tests.train_configs import tiny_config

torch.set_num_threads(1)
SR = 24000


def _cfg(kind: str) -> DiscriminatorConfig:
    return DiscriminatorConfig(kind=kind, n_fft=[256, 512], hop_lengths=[64, 128],
                               win_lengths=[256, 512], n_mels=32, filters=4, max_filters=8,
                               dilations=[1, 2])  # fmt: skip


def test_stft_ensemble_scores_and_passes_gradients() -> None:
    torch.manual_seed(0)
    disc = MultiMelDiscriminator(_cfg("stft"))
    assert all(isinstance(d, STFTDiscriminator) for d in disc.discriminators)
    wav = (0.1 * torch.randn(2, 1, 4800)).requires_grad_()
    outs = disc(wav)
    assert len(outs) == 2
    for d, o in zip(disc.discriminators, outs):
        spec = d.spectrogram(wav)
        assert spec.shape == (2, 2, 4800 // d.hop_length + 1, d.n_fft // 2 + 1)
        assert o.logits.shape[:2] == (2, 1) and len(o.features) == 4
    sum(o.logits.mean() for o in outs).backward()
    assert wav.grad is not None and float(wav.grad.abs().sum()) > 0


def test_stft_input_sees_phase_the_mel_input_does_not() -> None:
    """A tone and the same tone shifted by a quarter period: equal log-mel spectrograms, but
    different complex-STFT inputs."""
    t = torch.arange(4800) / SR
    a = torch.sin(2 * math.pi * 375.0 * t).view(1, 1, -1)
    b = torch.cos(2 * math.pi * 375.0 * t).view(1, 1, -1)
    mel = MultiMelDiscriminator(_cfg("mel")).discriminators[0]
    stft = MultiMelDiscriminator(_cfg("stft")).discriminators[0]
    mid = slice(4, -4)  # away from the edges, where padding differs
    ma, mb = (mel.spectrogram(x)[:, :, mid].exp() for x in (a, b))
    assert torch.allclose(ma, mb, atol=1e-3 * float(ma.max()))  # magnitudes agree
    sa, sb = stft.spectrogram(a)[:, :, mid], stft.spectrogram(b)[:, :, mid]
    assert not torch.allclose(sa, sb, atol=0.1 * float(sa.abs().max()))  # phase differs
    assert torch.allclose(sa.pow(2).sum(1), sb.pow(2).sum(1), atol=1e-3 * float(sa.pow(2).max()))


def test_training_step_with_the_stft_discriminator(tmp_path) -> None:
    from codec.training.loop import train
    from tests.fixtures import make_goodsounds

    data = tmp_path / "gs"
    make_goodsounds(data, seconds=0.5)
    cfg = tiny_config(data, tmp_path / "run", "discriminator.kind=stft", "training.max_steps=2",
                      "training.lambdas.adv=1.0", "training.lambdas.feat=1.0")  # fmt: skip
    result = train(cfg)
    assert (result.final_dir / "model.safetensors").is_file()


def test_stft_kind_ignores_n_mels_length() -> None:
    cfg = DiscriminatorConfig(kind="stft", n_fft=[512, 256, 128], hop_lengths=[128, 64, 32],
                              win_lengths=[512, 256, 128], n_mels=[48, 64])  # fmt: skip
    cfg.validate()
    import pytest

    from codec.training.config import ConfigError

    with pytest.raises(ConfigError, match="n_mels: has 2 entries but n_fft has 3"):
        DiscriminatorConfig(kind="mel", n_fft=cfg.n_fft, hop_lengths=cfg.hop_lengths,
                            win_lengths=cfg.win_lengths, n_mels=[48, 64]).validate()  # fmt: skip
