"""Timbre augmentation of training crops: EQ tilt, brightness, detune and room, each seeded.

    crop [C, N_in] (N_in = input_samples(N, seed): more than N when detune raises the pitch)
      -> detune: windowed-sinc resampling by 2^(cents/1200), N samples kept
      -> EQ: reflect-pad, rfft, x tilt (dB/octave around pivot_hz) x high shelf, irfft, crop
      -> room: + wet x (crop * seeded exponentially decaying noise impulse response)
      -> RMS matched to the input, peak capped at full scale (never pushed past 0 dBFS)

Every effect has its own probability `p` (0: off, the default) and range; with every `p` at 0
the crop is returned untouched, so existing configs and checkpoints see identical batches.
Draws depend only on the seed (CropDataset: seed, epoch, index, draw), one independent stream per
effect, so changing one effect's settings never changes another's draws. Loudness is left to the
gain augmentation (`Augment`, applied after this): the output has the input's RMS.

The settings classes are also the `dataloader.augment` config sections (`eq_tilt`, `brightness`,
`detune`, `room`); their errors name the key relative to the section (`rt60_s: ...`).
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from codec.schema import ConfigError

# a 60 dB decay: amplitude 10^-3 after rt60 seconds
_LN_1000 = math.log(1000.0)
_PAD = 1024  # reflect padding of the EQ's FFT (samples each side)
_TAPS = 32  # windowed-sinc half length of the detune (taps each side)
_PHASES = 1024  # fractional positions of the detune's weight table
_ROLLOFF = 0.97  # the detune's low-pass, as a share of the lower Nyquist
_TILT_FLOOR_HZ = 50.0  # the tilt is flat below this (no runaway gain at DC)
MAX_RT60_S = 2.0


def _rng(seed: int, stream: str) -> random.Random:
    """One effect's stream: a str seed is hashed with SHA-512 (stable across processes, unlike
    hash()), so the draws depend only on (seed, stream)."""
    return random.Random(f"timbre:{seed}:{stream}")


def _check_p(p: float) -> None:
    if not 0.0 <= p <= 1.0:
        raise ConfigError(f"p: must be a probability in [0, 1], got {p}")


def _check_range(name: str, r: list[float], lo: float, hi: float, strict_lo: bool = False) -> None:
    ok = len(r) == 2 and r[0] <= r[1] and (r[0] > lo if strict_lo else r[0] >= lo) and r[1] <= hi
    if not ok:
        bound = f"{lo} < low" if strict_lo else f"{lo} <= low"
        raise ConfigError(f"{name}: expected [low, high] with {bound} <= high <= {hi}, got {r}")


@dataclass(frozen=True)
class EqTilt:
    """Spectral tilt: a gain of `slope * log2(f / pivot_hz)` dB, `slope` drawn from
    `db_per_octave` (flat below 50 Hz). Zero phase."""

    p: float = 0.0
    db_per_octave: list[float] = field(default_factory=lambda: [-3.0, 3.0])
    pivot_hz: float = 1000.0

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        _check_p(self.p)
        _check_range("db_per_octave", self.db_per_octave, -12.0, 12.0)
        if not 20.0 <= self.pivot_hz <= 20000.0:
            raise ConfigError(f"pivot_hz: must be in [20, 20000], got {self.pivot_hz}")


@dataclass(frozen=True)
class Brightness:
    """A first-order high shelf above `freq_hz`: the gain (dB, drawn from `gain_db`) is reached
    well above the corner, half of it (in power) at the corner. Zero phase."""

    p: float = 0.0
    gain_db: list[float] = field(default_factory=lambda: [-6.0, 6.0])
    freq_hz: float = 3000.0

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        _check_p(self.p)
        _check_range("gain_db", self.gain_db, -24.0, 24.0)
        if not 20.0 <= self.freq_hz <= 20000.0:
            raise ConfigError(f"freq_hz: must be in [20, 20000], got {self.freq_hz}")


@dataclass(frozen=True)
class Detune:
    """Resampling by `2^(cents / 1200)` (windowed sinc): pitch and every
    formant move together, the crop keeps its length (more input is read to raise the pitch)."""

    p: float = 0.0
    cents: list[float] = field(default_factory=lambda: [-50.0, 50.0])

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        _check_p(self.p)
        _check_range("cents", self.cents, -1200.0, 1200.0)


@dataclass(frozen=True)
class Room:
    """Convolution with a synthetic room: seeded white noise under an exponential decay of
    `rt60_s` (60 dB), mixed in with `wet` (0: dry, 1: reverb only) at the crop's level."""

    p: float = 0.0
    rt60_s: list[float] = field(default_factory=lambda: [0.1, 0.6])
    wet: list[float] = field(default_factory=lambda: [0.05, 0.3])

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        _check_p(self.p)
        _check_range("rt60_s", self.rt60_s, 0.0, MAX_RT60_S, strict_lo=True)
        _check_range("wet", self.wet, 0.0, 1.0)


