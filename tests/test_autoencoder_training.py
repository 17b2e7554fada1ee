"""The shared autoencoder's training pieces: the multi-resolution STFT loss, the per-term
gradient-norm logging, and fitting EnCodec's RVQ on the frozen autoencoder
(`codec.training.fit_rvq`)."""

from __future__ import annotations

import math

import pytest
import torch

from codec.models.encodec import EnCodecCodec
from codec.training import losses as L
from codec.training.fit_rvq import cache_latents, fit_rvq

TINY = {
    "dimension": 16, "n_filters": 4, "lstm": 0, "n_q": 4, "bins": 16,
    "target_bandwidths": [0.3, 0.6, 1.2], "bandwidth": 0.6, "train_bandwidths": [0.3, 1.2],
    "kmeans_iters": 2,
}  # fmt: skip


def _tone(f0: float, n: int = 12000, sr: int = 24000) -> torch.Tensor:
    t = torch.arange(n) / sr
    return (0.3 * torch.sin(2 * math.pi * f0 * t)).view(1, 1, n)


def test_mrstft_zero_on_identity_and_grows_with_error() -> None:
    x = _tone(440.0)
    g = torch.Generator().manual_seed(0)
    noise = torch.randn(x.shape, generator=g)
    assert float(L.mrstft_loss(x, x)) < 1e-4
    small = float(L.mrstft_loss(x + 0.01 * noise, x))
    large = float(L.mrstft_loss(x + 0.1 * noise, x))
    assert 0 < small < large


def test_mrstft_hears_a_wrong_pitch() -> None:
    """A semitone off costs more than the same pitch slightly quieter: the loss sees pitch."""
    x = _tone(440.0)
    wrong_pitch = _tone(440.0 * 2 ** (1 / 12))
    quieter = 0.8 * x
    assert float(L.mrstft_loss(wrong_pitch, x)) > 2 * float(L.mrstft_loss(quieter, x))


def test_mrstft_gradient_reaches_the_waveform() -> None:
    x = _tone(220.0)
    y = (
        x + 0.05 * torch.randn(x.shape, generator=torch.Generator().manual_seed(1))
    ).requires_grad_()
    L.mrstft_loss(y, x).backward()
    assert y.grad is not None and float(y.grad.norm()) > 0


def test_mrstft_preemphasis_weighs_a_lost_formant_band_more() -> None:
    """Pre-emphasis changes only the spectral-convergence term, so the loss's change isolates
    it: losing a 2.5 kHz partial costs about 0.4 more (its share of the emphasised spectrum
    grows about 5x), losing the 150 Hz fundamental of 10x its amplitude about 0.13 less."""
    low, high = _tone(150.0), _tone(2500.0) / 10
    x, one = low + high, ((1024, 256),)
    lost_high = L.mrstft_loss(low, x, resolutions=one)
    lost_low = L.mrstft_loss(high, x, resolutions=one)
    lost_high_pe = L.mrstft_loss(low, x, resolutions=one, preemphasis=0.9)
    lost_low_pe = L.mrstft_loss(high, x, resolutions=one, preemphasis=0.9)
    assert float(lost_high_pe - lost_high) > 0.25
    assert float(lost_low_pe - lost_low) < -0.05
    assert float(L.mrstft_loss(x, x, preemphasis=0.9)) < 1e-4
    with pytest.raises(ValueError, match="preemphasis"):
        L.mrstft_loss(x, x, preemphasis=1.0)


def _latents(seed: int = 0) -> torch.Tensor:
    """Clustered latents `[M, D, T]`: 8 fixed centres plus small noise drawn with `seed`."""
    centres = 5 * torch.randn(8, 16, generator=torch.Generator().manual_seed(0))
    g = torch.Generator().manual_seed(seed)
    idx = torch.randint(0, 8, (64, 10), generator=g)
    z = centres[idx] + 0.3 * torch.randn(64, 10, 16, generator=g)
    return z.permute(0, 2, 1).contiguous()


