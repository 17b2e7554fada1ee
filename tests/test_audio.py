"""codec.audio: reading, mixdown, resampling, refusals with AudioError, atomic saving."""

from __future__ import annotations

import math
import os

import numpy as np
import pytest
import soundfile as sf
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from codec import audio
from codec.audio import AudioError, audio_duration, ensure_mono_24k, load_audio, save_audio
from tests.fixtures import tone, write_tone


def dominant_hz(wav: torch.Tensor, sr: int = 24000) -> float:
    x = wav[0].numpy() * np.hanning(wav.shape[-1])
    return float(np.fft.rfftfreq(len(x), 1 / sr)[np.argmax(np.abs(np.fft.rfft(x)))])


@pytest.mark.parametrize("ext", ["wav", "flac", "ogg", "mp3"])
def test_reads_formats_as_mono_24k(tmp_path, ext):
    path = write_tone(tmp_path / f"a.{ext}", freq=1000.0, seconds=1.0, sr=44100)
    wav = load_audio(path)
    assert wav.dtype == torch.float32 and wav.dim() == 2 and wav.shape[0] == 1
    # mp3 encoders add a little priming delay/padding; the others are exact
    assert abs(wav.shape[1] - 24000) <= (1200 if ext == "mp3" else 0)
    assert dominant_hz(wav) == pytest.approx(1000.0, abs=5.0)


def test_stereo_is_mixed_down_by_mean(tmp_path):
    x = np.stack([np.full(4800, 0.5), np.full(4800, 0.1)], axis=1).astype(np.float32)
    sf.write(tmp_path / "s.wav", x, 24000, subtype="FLOAT")
    wav = load_audio(tmp_path / "s.wav")
    assert wav.shape == (1, 4800)
    assert torch.allclose(wav, torch.full_like(wav, 0.3), atol=1e-6)


@pytest.mark.parametrize("sr", [8000, 22050, 44100, 48000])
def test_resampling_rate_and_length(tmp_path, sr):
    x = tone(600.0, 0.75, sr)
    n = len(x)
    sf.write(tmp_path / "r.wav", x, sr)
    wav = load_audio(tmp_path / "r.wav")
    assert wav.shape == (1, math.ceil(n * 24000 / sr))
    assert dominant_hz(wav) == pytest.approx(600.0, abs=3.0)


def test_cap_refused_from_header_before_decoding(tmp_path, monkeypatch):
    path = write_tone(tmp_path / "long.wav", seconds=3.0, sr=8000)

    def no_decode(*args, **kwargs):
        raise AssertionError("decoded a file that the header already rules out")

    monkeypatch.setattr(audio.sf, "read", no_decode)
    with pytest.raises(AudioError, match=r"long\.wav.*3\.0 s.*2 s cap"):
        load_audio(path, max_seconds=2.0)


def test_under_the_cap_loads(tmp_path):
    path = write_tone(tmp_path / "ok.wav", seconds=1.0, sr=8000)
    assert load_audio(path, max_seconds=1.5).shape == (1, 24000)


def test_nan_refused(tmp_path):
    x = tone(440.0, 0.2, 24000)
    x[100] = np.nan
    sf.write(tmp_path / "nan.wav", x, 24000, subtype="FLOAT")
    with pytest.raises(AudioError, match=r"nan\.wav.*NaN"):
        load_audio(tmp_path / "nan.wav")


def test_zero_samples_refused(tmp_path):
    sf.write(tmp_path / "empty.wav", np.zeros(0, np.float32), 24000)
    with pytest.raises(AudioError, match=r"empty\.wav.*0 samples"):
        load_audio(tmp_path / "empty.wav")


@pytest.mark.parametrize("name", ["noise.wav", "noise.flac", "noise.bin"])
def test_random_bytes_refused(tmp_path, name):
    (tmp_path / name).write_bytes(np.random.default_rng(0).bytes(4096))
    with pytest.raises(AudioError, match=name.replace(".", r"\.")):
        load_audio(tmp_path / name)


def test_missing_file_refused(tmp_path):
    with pytest.raises(AudioError, match=r"nope\.wav: file not found"):
        load_audio(tmp_path / "nope.wav")
    assert issubclass(AudioError, ValueError)


