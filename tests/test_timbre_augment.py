"""Timbre augmentation of training crops (codec.data.timbre_augment): seeded, length-keeping,
finite, peak-capped, off by default; each effect does what it says; its config keys fail with
the key's name; a loader with it on still resumes exactly."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from codec.data import Augment, CropDataset, MixedDataset, TimbreAugment, build_dataset
from codec.data.timbre_augment import Brightness, Detune, EqTilt, Room
from codec.schema import build_dataclass
from codec.training.config import ConfigError, DataloaderConfig, TrainConfig
from codec.training.data import build_loaders
from tests.test_corpus_training import make_corpus

SR = 24000
ALL_ON = TimbreAugment(EqTilt(p=1.0), Brightness(p=1.0), Detune(p=1.0), Room(p=1.0))


def _noise(n: int = SR, seed: int = 0, amp: float = 0.1) -> torch.Tensor:
    return amp * torch.randn(1, n, generator=torch.Generator().manual_seed(seed))


def _sine(hz: float, n: int, amp: float = 0.5) -> torch.Tensor:
    return amp * torch.sin(2 * math.pi * hz * torch.arange(n) / SR).unsqueeze(0)


def _peak_hz(x: torch.Tensor) -> float:
    spec = torch.fft.rfft(x[0] * torch.hann_window(x.shape[-1])).abs()
    return float(spec.argmax()) * SR / x.shape[-1]


def _band_db(x: torch.Tensor, lo: float, hi: float) -> float:
    power = torch.fft.rfft(x[0]).abs() ** 2
    f = torch.fft.rfftfreq(x.shape[-1], 1 / SR)
    return float(10 * torch.log10(power[(f >= lo) & (f < hi)].mean()))


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_corpus(tmp_path_factory.mktemp("corpus"), files_per_source=10)


def test_seeded_length_keeping_and_finite() -> None:
    x = _noise(SR + 3000)
    a, b = ALL_ON.apply(x, 11, SR, SR), ALL_ON.apply(x, 11, SR, SR)
    assert torch.equal(a, b) and a.shape == (1, SR) and a.dtype == torch.float32
    assert not torch.equal(a, ALL_ON.apply(x, 12, SR, SR))  # another seed, another draw
    for seed in range(12):
        n_in = ALL_ON.input_samples(SR, seed)
        for given in (x[..., :n_in], x[..., :100], torch.zeros(1, n_in)):  # short: zero-padded
            y = ALL_ON.apply(given, seed, SR, SR)
            assert y.shape == (1, SR) and torch.isfinite(y).all()
    assert ALL_ON.apply(x[..., :SR], 3, SR).shape == (1, SR)  # default length: the input's
    assert torch.equal(ALL_ON.apply(torch.zeros(2, 500), 4, SR), torch.zeros(2, 500))


def test_peak_is_capped_and_rms_kept() -> None:
    hot = TimbreAugment(EqTilt(p=1.0, db_per_octave=[12.0, 12.0]),
                        Brightness(p=1.0, gain_db=[24.0, 24.0]))  # fmt: skip
    loud = _sine(300.0, SR, amp=0.7) + _noise(amp=0.25)
    loud = loud / loud.abs().max()  # at full scale: any boost would clip
    for seed in range(5):
        y = hot.apply(loud, seed, SR)
        assert float(y.abs().max()) <= 1.0 + 1e-6
    quiet = _noise(amp=0.01)
    for seed in range(5):
        y = ALL_ON.apply(quiet, seed, SR)  # far from full scale: loudness is left unchanged
        assert y.pow(2).mean().sqrt() == pytest.approx(float(quiet.pow(2).mean().sqrt()), rel=1e-3)


def test_off_by_default_changes_nothing(corpus: Path) -> None:
    off = TimbreAugment()
    assert not off.active and not build_dataclass(DataloaderConfig, {}).augment.timbre().active
    x = _noise()
    assert torch.equal(off.apply(x, 1, SR), x)
    paths = sorted((corpus / "audio").glob("*.flac"))[:4]
    plain = CropDataset(paths, 0.5, seed=2, augment=Augment((-6.0, 0.0), 0.5))
    with_off = CropDataset(paths, 0.5, seed=2, augment=Augment((-6.0, 0.0), 0.5), timbre=off)
    for i in range(4):
        assert torch.equal(plain[i], with_off[i])
    # p > 0 but no effect drawn for a seed: that crop is untouched too
    rare = TimbreAugment(room=Room(p=1e-9))
    assert rare.active and torch.equal(rare.apply(x, 5, SR), x)


def test_each_effect_has_its_own_stream() -> None:
    base = TimbreAugment(EqTilt(p=0.5), Brightness(p=0.5), Detune(p=0.5), Room(p=0.5))
    more_room = TimbreAugment(EqTilt(p=0.5), Brightness(p=0.5), Detune(p=0.5), Room(p=1.0))
    for seed in range(20):
        a, b = base.draw(seed), more_room.draw(seed)
        assert (a.tilt_db_per_octave, a.shelf_db, a.cents) == (b.tilt_db_per_octave, b.shelf_db,
                                                               b.cents)  # fmt: skip
    hits = sum(base.draw(s).cents is not None for s in range(400))
    assert 150 < hits < 250  # p = 0.5


def test_detune_moves_the_pitch_and_keeps_the_length() -> None:
    x = _sine(440.0, 2 * SR)
    for cents in (-100.0, 100.0):
        aug = TimbreAugment(detune=Detune(p=1.0, cents=[cents, cents]))
        n_in = aug.input_samples(SR, 0)
        assert (n_in > SR) == (cents > 0)  # a raised pitch reads more input
        y = aug.apply(x[..., :n_in], 0, SR, SR)
        assert y.shape == (1, SR)
        assert abs(_peak_hz(y) - 440.0 * 2 ** (cents / 1200)) <= 1.5
        assert float(y[..., -SR // 10 :].abs().max()) > 0.4  # no silent tail
        assert float(y.abs().max()) < 0.505  # no ringing at the ends of the input
    still = TimbreAugment(detune=Detune(p=1.0, cents=[0.0, 0.0])).apply(x, 0, SR, SR)
    torch.testing.assert_close(still, x[..., :SR], atol=2e-3, rtol=0)  # a 1-sample shift: 0.06


def test_tilt_brightness_and_room_shape_the_sound() -> None:
    x = _noise(seed=3)

    def tilt_of(aug: TimbreAugment) -> float:
        y = aug.apply(x, 0, SR)
        return (_band_db(y, 8000, 11000) - _band_db(x, 8000, 11000)) - (
            _band_db(y, 200, 300) - _band_db(x, 200, 300)
        )

    up = tilt_of(TimbreAugment(eq_tilt=EqTilt(p=1.0, db_per_octave=[3.0, 3.0])))
    assert up == pytest.approx(3.0 * math.log2(9500 / 250), abs=1.5)  # ~ 3 dB per octave
    assert tilt_of(TimbreAugment(eq_tilt=EqTilt(p=1.0, db_per_octave=[-3.0, -3.0]))) < -10
    bright = tilt_of(TimbreAugment(brightness=Brightness(p=1.0, gain_db=[12.0, 12.0])))
    assert 8.0 < bright < 13.0
    click = torch.zeros(1, SR)
    click[0, 100] = 0.5
    wet = TimbreAugment(room=Room(p=1.0, rt60_s=[0.3, 0.3], wet=[1.0, 1.0])).apply(click, 1, SR)
    energy = wet[0].pow(2)
    decay_db = 10 * torch.log10(energy[2400:4800].sum() / energy[4800:7200].sum())
    assert float(decay_db) == pytest.approx(60 * 0.1 / 0.3, abs=2.0)  # 60 dB per rt60
    assert float(energy[:100].sum()) < 1e-9 * float(energy.sum())  # causal: nothing before it


def test_crop_dataset_applies_it_seeded_per_epoch(corpus: Path) -> None:
    paths = sorted((corpus / "audio").glob("*.flac"))[:4]
    plain = CropDataset(paths, 0.5, seed=1)
    aug = CropDataset(paths, 0.5, seed=1, timbre=ALL_ON)
    again = CropDataset(paths, 0.5, seed=1, timbre=ALL_ON)
    assert aug[0].shape == plain[0].shape == (1, SR // 2)
    assert torch.equal(aug[1], again[1]) and not torch.equal(aug[1], plain[1])
    assert not torch.equal(aug.get(1, draw=1), aug[1])
    before = aug[1]
    aug.set_epoch(1)
    assert not torch.equal(aug[1], before)
    ds = build_dataset("corpus", corpus, "val", 0.5, timbre=ALL_ON)
    assert ds.timbre is None  # evaluation crops are never augmented


def test_config_keys_and_errors(corpus: Path) -> None:
    raw = {"augment": {"eq_tilt": {"p": 0.5, "db_per_octave": [-2, 2]}, "detune": {"p": 1},
                       "room": {"p": 0.3, "rt60_s": [0.2, 0.4], "wet": [0.1, 0.2]}}}  # fmt: skip
    aug = build_dataclass(DataloaderConfig, raw, "dataloader").augment
    timbre = aug.timbre()
    assert timbre.active and timbre.eq_tilt.db_per_octave == [-2.0, 2.0]
    assert timbre.detune.p == 1.0 and timbre.brightness.p == 0.0
    bad = [
        ({"room": {"rt60": [0.1, 0.2]}}, r"^dataloader\.augment\.room\.rt60: unknown key "
                                         r"\(did you mean 'rt60_s'\?\)"),
        ({"brightnes": {"p": 1}}, r"^dataloader\.augment\.brightnes: unknown key \(did you mean"),
        ({"room": {"rt60_s": [0.0, 0.5]}}, r"^dataloader\.augment\.room\.rt60_s: expected \[low"),
        ({"room": {"wet": [0.5, 0.2]}}, r"^dataloader\.augment\.room\.wet: "),
        ({"detune": {"p": 1.5}}, r"^dataloader\.augment\.detune\.p: must be a probability"),
        ({"detune": {"cents": [-50]}}, r"^dataloader\.augment\.detune\.cents: "),
        ({"eq_tilt": {"db_per_octave": [3, -3]}}, r"^dataloader\.augment\.eq_tilt\.db_per_oct"),
        ({"brightness": {"freq_hz": 0}}, r"^dataloader\.augment\.brightness\.freq_hz: "),
        ({"brightness": {"gain_db": "loud"}}, r"^dataloader\.augment\.brightness\.gain_db: "),
    ]  # fmt: skip
    for extra, pattern in bad:
        with pytest.raises(ConfigError, match=pattern):
            build_dataclass(DataloaderConfig, {"augment": extra}, "dataloader")
    with pytest.raises(ValueError, match="rt60_s"):
        Room(p=0.5, rt60_s=[0.5, 9.0])  # the settings classes check themselves too


def test_loaders_with_timbre_resume_exactly(corpus: Path, tmp_path: Path) -> None:
    """A second corpus folder mixed in (as data/corpus_opl3 would be) with every effect on: the
    batches after a resume are the uninterrupted epoch's, the held-out set has both val splits."""
    other = make_corpus(tmp_path / "other", files_per_source=10)
    raw = {
        "model": {"type": "encodec", "base_args": {}, "mae_args": {}},
        "dataloader": {
            "dataset": "corpus", "dataset_path": str(corpus), "weight": 0.7,
            "mix": [{"dataset": "corpus", "dataset_path": str(other), "weight": 0.3}],
            "epoch_size": 24, "batch_size": 4, "nsecs": 0.25, "test_subset_size": None,
            "augment": {"gain_db": [-6, 0], "polarity": 0.5, "eq_tilt": {"p": 0.5},
                        "brightness": {"p": 0.5}, "detune": {"p": 0.5}, "room": {"p": 0.5}},
        },
        "training": {"stage": 1, "seed": 5},
    }  # fmt: skip
    cfg = TrainConfig.from_dict(raw)
    loaders = build_loaders(cfg, rank=0, world_size=1)
    assert isinstance(loaders.train, MixedDataset)
    full = [b.clone() for b in loaders.epoch_loader(1)]
    resumed = list(build_loaders(cfg, 0, 1).epoch_loader(1, skip_batches=2))
    assert len(resumed) == len(full) - 2
    for x, y in zip(full[2:], resumed):
        assert torch.equal(x, y)
    assert all(torch.isfinite(b).all() and b.abs().max() <= 1.0 for b in full)
    held = {str(p) for p in loaders.held_out.paths}
    assert any(str(other) in p for p in held) and any(str(corpus) + "/" in p for p in held)