@dataclass(frozen=True)
class TimbreDraw:
    """What one seed drew: each effect's value, None where the effect is not applied."""

    tilt_db_per_octave: float | None = None
    shelf_db: float | None = None
    cents: float | None = None
    rt60_s: float | None = None
    wet: float | None = None
    noise_seed: int = 0

    @property
    def ratio(self) -> float:
        """Frequency ratio of the detune (1: none)."""
        return 1.0 if self.cents is None else 2.0 ** (self.cents / 1200.0)


@dataclass(frozen=True)
class TimbreAugment:
    """The four timbre effects (see the module docstring); `apply` is a pure function of the
    crop and the seed."""

    eq_tilt: EqTilt = field(default_factory=EqTilt)
    brightness: Brightness = field(default_factory=Brightness)
    detune: Detune = field(default_factory=Detune)
    room: Room = field(default_factory=Room)

    @property
    def active(self) -> bool:
        return any(e.p > 0 for e in (self.eq_tilt, self.brightness, self.detune, self.room))

    def draw(self, seed: int) -> TimbreDraw:
        """Each effect's on/off and value, one independent stream per effect."""

        def pick(name: str, p: float, *ranges: list[float]) -> list[float] | None:
            rng = _rng(seed, name)
            on = rng.random() < p
            values = [rng.uniform(*r) for r in ranges]  # drawn either way: streams stay aligned
            return values if on else None

        tilt = pick("tilt", self.eq_tilt.p, self.eq_tilt.db_per_octave)
        shelf = pick("shelf", self.brightness.p, self.brightness.gain_db)
        cents = pick("detune", self.detune.p, self.detune.cents)
        room = pick("room", self.room.p, self.room.rt60_s, self.room.wet)
        return TimbreDraw(
            tilt_db_per_octave=tilt[0] if tilt else None,
            shelf_db=shelf[0] if shelf else None,
            cents=cents[0] if cents else None,
            rt60_s=room[0] if room else None,
            wet=room[1] if room else None,
            noise_seed=_rng(seed, "room-noise").getrandbits(63),
        )

    def input_samples(self, num_samples: int, seed: int) -> int:
        """Samples of input that give `num_samples` of output: more when detune is drawn (the
        interpolation reads _TAPS samples past the last position, a raised pitch reads
        `num_samples * ratio`)."""
        d = self.draw(seed) if self.active else None
        if d is None or d.cents is None:
            return num_samples
        return max(num_samples, _resample_input(num_samples, d.ratio))

    def apply(
        self, wav: torch.Tensor, seed: int, sample_rate: int, num_samples: int | None = None
    ) -> torch.Tensor:
        """`wav` `[C, N_in]` -> `[C, num_samples]` (default N_in), float32, no NaN.

        Give `input_samples(num_samples, seed)` samples of input: fewer are zero-padded (a
        raised pitch then ends in silence), more are cut at the end.
        """
        n = wav.shape[-1] if num_samples is None else num_samples
        d = self.draw(seed)
        ref = _fit(wav.to(torch.float32), n)
        spectral = d.cents is not None or d.tilt_db_per_octave is not None or d.shelf_db is not None
        room = d.rt60_s is not None and d.wet is not None
        if not (spectral or room):
            return ref  # nothing drawn for this crop: untouched
        x = _resample(wav.to(torch.float32), d.ratio, n) if d.cents is not None else ref
        if d.tilt_db_per_octave is not None or d.shelf_db is not None:
            pivot, corner = self.eq_tilt.pivot_hz, self.brightness.freq_hz
            x = _eq(x, lambda freqs: _eq_gain(freqs.double(), d, pivot, corner), sample_rate)
        if room:
            x = _room(x, d.rt60_s, d.wet, sample_rate, d.noise_seed)  # type: ignore[arg-type]
        return _match_and_cap(x, ref)


def _resample_input(n: int, r: float) -> int:
    """Input samples that n outputs of `_resample` read (positions up to (n - 1) r + _TAPS)."""
    return math.ceil((n - 1) * r) + _TAPS + 1


def _resample(x: torch.Tensor, r: float, n: int) -> torch.Tensor:
    """`[C, N_in]` read at positions 0, r, 2r, ... (n of them) by Hann-windowed sinc
    interpolation, low-passed below the new Nyquist when r > 1; zeros beyond the input. The
    fractional positions are rounded to 1 / _PHASES of a sample (one weight table per call)."""
    x = _fit(x, max(x.shape[-1], _resample_input(n, r)))
    cutoff = _ROLLOFF * min(1.0, 1.0 / r)
    offs = torch.arange(-_TAPS, _TAPS)  # input samples floor(k r) + offs feed output k
    dist = (torch.arange(_PHASES) / _PHASES)[:, None] - offs[None, :]  # float32
    window = torch.where(dist.abs() < _TAPS, 0.5 * (1.0 + torch.cos(math.pi * dist / _TAPS)), 0.0)
    table = cutoff * torch.sinc(cutoff * dist) * window  # [_PHASES, 2 * _TAPS]
    table = table / table.sum(-1, keepdim=True)  # unit gain at DC whatever the phase
    steps = torch.round(torch.arange(n, dtype=torch.float64) * (r * _PHASES)).long()
    base, phase = steps // _PHASES, steps % _PHASES
    xp = torch.nn.functional.pad(x, (_TAPS, _TAPS + 1))
    # row k: x[floor(k r) - _TAPS : floor(k r) + _TAPS], the samples `offs` names
    rows = xp.unfold(-1, 2 * _TAPS, 1).index_select(-2, base)  # [C, n, 2 * _TAPS]
    return torch.einsum("cnk,nk->cn", rows, table.index_select(0, phase))


