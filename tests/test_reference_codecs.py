"""The reference codecs (Opus, Codec2) as registry backends: they reconstruct at the input's
length, report the bitrate they spend, refuse what needs latents with a clear error, and the
analysis CLI scores them next to the learned codecs while leaving them out of what needs
latents."""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from analysis.cli import main
from analysis.dataset import load_items
from analysis.evaluate import evaluate_codecs, settings_for
from codec.audio import load_audio
from codec.checkpoint import CheckpointError
from codec.models.base import NoLatentsError
from codec.models.codec2 import Codec2Codec
from codec.models.opus import OpusCodec
from codec.models.registry import (
    BACKENDS,
    codec_class,
    default_lineup,
    get_backend,
    reference_lineup,
)
from tests.tiny_models import timbre_dataset, tiny_alm, tiny_encodec

torch.set_num_threads(1)
SR = 24000
CODECS = (OpusCodec, Codec2Codec)


def harmonic_tone(seconds: float = 2.0, seed: int = 0, f0: float = 196.0) -> torch.Tensor:
    """A real-ish note `[1, 1, N]`: 8 harmonics with 5 Hz vibrato, a swell, and noise."""
    g = torch.Generator().manual_seed(seed)
    t = torch.arange(int(seconds * SR), dtype=torch.float64) / SR
    freq = f0 * (1 + 0.01 * torch.sin(2 * math.pi * 5 * t))
    phase = 2 * math.pi * torch.cumsum(freq, 0) / SR
    tone = sum(torch.sin(k * phase) * 0.8**k for k in range(1, 9))
    envelope = torch.clamp(t / 0.05, max=1.0) * (0.6 + 0.4 * torch.sin(2 * math.pi * 0.7 * t))
    noise = 0.01 * torch.randn(t.shape[0], generator=g, dtype=torch.float64)
    return (0.3 * tone * envelope + noise).float()[None, None]


def si_sdr(estimate: torch.Tensor, reference: torch.Tensor) -> float:
    est, ref = estimate.flatten().double(), reference.flatten().double()
    target = (est @ ref) / (ref @ ref) * ref
    return float(10 * torch.log10((target @ target) / ((est - target) @ (est - target))))


def at(codec, kbps, wav):
    with codec.use_setting(kbps):
        return codec.reconstruct_measured(wav)


# --- the registry ------------------------------------------------------------------------------
def test_registry_lists_them_without_weights() -> None:
    for name, cls in (("opus", OpusCodec), ("codec2", Codec2Codec)):
        backend = get_backend(name)
        assert name in BACKENDS and backend.family == name and backend.codec() is cls
        assert not backend.needs_weights and backend.label == cls.label
        model = backend.open()  # built: no checkpoint, no path
        assert isinstance(model, cls) and not model.has_latents and not model.training
        assert "no weights" in model.weights_source
        with pytest.raises(CheckpointError, match="needs no weights"):
            backend.open(Path("somewhere"))
        with pytest.raises(ValueError, match="reference codec"):
            codec_class(name)  # no checkpoints to read, nothing to train
    assert [b.name for b in reference_lineup()] == ["opus", "codec2"]
    assert not {"opus", "codec2"} & {b.name for b in default_lineup()}
    assert "8 kHz" in Codec2Codec.label


def test_settings_are_their_bitrates() -> None:
    opus, c2 = OpusCodec(), Codec2Codec()
    assert opus.setting().choices == (6.0, 12.0) and opus.setting().kind == "bandwidth"
    assert [s.label for s in settings_for(opus)] == ["6 kbps", "12 kbps"]
    assert [s.label for s in settings_for(c2)] == ["700C", "1200", "3200"]
    assert c2.setting().check("700C") == 0.7 and c2.setting().check("3.2 kbps") == 3.2
    with pytest.raises(ValueError, match="700C"):
        c2.setting().check(2.4)
    with c2.use_setting("3200"):
        assert c2.bitrate() == 3200 and c2.frame_rate() == 50
    assert c2.kbps == 1.2 and c2.bitrate() == 1200 and c2.frame_rate() == 25
    assert opus.frame_rate() == 50  # 20 ms packets


def test_latents_are_refused_with_the_reason() -> None:
    wav = harmonic_tone(0.1)
    for cls in CODECS:
        codec = cls()
        for call in (
            lambda c=codec: c.encode(wav),
            lambda c=codec: c.decode(torch.zeros(1, 4, 3)),
            lambda c=codec: c.codes_to_latents(torch.zeros(1, 1, 3, dtype=torch.long)),
            lambda c=codec: c.quantize(torch.zeros(1, 4, 3)),
        ):
            with pytest.raises(NoLatentsError, match="reference codec.*no latents"):
                call()
        assert issubclass(NoLatentsError, NotImplementedError)  # the CLIs' error path
        with pytest.raises(CheckpointError, match="no weights"):
            codec.save_pretrained("unused")
        with pytest.raises(ValueError, match=r"\[B, 1, N\]"):
            codec.reconstruct(wav[0])