def test_fit_rvq_learns_codebooks_and_keeps_the_autoencoder() -> None:
    torch.manual_seed(0)
    model = EnCodecCodec(TINY)
    before = {k: v.clone() for k, v in model.state_dict().items() if not k.startswith("quantizer")}
    stats = fit_rvq(model, _latents(), steps=30, batch_size=16, seed=0)
    errs = [stats[f"rvq/rel_err_{bw:g}kbps"] for bw in TINY["target_bandwidths"]]
    # each codebook removes error; all of them capture the 8 clusters and part of the noise
    assert 1.0 > errs[0] > errs[1] > errs[2], errs
    assert errs[2] < 0.05, errs
    after = model.state_dict()
    assert all(torch.equal(v, after[k]) for k, v in before.items())
    # the fitted codec quantizes as the stats say
    z = _latents(seed=3)
    model.set_bandwidth(1.2)
    q = model.quantize(z)
    assert float((q - z).pow(2).sum() / z.pow(2).sum()) < 0.1


def test_cache_latents_stops_at_max_crops() -> None:
    torch.manual_seed(0)
    model = EnCodecCodec(TINY)
    batches = [torch.randn(4, 1, 3200) * 0.1 for _ in range(5)]
    z = cache_latents(model, iter(batches), max_crops=10)
    assert z.shape == (10, 16, model.num_frames(3200))


def _tiny_run(tmp_path, time: float, mel: float) -> dict:
    """A 2-step run of the tiny autoencoder on a Good-sounds fixture, with MR-STFT on."""
    from tests.fixtures import make_goodsounds

    data = tmp_path / "good-sounds"
    make_goodsounds(data, seconds=0.5)
    return {
        "model": {"type": "encodec", "base_args": dict(TINY), "mae_args": {}},
        "dataloader": {"dataset": "goodsounds", "dataset_path": str(data), "batch_size": 2,
                       "nsecs": 0.4, "test_subset_size": 2},
        "training": {"max_steps": 2, "checkpoint_freq": 1000, "eval_freq": 1000, "log_freq": 1,
                     "eval_batches": 1, "audio_clips": 0, "writer_dir": str(tmp_path / "tb"),
                     "checkpoint_dir": str(tmp_path / "ckpt"), "device": "cpu", "seed": 0,
                     "lambdas": {"time": time, "mel": mel, "stft": 1.0, "adv": 0.0, "feat": 0.0,
                                 "commit": 0.0, "mae": 0.0, "ar": 0.0}},
    }  # fmt: skip


