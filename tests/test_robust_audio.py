"""Robustness of audio input: whatever bytes or arrays arrive, `load_audio` / `ensure_mono_24k`
return a valid mono `[1, N]` float32 clip or raise an `AudioError` that names the file; nothing
else escapes (no raw soundfile/libsndfile exception), nothing hangs or allocates what a header
merely claims. Then the codec path: a 1-sample and a silent clip through both codecs.

Inputs: random bytes, mutated and truncated WAV/FLAC/OGG files, hand-crafted lying WAV headers
(any channels / rate / bit depth / format code / data size over a tiny payload), a sparse file
whose honest header says 2 hours, NaN/Inf float WAVs, 0 and 1 samples, 8 channels, and the rates
8000, 11025, 44100, 192000 and 7999 Hz (the last one used to cost 3 GB and 12 s to resample).
"""

from __future__ import annotations

import io
import math
import struct
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import codec.audio as audio_mod
from codec.audio import AudioError, ensure_mono_24k, load_audio
from tests.fixtures import tone
from tests.tiny_models import kmeans_warm, untrained_tiny_alm, untrained_tiny_encodec

SR = 24000
FUZZ = settings(
    max_examples=120,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
TRIED: dict[str, int] = {}  # inputs tried per surface (printed with -s, used in the report)


def count(surface: str) -> None:
    TRIED[surface] = TRIED.get(surface, 0) + 1


def wav_header(
    channels: int, sr: int, bits: int, fmt: int, data_bytes: int, riff: int | None = None
) -> bytes:
    """A canonical 44-byte RIFF/WAVE header with whatever (possibly lying) fields are given."""
    block = (channels * bits // 8) & 0xFFFF
    fmt_chunk = struct.pack(
        "<HHIIHH", fmt, channels, sr & 0xFFFFFFFF, (sr * block) & 0xFFFFFFFF, block, bits
    )
    if riff is None:
        riff = 4 + 8 + len(fmt_chunk) + 8 + data_bytes
    return (
        b"RIFF" + struct.pack("<I", min(riff, 0xFFFFFFFF)) + b"WAVE"
        + b"fmt " + struct.pack("<I", len(fmt_chunk)) + fmt_chunk
        + b"data" + struct.pack("<I", min(data_bytes, 0xFFFFFFFF))
    )  # fmt: skip


def encoded(data: np.ndarray, sr: int, fmt: str, subtype: str | None = None) -> bytes:
    buf = io.BytesIO()
    sf.write(buf, data, sr, format=fmt, subtype=subtype)
    return buf.getvalue()


def check_load(path: Path, **kw) -> torch.Tensor | None:
    """Load `path`; assert the outcome is a valid clip or an AudioError naming the file.

    Any other exception propagates and fails the test. Returns the clip or None.
    """
    t0 = time.perf_counter()
    try:
        wav = load_audio(path, **kw)
    except AudioError as e:
        assert str(path) in str(e), f"AudioError does not name the file: {e}"
        assert time.perf_counter() - t0 < 30.0
        return None
    assert time.perf_counter() - t0 < 30.0
    check_clip(wav)
    return wav


def check_clip(wav: torch.Tensor) -> None:
    assert isinstance(wav, torch.Tensor) and wav.dtype == torch.float32
    assert wav.dim() == 2 and wav.shape[0] == 1 and wav.shape[1] >= 1, tuple(wav.shape)
    assert torch.isfinite(wav).all(), "non-finite samples escaped"
    assert wav.is_contiguous()


# ------------------------------------------------------------------------------------------------
# bytes on disk
# ------------------------------------------------------------------------------------------------
@FUZZ
@given(data=st.binary(max_size=4096), suffix=st.sampled_from([".wav", ".flac", ".ogg", ".mp3"]))
def test_random_bytes(tmp_path: Path, data: bytes, suffix: str) -> None:
    count("random bytes")
    p = tmp_path / f"random{suffix}"
    p.write_bytes(data)
    check_load(p)
    try:
        audio_mod.audio_duration(p)
    except AudioError as e:
        assert str(p) in str(e)


VALID = {
    "wav16": encoded(tone(440, 0.05, 16000, channels=2), 16000, "WAV", "PCM_16"),
    "wavf": encoded(tone(440, 0.05, 16000), 16000, "WAV", "FLOAT"),
    "flac": encoded(tone(440, 0.1, 22050), 22050, "FLAC"),
    "ogg": encoded(tone(440, 0.1, 22050), 22050, "OGG"),
}


@FUZZ
@given(
    kind=st.sampled_from(sorted(VALID)),
    edits=st.lists(st.tuples(st.integers(0, 80), st.integers(0, 255)), min_size=1, max_size=6),
)
def test_mutated_headers(tmp_path: Path, kind: str, edits: list[tuple[int, int]]) -> None:
    """Valid files with a few bytes of their header (first 80 bytes) overwritten."""
    count("mutated headers")
    data = bytearray(VALID[kind])
    for pos, byte in edits:
        data[pos] = byte
    p = tmp_path / f"mutated.{kind[:4]}"
    p.write_bytes(bytes(data))
    check_load(p)


@FUZZ
@given(kind=st.sampled_from(sorted(VALID)), frac=st.floats(0.0, 1.0))
def test_truncated_files(tmp_path: Path, kind: str, frac: float) -> None:
    """A file cut anywhere: what decodes is used, or a clear error."""
    count("truncated files")
    data = VALID[kind]
    p = tmp_path / f"cut.{kind[:4]}"
    p.write_bytes(data[: int(len(data) * frac)])
    wav = check_load(p)
    if wav is not None and kind == "wav16":
        assert wav.shape[-1] <= math.ceil(0.05 * SR) + 1


@FUZZ
@given(
    channels=st.one_of(st.integers(0, 65535), st.integers(1, 9)),
    sr=st.one_of(st.integers(0, 2**32 - 1), st.sampled_from([1, 7999, 8000, 44100, 192000])),
    bits=st.sampled_from([0, 1, 8, 12, 16, 24, 32, 64, 65535]),
    fmt=st.sampled_from([0, 1, 2, 3, 6, 7, 0xFFFE, 0x55, 0xFFFF]),
    data_bytes=st.one_of(st.integers(0, 2**32 - 1), st.integers(0, 4096)),
    payload=st.integers(0, 4096),
)
def test_lying_wav_headers(
    tmp_path: Path, channels: int, sr: int, bits: int, fmt: int, data_bytes: int, payload: int
) -> None:
    """Hand-made headers with arbitrary fields over at most 4 KiB of samples: quick, and never
    more samples than the payload can hold (a header's claim is not allocated)."""
    count("lying wav headers")
    p = tmp_path / "lying.wav"
    rng = np.random.default_rng(payload)
    body = (rng.standard_normal(payload // 2) * 1000).astype(np.int16).tobytes()
    p.write_bytes(wav_header(channels, sr, bits, fmt, data_bytes) + body)
    t0 = time.perf_counter()
    wav = check_load(p, max_seconds=30.0)
    assert time.perf_counter() - t0 < 30.0
    if wav is not None:
        # payload samples -> at most payload frames at >= 1 Hz -> bounded output
        assert wav.shape[-1] <= max(1, payload) * SR + SR


def test_header_claims_far_more_frames_than_present(tmp_path: Path) -> None:
    """Claims 10 s, holds 0.1 s: the 0.1 s that is there is used."""
    p = tmp_path / "short.wav"
    present = (tone(440, 0.1, 16000) * 32767).astype(np.int16)
    p.write_bytes(wav_header(1, 16000, 16, 1, 10 * 16000 * 2) + present.tobytes())
    wav = check_load(p)
    assert wav is not None and abs(wav.shape[-1] - int(0.1 * SR)) <= 2


def test_two_hour_header_refused_from_header_without_decoding(tmp_path: Path, monkeypatch) -> None:
    """An honest header saying 2 h over a sparse file (4 KiB on disk): refused in < 1 s, and the
    decoder is never called. A tiny file whose header lies about 2 h is read for what it holds
    (libsndfile clamps the claim to the file size), also in < 1 s."""
    sparse = tmp_path / "two_hours.wav"
    n_bytes = 2 * 3600 * SR * 2
    with open(sparse, "wb") as f:
        f.write(wav_header(1, SR, 16, 1, n_bytes))
        f.truncate(44 + n_bytes)
    assert sparse.stat().st_blocks * 512 < 1 << 20  # tiny on disk

    def no_decode(*a, **k):
        raise AssertionError("sf.read was called for a file refused by its header")

    monkeypatch.setattr(audio_mod.sf, "read", no_decode)
    t0 = time.perf_counter()
    with pytest.raises(AudioError, match="longer than the 600 s cap") as e:
        load_audio(sparse)
    assert time.perf_counter() - t0 < 30.0
    assert str(sparse) in str(e.value) and "7200.0 s" in str(e.value)
    monkeypatch.undo()

    lying = tmp_path / "lying_two_hours.wav"
    lying.write_bytes(wav_header(1, SR, 16, 1, n_bytes) + np.zeros(100, np.int16).tobytes())
    assert lying.stat().st_size < 300
    t0 = time.perf_counter()
    wav = check_load(lying)
    assert time.perf_counter() - t0 < 30.0
    assert wav is None or wav.shape[-1] <= 100


def test_flac_header_claiming_two_hours(tmp_path: Path, monkeypatch) -> None:
    """FLAC STREAMINFO patched to 2 h total samples over a 0.1 s stream: refused from the header
    (FLAC headers are trusted by libsndfile), without decoding."""
    data = bytearray(encoded(tone(440, 0.1, SR), SR, "FLAC"))
    assert data[:4] == b"fLaC"
    si = 8  # "fLaC" + metadata block header; STREAMINFO: 10 bytes, then 20|3|5|36 bits
    bits = int.from_bytes(data[si + 10 : si + 18], "big")
    total = 2 * 3600 * SR
    bits = (bits & ~((1 << 36) - 1)) | total
    data[si + 10 : si + 18] = bits.to_bytes(8, "big")
    p = tmp_path / "two_hours.flac"
    p.write_bytes(bytes(data))
    monkeypatch.setattr(audio_mod.sf, "read", lambda *a, **k: pytest.fail("decoded"))
    t0 = time.perf_counter()
    with pytest.raises(AudioError, match=r"7200\.0 s is longer") as e:
        load_audio(p)
    assert time.perf_counter() - t0 < 30.0 and str(p) in str(e.value)


def test_over_the_cap_refused_whatever_the_data_size_field_says(tmp_path: Path) -> None:
    """3 s of samples with a 2 s cap: refused, with an honest data size and with the
    'unknown length' 0xFFFFFFFF size that streaming writers leave."""
    sr = 8000
    body = np.zeros(3 * sr, np.int16).tobytes()
    for size in (len(body), 0xFFFFFFFF):
        p = tmp_path / f"over_{size}.wav"
        p.write_bytes(wav_header(1, sr, 16, 1, size) + body)
        with pytest.raises(AudioError, match="cap") as e:
            load_audio(p, max_seconds=2.0)
        assert str(p) in str(e.value)
        assert check_load(p, max_seconds=3.5) is not None


# ------------------------------------------------------------------------------------------------
# special contents
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("subtype", ["FLOAT", "DOUBLE"])
def test_nan_inf_float_wav(tmp_path: Path, bad: float, subtype: str) -> None:
    count("nan/inf wav")
    x = tone(300, 0.05, 16000).astype(np.float64)
    x[17] = bad
    p = tmp_path / f"bad_{subtype}.wav"
    sf.write(p, x, 16000, subtype=subtype)
    with pytest.raises(AudioError, match="NaN or Inf") as e:
        load_audio(p)
    assert str(p) in str(e.value)


def test_huge_finite_float_samples_do_not_become_inf(tmp_path: Path) -> None:
    """float32 samples near the float32 maximum overflow the channel mix (and the resampler):
    refused with an AudioError instead of reaching the model as Inf/NaN."""
    big = np.finfo(np.float32).max
    x = np.full((800, 2), big, dtype=np.float32)
    x[::2] *= -1
    p = tmp_path / "huge.wav"
    sf.write(p, x, 16000, subtype="FLOAT")
    with pytest.raises(AudioError, match="too large") as e:
        load_audio(p)
    assert str(p) in str(e.value)
    mic = np.full((100, 2), big, np.float32)  # the same as an in-memory recording at 24 kHz
    with pytest.raises(AudioError, match="too large"):
        ensure_mono_24k(mic, SR, name="mic")


def test_zero_samples(tmp_path: Path) -> None:
    p = tmp_path / "empty.wav"
    sf.write(p, np.zeros((0, 1), np.float32), 16000)
    with pytest.raises(AudioError, match="0 samples") as e:
        load_audio(p)
    assert str(p) in str(e.value)
    p2 = tmp_path / "header_only.wav"
    p2.write_bytes(wav_header(1, 16000, 16, 1, 0))
    with pytest.raises(AudioError) as e:
        load_audio(p2)
    assert str(p2) in str(e.value)


@pytest.mark.parametrize("sr", [8000, 24000, 48000, 7999])
def test_one_sample(tmp_path: Path, sr: int) -> None:
    p = tmp_path / "one.wav"
    sf.write(p, np.array([0.5], np.float32), sr, subtype="FLOAT")
    wav = check_load(p)
    assert wav is not None and 1 <= wav.shape[-1] <= math.ceil(SR / sr) + 1


def test_eight_channels_are_mixed_by_mean(tmp_path: Path) -> None:
    x = np.stack([tone(200 + 50 * c, 0.1, SR) * (c + 1) / 8 for c in range(8)], axis=1)
    p = tmp_path / "octo.wav"
    sf.write(p, x, SR, subtype="FLOAT")
    wav = check_load(p)
    assert wav is not None and wav.shape == (1, x.shape[0])
    assert np.allclose(wav[0].numpy(), x.mean(axis=1), atol=1e-6)


@pytest.mark.parametrize("sr", [8000, 11025, 44100, 192000, 7999, 48001])
def test_rates_resample_quickly_to_the_right_length(tmp_path: Path, sr: int) -> None:
    """Common and odd rates. 7999 and 48001 Hz are coprime with 24000: an exact sinc kernel
    would hold 24000 x 8000 (or 48001) taps, i.e. gigabytes."""
    seconds = 0.5
    p = tmp_path / f"r{sr}.wav"
    sf.write(p, tone(440, seconds, sr), sr, subtype="PCM_16")
    t0 = time.perf_counter()
    wav = check_load(p)
    assert time.perf_counter() - t0 < 30.0, f"{sr} Hz took {time.perf_counter() - t0:.1f} s"
    n_in = int(round(seconds * sr))
    assert wav is not None and abs(wav.shape[-1] - n_in * SR / sr) <= 2
    # the tone survives resampling: its energy sits at 440 Hz
    spec = np.abs(np.fft.rfft(wav[0].numpy()))
    freqs = np.fft.rfftfreq(wav.shape[-1], 1 / SR)
    assert abs(freqs[spec.argmax()] - 440) < 5


# ------------------------------------------------------------------------------------------------
# in-memory arrays (microphone / gradio numpy values)
# ------------------------------------------------------------------------------------------------
DTYPES = [np.float32, np.float64, np.float16, np.int16, np.int32, np.int64, np.uint8, np.int8]
ODD_DTYPES = [np.bool_, np.complex64, np.uint16, np.uint32, np.str_]


@st.composite
def arrays(draw) -> np.ndarray:
    shape = draw(
        st.one_of(
            st.tuples(st.integers(0, 300)),
            st.tuples(st.integers(0, 9), st.integers(0, 300)),
            st.tuples(st.integers(0, 300), st.integers(0, 9)),
            st.tuples(st.integers(0, 2), st.integers(0, 3), st.integers(0, 50)),
            st.just(()),
        )
    )
    dtype = draw(st.sampled_from(DTYPES + ODD_DTYPES))
    n = int(np.prod(shape)) if shape else 1
    if dtype is np.str_:
        return np.full(shape, "x")
    if np.issubdtype(dtype, np.integer) or dtype is np.bool_:
        info = np.iinfo(dtype) if dtype is not np.bool_ else None
        lo, hi = (info.min, info.max) if info else (0, 1)
        vals = draw(st.lists(st.integers(int(lo), int(hi)), min_size=n, max_size=n))
        return np.array(vals, dtype=np.int64).astype(dtype).reshape(shape)
    width = 16 if dtype is np.float16 else 32
    vals = draw(
        st.lists(
            st.floats(allow_nan=True, allow_infinity=True, width=width), min_size=n, max_size=n
        )
    )
    return np.array(vals, dtype=np.float64).astype(dtype).reshape(shape)


@FUZZ
@given(
    x=arrays(),
    sr=st.one_of(
        st.sampled_from([8000, 16000, 24000, 44100, 48000, 192000, 7999, 11025]),
        st.integers(-5, 400_000),
        st.sampled_from([0, -1, True, 24000.0, "24000", None]),
    ),
    as_tensor=st.booleans(),
)
def test_ensure_mono_24k_arrays(x: np.ndarray, sr, as_tensor: bool) -> None:
    count("in-memory arrays")
    wav = x
    if as_tensor and x.dtype.kind in "fiub" and x.dtype not in (np.uint16, np.uint32):
        wav = torch.from_numpy(np.ascontiguousarray(x))
    t0 = time.perf_counter()
    try:
        out = ensure_mono_24k(wav, sr, name="mic clip")
    except AudioError as e:
        assert "mic clip" in str(e)
        return
    assert time.perf_counter() - t0 < 30.0
    check_clip(out)
    assert x.size > 0 and x.dtype.kind in "fiu"


def test_ensure_mono_24k_layouts_agree() -> None:
    """`[T]`, `[C, T]`, `[T, C]` and `[1, C, T]` of the same stereo clip give the same mono."""
    x = tone(330, 0.05, SR, channels=2)  # [T, 2]
    ref = ensure_mono_24k(x, SR)
    for v in (x.T, x.T[None], torch.from_numpy(np.ascontiguousarray(x.T))):
        assert torch.equal(ensure_mono_24k(v, SR), ref)
    assert torch.allclose(ensure_mono_24k(x.mean(1), SR), ref)


def test_int_pcm_is_scaled() -> None:
    x = np.array([-32768, 0, 16384, 32767], np.int16)
    out = ensure_mono_24k(x, SR)
    assert out.abs().max() <= 1.0 and math.isclose(float(out[0, 2]), 0.5)
    assert math.isclose(float(ensure_mono_24k(np.array([0, 128, 255], np.uint8), SR)[0, 1]), 0.0)


# ------------------------------------------------------------------------------------------------
# through the codecs
# ------------------------------------------------------------------------------------------------
def default_sized():
    """The demo-preset ALMTokenizer and the official-architecture EnCodec, untrained."""
    from codec.models.almtokenizer import ALMTokenizer, preset
    from codec.models.encodec import EnCodecCodec, EnCodecConfig

    torch.manual_seed(0)
    return ALMTokenizer(preset("demo")).eval(), EnCodecCodec(EnCodecConfig()).eval()


@pytest.fixture(scope="module")
def codecs():
    alm, enc = default_sized()
    return {
        "almtokenizer": kmeans_warm(untrained_tiny_alm()),  # codebooks k-means-initialised
        "encodec": kmeans_warm(untrained_tiny_encodec()),
        "almtokenizer_demo_untrained": alm,
        "encodec_24khz_untrained": enc,
    }


@pytest.mark.parametrize(
    "name", ["almtokenizer", "encodec", "almtokenizer_demo_untrained", "encodec_24khz_untrained"]
)
@pytest.mark.parametrize("clip", ["one_sample", "silence", "one_sample_file", "dc_full_scale"])
def test_degenerate_clips_through_codecs(tmp_path: Path, codecs, name: str, clip: str) -> None:
    codec = codecs[name]
    if clip == "one_sample":
        wav = torch.full((1, 1), 0.3)
    elif clip == "silence":
        wav = torch.zeros(1, SR // 2)
    elif clip == "dc_full_scale":
        wav = torch.ones(1, 4801)
    else:
        p = tmp_path / "one.wav"
        sf.write(p, np.array([0.25], np.float32), 44100, subtype="FLOAT")
        wav = load_audio(p)
    windows = [2, 10] if name.startswith("almtokenizer") else [None]
    for w in windows:
        with torch.no_grad():
            enc = codec.encode(wav[None], w)
            out_q = codec.decode(enc.quantized, w, num_samples=wav.shape[-1])
            out_c = codec.decode(enc.latents, w, num_samples=wav.shape[-1])
            out_codes = codec.decode_codes(enc.codes, w, num_samples=wav.shape[-1])
        assert enc.codes.shape[-1] == codec.num_frames(wav.shape[-1], w) >= 1
        for t in (enc.latents, enc.quantized, out_q, out_c, out_codes):
            assert torch.isfinite(t).all(), f"{name} w={w} {clip}: non-finite output"
        assert out_q.shape == (1, 1, wav.shape[-1])
        assert torch.allclose(out_codes, out_q, atol=1e-5)


def test_report_counts() -> None:
    """Printed with `pytest -s`: inputs tried per surface in this session."""
    print("\ninputs tried:", TRIED)