def test_truncated_file_uses_what_decodes(tmp_path):
    path = write_tone(tmp_path / "t.wav", seconds=1.0, sr=24000, subtype="PCM_16")
    data = path.read_bytes()
    path.write_bytes(data[: 44 + 2 * 12000])  # header still claims 24000 frames
    assert load_audio(path).shape == (1, 12000)
    path.write_bytes(data[:44])  # header only: nothing decodes
    with pytest.raises(AudioError, match="0 samples"):
        load_audio(path)


def test_silent_clip_is_valid(tmp_path):
    sf.write(tmp_path / "silent.wav", np.zeros(2400, np.float32), 24000)
    wav = load_audio(tmp_path / "silent.wav")
    assert wav.shape == (1, 2400) and not wav.any()


def test_offset_and_duration_read_one_segment(tmp_path):
    x = np.linspace(-1, 1, 48000, dtype=np.float32)
    sf.write(tmp_path / "ramp.wav", x, 24000, subtype="FLOAT")
    seg = load_audio(tmp_path / "ramp.wav", offset_seconds=0.5, duration_seconds=0.25)
    assert torch.allclose(seg[0], torch.from_numpy(x[12000:18000]))
    assert audio_duration(tmp_path / "ramp.wav") == pytest.approx(2.0)


def test_ensure_mono_gradio_int16_frames_by_channels():
    x = np.zeros((4410, 2), dtype=np.int16)
    x[:, 0], x[:, 1] = 16384, -32768  # 0.5 and -1.0
    wav = ensure_mono_24k(x, 44100)
    assert wav.shape == (1, 2400) and wav.dtype == torch.float32
    assert wav[0, 100:-100].mean().item() == pytest.approx(-0.25, abs=1e-3)


def test_ensure_mono_torch_channels_first_and_batch():
    x = torch.stack([torch.ones(2400), torch.zeros(2400), torch.zeros(2400)])
    assert torch.allclose(ensure_mono_24k(x, 24000), torch.full((1, 2400), 1 / 3))
    assert ensure_mono_24k(x[None], 24000).shape == (1, 2400)


@pytest.mark.parametrize(
    "bad, match",
    [
        (np.zeros(0, np.float32), "0 samples"),
        (np.full(10, np.inf, np.float32), "NaN or Inf"),
        (np.zeros((2, 2, 2, 2), np.float32), "shape"),
        (np.array(["a", "b"]), "sample type"),
    ],
)
def test_ensure_mono_refusals(bad, match):
    with pytest.raises(AudioError, match=match):
        ensure_mono_24k(bad, 24000, name="mic")


def test_ensure_mono_refuses_bad_rate():
    with pytest.raises(AudioError, match="sample rate"):
        ensure_mono_24k(np.zeros(10, np.float32), 0)


@settings(max_examples=20, deadline=None)
@given(n=st.integers(1, 3000), sr=st.sampled_from([8000, 16000, 22050, 24000, 44100, 48000]))
def test_ensure_mono_length_property(n, sr):
    wav = ensure_mono_24k(np.zeros(n, np.float32), sr)
    assert wav.shape == (1, math.ceil(n * 24000 / sr))


def test_save_is_atomic_16bit_and_round_trips(tmp_path, monkeypatch):
    path = tmp_path / "out" / "clip.wav"
    wav = torch.from_numpy(tone(440.0, 0.5, 24000))[None]
    assert save_audio(path, wav) == path
    info = sf.info(path)
    assert (info.samplerate, info.channels, info.subtype) == (24000, 1, "PCM_16")
    assert torch.allclose(load_audio(path), wav, atol=1 / 16000)
    assert os.listdir(path.parent) == ["clip.wav"]
    before = path.read_bytes()

    def broken_write(file, *args, **kwargs):
        with open(file, "wb") as f:
            f.write(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(audio.sf, "write", broken_write)
    with pytest.raises(OSError, match="disk full"):
        save_audio(path, wav * 0.5)
    assert path.read_bytes() == before  # the old file is intact
    assert os.listdir(path.parent) == ["clip.wav"]  # and no temp file is left


def test_save_refuses_nan_and_clips(tmp_path):
    with pytest.raises(AudioError, match="NaN"):
        save_audio(tmp_path / "x.wav", torch.tensor([[0.0, float("nan")]]))
    save_audio(tmp_path / "loud.wav", torch.tensor([[2.0, -2.0, 0.0]]))
    assert load_audio(tmp_path / "loud.wav").abs().max().item() == pytest.approx(1.0, abs=1e-3)