# --- round trips -------------------------------------------------------------------------------
@pytest.mark.parametrize("cls", CODECS)
def test_round_trip_keeps_shape_and_length(cls) -> None:
    codec = cls()
    wav = torch.cat([harmonic_tone(0.5143, seed=1), harmonic_tone(0.5143, seed=2)])  # [2, 1, N]
    for kbps in codec.choices:
        out = at(codec, kbps, wav)
        assert out.wav.shape == wav.shape and out.wav.dtype == torch.float32
        assert torch.isfinite(out.wav).all() and out.wav.abs().max() > 0.01
        assert out.measured and out.nominal == kbps * 1000
    for n in (0, 1, 100, 479, 481):  # empty, shorter than a frame, around one frame
        assert codec.reconstruct(torch.zeros(2, 1, n)).shape == (2, 1, n)


def test_opus_reports_the_measured_bitrate_and_is_aligned() -> None:
    codec, wav = OpusCodec(), harmonic_tone(3.0)
    for kbps in (6.0, 12.0):
        out = at(codec, kbps, wav)
        assert out.seconds == pytest.approx(3.0)
        assert out.bits is not None and out.bits % 8 == 0  # whole bytes of packets
        assert 0.5 * kbps * 1000 < out.bitrate < 1.5 * kbps * 1000  # a VBR target, measured
        assert out.bitrate != out.nominal
    # the encoder's lookahead is removed: the best lag between output and input is 0
    rec = at(codec, 12.0, wav).wav.flatten()
    ref = wav.flatten()
    lags = range(-200, 201)
    scores = [float(rec[1000 + k : -1000 + k] @ ref[1000:-1000]) for k in lags]
    assert abs(list(lags)[int(np.argmax(scores))]) <= 2


def test_opus_at_12_kbps_beats_6_kbps() -> None:
    codec = OpusCodec()
    for seed, f0 in ((0, 196.0), (3, 330.0)):
        wav = harmonic_tone(2.0, seed, f0)
        low, high = (si_sdr(at(codec, k, wav).wav, wav) for k in (6.0, 12.0))
        assert high > low + 2.0, (seed, low, high)  # measured: about 9 dB apart
        assert high > 3.0


def test_codec2_is_an_8_khz_codec_at_24_khz() -> None:
    codec, wav = Codec2Codec(), harmonic_tone(2.0, f0=150.0)
    wav = wav + 0.05 * torch.randn(wav.shape, generator=torch.Generator().manual_seed(1))
    for kbps in codec.choices:
        rec = at(codec, kbps, wav).wav
        assert rec.shape == wav.shape
        spec = torch.fft.rfft(rec.flatten().double()).abs() ** 2
        freqs = torch.fft.rfftfreq(rec.shape[-1], 1 / SR)
        # nothing above 4 kHz: measured about -65 dB (torchaudio's default filter: -40 dB)
        assert spec[freqs > 4000].sum() < 1e-5 * spec.sum()
        assert spec.sum() > 0.05 * (torch.fft.rfft(wav.flatten().double()).abs() ** 2).sum()
        bits = at(codec, kbps, wav).bitrate
        assert bits == pytest.approx(kbps * 1000, rel=0.1)  # fixed bits per frame


def test_inputs_are_handled_as_elsewhere(tmp_path: Path) -> None:
    """Stereo at an odd rate goes through `codec.audio.load_audio` (mono, 24 kHz) as it does
    for every codec; silence stays quiet; a 1-sample clip comes back as 1 sample."""
    rng = np.random.default_rng(0)
    t = np.arange(int(0.7 * 11025)) / 11025
    stereo = np.stack([np.sin(2 * np.pi * 220 * t), 0.1 * rng.standard_normal(t.size)], 1)
    path = tmp_path / "odd.wav"
    sf.write(path, (0.3 * stereo).astype(np.float32), 11025)
    wav = load_audio(path)[None]  # [1, 1, N] at 24 kHz
    for cls in CODECS:
        codec = cls()
        assert codec.reconstruct(wav).shape == wav.shape
        silent = codec.reconstruct(torch.zeros(1, 1, 4800))
        assert silent.abs().max() < 1e-2
        assert codec.reconstruct(torch.full((1, 1, 1), 0.5)).shape == (1, 1, 1)


