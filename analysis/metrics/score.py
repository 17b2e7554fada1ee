"""One function that scores a reference / decoded pair with every measure that applies.

The app, `analysis evaluate` and `bench.gates` call `score_pair`; a measure that does not apply
to a clip (ViSQOL on a clip under 1 s, DNSMOS on a clip that is not speech, pitch on an
unpitched clip) is left out with its reason in `ClipScores.not_scored`, never given a made-up
number. Scoring the reference against itself (`score_pair(x, x, ...)`) gives the clean
original's row: each measure's ceiling.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch

from analysis.metrics.align import align_delay, as_mono
from analysis.metrics.dnsmos import Dnsmos, dnsmos
from analysis.metrics.f0 import (
    DEFAULT_TRACKER,
    F0Track,
    Tracker,
    cents,
    clip_note_f0,
    compare_f0,
    track_f0,
)
from analysis.metrics.quality import pesq_score, stoi_score
from analysis.metrics.scored import NotScored, is_silent
from analysis.metrics.visqol import visqol
from codec.metrics import mel_distance, si_sdr
from codec.models.base import SAMPLE_RATE

# the columns `score_pair` fills, in table order
COLUMNS = (
    "mel_distance", "si_sdr", "stoi", "pesq", "visqol", "dnsmos_sig", "dnsmos_bak",
    "dnsmos_ovrl", "pitch_kept", "f0_rmse_cents", "voicing_agreement",
)  # fmt: skip


@dataclass
class ClipScores:
    """Every measure of one decoded clip (NaN where not scored; the reason in `not_scored`).

    `pitch_kept` is 1.0 / 0.0 for a pitched reference, NaN otherwise; `f0_source` says whether
    the neural tracker or the autocorrelation fallback gave the note's pitch."""

    values: dict[str, float] = field(default_factory=lambda: dict.fromkeys(COLUMNS, math.nan))
    not_scored: dict[str, str] = field(default_factory=dict)
    lag: int = 0
    f0_source: str = ""

    def set(self, name: str, value: float | NotScored) -> None:
        if isinstance(value, NotScored):
            self.not_scored[name] = value.reason
        else:
            self.values[name] = float(value)

    def reasons(self) -> str:
        """ "visqol: shorter than ...; dnsmos: not speech" ("" when everything was scored)."""
        return "; ".join(f"{k}: {v}" for k, v in self.not_scored.items())


def score_pair(
    reference: torch.Tensor,
    estimate: torch.Tensor,
    sr: int = SAMPLE_RATE,
    *,
    speech: bool = False,
    pitched: bool = True,
    label_hz: float | None = None,
    use_visqol: bool = True,
    use_f0: bool = True,
    tracker: Tracker = DEFAULT_TRACKER,
    reference_f0: F0Track | None = None,
) -> ClipScores:
    """Score `estimate` against `reference` (`[N]`, `[1, N]` or `[1, 1, N]` at `sr`).

    Args:
        speech: the clip is speech: PESQ and DNSMOS (SIG/BAK/OVRL, on the decoded clip) apply.
        pitched: the clip is a note: pitch kept and F0 RMSE apply (speech gets F0 RMSE and
            voicing agreement but no single pitch).
        label_hz: the labelled pitch, if known (a note above the tracker's range falls back to
            autocorrelation for both clips).
        use_visqol: False leaves ViSQOL out ("over the clip budget"): it costs most CPU.
        use_f0: False leaves the neural F0 measures out.
        reference_f0: the reference's F0 track, when already computed (`track_f0(reference)`),
            so that scoring several codecs on one clip tracks the reference once.
    """
    out = ClipScores()
    ref_all, est_all = as_mono(reference), as_mono(estimate)
    if ref_all.numel() == 0 or est_all.numel() == 0:
        raise ValueError("empty clip: nothing to score")
    if not torch.isfinite(est_all).all():
        for k in COLUMNS:
            out.not_scored[k] = "the decoded clip holds NaN or inf"
        return out
    al = align_delay(est_all, ref_all, sr)
    est, ref, out.lag = al.estimate, al.reference, al.lag
    silent = is_silent(ref)
    if silent:
        for k in ("si_sdr", "stoi", "pesq", "visqol", "pitch_kept", "f0_rmse_cents"):
            out.not_scored[k] = "silent reference"
    else:
        out.set("si_sdr", float(si_sdr(est, ref)))
        out.set("stoi", stoi_score(est, ref, sr))
        if speech:
            out.set("pesq", pesq_score(est, ref, sr))
        else:
            out.not_scored["pesq"] = "not speech"
        if use_visqol:
            out.set("visqol", visqol(ref, est, sr))
        else:
            out.not_scored["visqol"] = "over the ViSQOL clip budget"
    out.set("mel_distance", _mel(est, ref, sr))
    if speech:
        d = dnsmos(est, sr)
        if isinstance(d, Dnsmos):
            (
                out.set("dnsmos_sig", d.sig),
                out.set("dnsmos_bak", d.bak),
                out.set("dnsmos_ovrl", d.ovrl),
            )
        else:
            for k in ("dnsmos_sig", "dnsmos_bak", "dnsmos_ovrl"):
                out.set(k, d)
    else:
        out.not_scored["dnsmos_ovrl"] = "not speech"
    if use_f0 and not silent:
        _score_f0(out, ref, est, sr, pitched and not speech, label_hz, tracker, reference_f0)
    elif not use_f0:
        out.not_scored["pitch_kept"] = "F0 not asked for"
    return out


def _mel(est: torch.Tensor, ref: torch.Tensor, sr: int) -> float:
    import torchaudio.functional as AF

    if sr != SAMPLE_RATE:
        est, ref = (AF.resample(x[None], sr, SAMPLE_RATE)[0] for x in (est, ref))
    return float(mel_distance(est, ref))


def _score_f0(
    out: ClipScores, ref: torch.Tensor, est: torch.Tensor, sr: int, note: bool,
    label_hz: float | None, tracker: Tracker, t_ref: F0Track | None,
) -> None:  # fmt: skip
    if t_ref is None or out.lag < 0:  # the aligned reference starts later: track it anew
        t_ref = track_f0(ref, sr, tracker)
    t_est = track_f0(est, sr, tracker)
    cmp = compare_f0(t_ref, t_est)
    out.set("f0_rmse_cents", cmp.rmse_cents)
    out.set("voicing_agreement", cmp.voicing_agreement)
    if not note:
        out.not_scored["pitch_kept"] = "not a note"
        return
    f_ref = clip_note_f0(ref, sr, tracker, label_hz, track=t_ref)
    out.f0_source = f_ref.source
    if math.isnan(f_ref.hz):
        out.not_scored["pitch_kept"] = "the original has no measurable pitch"
        return
    f_est = clip_note_f0(est, sr, tracker, label_hz, track=t_est)
    kept = abs(cents(f_est.hz, f_ref.hz)) <= 50.0  # False when the decoded clip has no pitch
    out.set("pitch_kept", float(bool(kept)))