def test_trainer_logs_each_terms_gradient_norm(tmp_path) -> None:
    """With waveform L1 and MR-STFT on, the logs carry `grad_norm/time` and `grad_norm/stft`;
    L1's gradient norm at the output is lambda / sqrt(B * N) whatever the error."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from codec.training.config import TrainConfig
    from codec.training.loop import train

    raw = _tiny_run(tmp_path, time=10.0, mel=0.0)
    train(TrainConfig.from_dict(raw), command="pytest")
    ea = EventAccumulator(str(tmp_path / "tb"), size_guidance={"scalars": 0})
    ea.Reload()
    tags = ea.Tags()["scalars"]
    assert {"grad_norm/time", "grad_norm/stft", "loss/stft"} <= set(tags)
    expected = 10.0 / math.sqrt(2 * int(0.4 * 24000))
    for event in ea.Scalars("grad_norm/time"):
        assert abs(event.value - expected) < 1e-3 * expected
    assert all(e.value > 0 for e in ea.Scalars("grad_norm/stft"))


def _balanced_param_grad(scale: float) -> torch.Tensor:
    """The parameter gradient of a tiny 'decoder' after one balanced backward of waveform L1
    plus `scale` x MR-STFT."""
    from codec.training.balancer import LossBalancer
    from codec.training.config import LambdasConfig

    torch.manual_seed(0)
    weight = torch.nn.Parameter(torch.randn(1, 1, 9) * 0.1)
    x = _tone(330.0, n=4800)
    recon = torch.nn.functional.conv1d(x, weight, padding=4)
    losses = {"loss/time": L.time_loss(recon, x), "loss/stft": scale * L.mrstft_loss(recon, x)}
    lambdas = LambdasConfig(time=1.0, stft=1.0)
    norms = LossBalancer(0.99).backward(losses, recon, lambdas.weight)
    assert set(norms) == {"grad_norm/time", "grad_norm/stft"}
    return weight.grad.clone()


def test_balancer_makes_the_update_independent_of_a_losss_scale() -> None:
    """Scaling one loss by 1000 changes its raw gradient 1000x but not the balanced update."""
    g1, g1000 = _balanced_param_grad(1.0), _balanced_param_grad(1000.0)
    assert torch.allclose(g1, g1000, rtol=1e-4, atol=1e-8)
    assert float(g1.norm()) > 0


def _plain_param_grad(adv_scale: float | None) -> tuple[torch.Tensor, torch.Tensor, dict]:
    """(param grad after a balanced backward of L1 + MR-STFT, with an 'adv' stand-in of
    `adv_scale` x a fixed loss kept out of the balancer (None: no such loss); that stand-in's
    own raw param grad; the returned norms)."""
    from codec.training.balancer import LossBalancer
    from codec.training.config import LambdasConfig

    torch.manual_seed(0)
    weight = torch.nn.Parameter(torch.randn(1, 1, 9) * 0.1)
    x = _tone(330.0, n=4800)
    recon = torch.nn.functional.conv1d(x, weight, padding=4)
    losses = {"loss/time": L.time_loss(recon, x), "loss/stft": L.mrstft_loss(recon, x)}
    adv_grad = torch.zeros_like(weight)
    if adv_scale is not None:
        losses["loss/adv"] = adv_scale * (recon**2).mean()
        (adv_grad,) = torch.autograd.grad(0.5 * losses["loss/adv"], weight, retain_graph=True)
    lambdas = LambdasConfig(time=1.0, stft=1.0, adv=0.5)
    norms = LossBalancer(0.99).backward(losses, recon, lambdas.weight, plain=("adv",))
    return weight.grad.clone(), adv_grad, norms


def test_unbalanced_losses_add_their_raw_weighted_gradient() -> None:
    """A loss kept out of the balancer adds lambda x its raw gradient and leaves the balanced
    shares of the others as they were: scaling it by 1000 scales what it adds by 1000."""
    base, _, _ = _plain_param_grad(None)
    for scale in (1.0, 1000.0):
        got, adv_grad, norms = _plain_param_grad(scale)
        assert float(adv_grad.norm()) > 0
        assert torch.allclose(got - base, adv_grad, rtol=1e-3, atol=1e-9)
        assert {"grad_norm/adv", "stats/plain_to_balanced"} <= set(norms)
    assert (
        norms["stats/plain_to_balanced"] > 10 * _plain_param_grad(1.0)[2]["stats/plain_to_balanced"]
    )


def test_unbalanced_config_is_checked() -> None:
    from codec.training.config import ConfigError, TrainingConfig

    with pytest.raises(ConfigError, match="unbalanced: unknown loss 'advv'"):
        TrainingConfig(balancer=True, unbalanced=["advv"]).validate()
    with pytest.raises(ConfigError, match="unbalanced: needs balancer: true"):
        TrainingConfig(balancer=False, unbalanced=["adv"]).validate()
    TrainingConfig(balancer=True, unbalanced=["adv", "feat"]).validate()


def test_trainer_keeps_weights_every_n_steps_with_a_preemphasised_loss(tmp_path) -> None:
    """`keep_every: 1` leaves `step_1/` and `step_2/`, each a model folder that loads strictly
    with its own weights; `stft_preemphasis` trains; a bad value is refused by name."""
    from codec.models.registry import load_codec
    from codec.training.config import ConfigError, TrainConfig
    from codec.training.loop import train

    raw = _tiny_run(tmp_path, time=0.0, mel=1.0)
    raw["training"].update(keep_every=1, stft_preemphasis=0.9)
    train(TrainConfig.from_dict(raw), command="pytest")
    first = load_codec(tmp_path / "ckpt" / "step_1")
    second = load_codec(tmp_path / "ckpt" / "step_2")
    a, b = first.state_dict(), second.state_dict()
    assert a.keys() == b.keys()
    assert any(not torch.equal(a[k], b[k]) for k in a)  # a step apart: different weights
    raw["training"]["stft_preemphasis"] = 1.0
    with pytest.raises(ConfigError, match="stft_preemphasis"):
        TrainConfig.from_dict(raw)