# --- the analysis CLI --------------------------------------------------------------------------
@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("refs")
    return {
        "root": timbre_dataset(base / "gs", ("flute", "cello"), (48, 57, 69)),
        "alm": tiny_alm().save_pretrained(base / "alm"),
        "enc": tiny_encodec().save_pretrained(base / "enc"),
        "base": base,
    }


def _args(setup: dict[str, Path], out: Path) -> list[str]:
    return [
        "--alm-checkpoint", str(setup["alm"]), "--encodec-checkpoint", str(setup["enc"]),
        "--dataset-root", str(setup["root"]), "--out", str(out), "--window", "4",
        "--cache-dir", str(setup["base"] / "cache"),
    ]  # fmt: skip


def test_evaluate_selects_them_with_one_row_per_setting(setup, tmp_path, caplog) -> None:
    out = tmp_path / "ev"
    assert main(["evaluate", *_args(setup, out), "--codecs", "almtokenizer,encodec,opus,codec2",
                 "--windows", "4", "--bandwidths", "1.5", "--max-clips", "2", "--no-judge",
                 "--no-probe", "--visqol-clips", "0", "--no-f0"]) == 0  # fmt: skip
    rows = json.loads((out / "results.json").read_text())["rows"]
    rows = [r for r in rows if r["codec"] != "clean"]  # the originals' own row, the ceiling
    assert [(r["codec"], r["setting"]) for r in rows] == [
        ("almtokenizer", "w=4"), ("encodec", "1.5 kbps"), ("opus", "6 kbps"),
        ("opus", "12 kbps"), ("codec2", "700C"), ("codec2", "1200"), ("codec2", "3200"),
    ]  # fmt: skip
    by = {(r["codec"], r["setting"]): r for r in rows}
    assert by[("encodec", "1.5 kbps")]["bitrate"] == pytest.approx(1500)
    for (codec, _), r in by.items():
        if codec in ("opus", "codec2"):
            nominal = r["bandwidth_kbps"] * 1000
            assert 0.4 * nominal < r["bitrate"] < 1.6 * nominal and r["n_clips"] == 2
            assert math.isfinite(r["mel_distance"])
    assert by[("opus", "12 kbps")]["bitrate"] != 12000  # measured from the packets

    # the probe (latents) leaves them out with a one-line reason, never crashes
    items = load_items(setup["root"])
    with caplog.at_level(logging.WARNING):
        rep = evaluate_codecs([OpusCodec()], items, None, split_seed=0, max_clips=1,
                              progress=False, labels=["opus"], visqol_clips=0,
                              use_f0=False)  # fmt: skip
    rows = [r for r in rep.rows if r.codec == "opus"]
    assert rep.probes == {} and [r.setting for r in rows] == ["6 kbps", "12 kbps"]
    assert "opus: no semantic probe: a reference codec has no latents" in caplog.text


def test_latent_commands_leave_them_out(setup, tmp_path, caplog, capsys) -> None:
    with caplog.at_level(logging.WARNING):
        assert main(["probe", *_args(setup, tmp_path / "pr"), "--codecs", "encodec,opus",
                     "--attributes", "instrument"]) == 0  # fmt: skip
    assert set(json.loads((tmp_path / "pr" / "probe.json").read_text())) == {"encodec"}
    assert "Opus (libopus) left out of the probe: reference codecs" in caplog.text
    assert main(["probe", *_args(setup, tmp_path / "p2"), "--codecs", "codec2"]) == 1
    assert "no codec with latents selected" in capsys.readouterr().err
    clip = next(setup["root"].rglob("*.wav"))
    assert main(["transfer", *_args(setup, tmp_path / "tr"), "--clip", str(clip), "--target",
                 "cello", "--codecs", "opus", "--no-judge"]) == 1  # fmt: skip
    assert "no codec with latents" in capsys.readouterr().err


def test_reconstruct_command_writes_their_audio(setup, tmp_path) -> None:
    clip = next(setup["root"].rglob("*.wav"))
    out = tmp_path / "rec"
    assert main(["reconstruct", *_args(setup, out), str(clip), "--codecs", "opus,codec2"]) == 0
    wavs = {p.name: sf.info(str(p)).frames for p in out.rglob("*.wav")}
    codec2 = {f"codec2_{k}kbps.wav" for k in ("0.7", "1.2", "3.2")}
    assert set(wavs) == {"original.wav", "opus_6kbps.wav", "opus_12kbps.wav", *codec2}
    assert len(set(wavs.values())) == 1  # every reconstruction has the original's length
    (metrics,) = list(out.rglob("metrics.csv"))
    assert len(metrics.read_text().splitlines()) == 6