def _eq(x: torch.Tensor, gain_fn: Callable[[torch.Tensor], torch.Tensor], sr: int) -> torch.Tensor:
    """`[C, N]` filtered by the zero-phase magnitude `gain_fn(freqs)`, in one FFT of the
    reflect-padded crop (a length with small prime factors: fast)."""
    n = x.shape[-1]
    pad = min(_PAD, n - 1)
    xp = torch.nn.functional.pad(x.unsqueeze(0), (pad, pad), mode="reflect").squeeze(0)
    length = _fast_length(xp.shape[-1])
    spec = torch.fft.rfft(xp, n=length, dim=-1)
    spec = spec * gain_fn(torch.fft.rfftfreq(length, 1.0 / sr)).to(spec.real.dtype)
    return torch.fft.irfft(spec, n=length, dim=-1)[..., pad : pad + n]


def _fast_length(n: int) -> int:
    """The smallest m >= n whose prime factors are 2, 3 and 5."""
    m = n
    while True:
        k = m
        for f in (2, 3, 5):
            while k % f == 0:
                k //= f
        if k == 1:
            return m
        m += 1


def _eq_gain(freqs: torch.Tensor, d: TimbreDraw, pivot_hz: float, shelf_hz: float) -> torch.Tensor:
    """Linear magnitude of tilt x shelf at `freqs` (1 where neither is drawn)."""
    db = torch.zeros_like(freqs)
    if d.tilt_db_per_octave is not None:
        octaves = torch.log2(freqs.clamp(min=_TILT_FLOOR_HZ) / pivot_hz)
        db = db + d.tilt_db_per_octave * octaves
    gain = 10.0 ** (db / 20.0)
    if d.shelf_db is not None:
        # first-order shelf |H|^2 = (1 + A^2 (f/fc)^2) / (1 + (f/fc)^2): 1 at DC, A^2 far above
        a2 = 10.0 ** (d.shelf_db / 10.0)
        w2 = (freqs / shelf_hz) ** 2
        gain = gain * torch.sqrt((1.0 + a2 * w2) / (1.0 + w2))
    return gain


def _room(x: torch.Tensor, rt60: float, wet: float, sr: int, noise_seed: int) -> torch.Tensor:
    """`x` `[C, N]` mixed with its convolution by a seeded decaying-noise impulse response."""
    n = x.shape[-1]
    length = max(int(rt60 * sr), 1)
    g = torch.Generator().manual_seed(noise_seed)
    t = torch.arange(length, dtype=torch.float32) / sr
    ir = torch.randn(length, generator=g) * torch.exp(-_LN_1000 * t / rt60)
    nfft = _fast_length(n + length - 1)
    rev = torch.fft.irfft(torch.fft.rfft(x, nfft) * torch.fft.rfft(ir, nfft), nfft)
    rev = rev[..., :n]  # causal: the crop's own tail, cut at the crop's end
    level = _rms(x) / _rms(rev).clamp(min=1e-12)
    return (1.0 - wet) * x + wet * rev * level


def _rms(x: torch.Tensor) -> torch.Tensor:
    return x.pow(2).mean().sqrt()


def _fit(x: torch.Tensor, n: int) -> torch.Tensor:
    """Cut or zero-pad the last axis to `n`."""
    if x.shape[-1] >= n:
        return x[..., :n]
    return torch.nn.functional.pad(x, (0, n - x.shape[-1]))


def _match_and_cap(y: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
    """`y` at the RMS of `ref`, then scaled down if its peak passes max(1, peak of ref): like
    `Augment`'s gain, an effect never pushes a crop past full scale."""
    rms_y, rms_ref = float(_rms(y)), float(_rms(ref))
    if rms_y > 0.0 and rms_ref > 0.0:
        y = y * (rms_ref / rms_y)
    cap = max(1.0, float(ref.abs().max()) if ref.numel() else 0.0)
    peak = float(y.abs().max()) if y.numel() else 0.0
    if peak > cap:
        y = y * (cap / peak)
    return torch.nan_to_num(y, nan=0.0, posinf=0.0, neginf=0.0).to(torch.float32)
