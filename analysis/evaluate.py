"""Evaluation over held-out clips: quality against bitrate for every codec setting, plus the
semantic probe.

Settings: a codec whose frame rate depends on the window (ALMTokenizer) is evaluated at every
window in `windows` (2..10); a codec with `set_bandwidth` (EnCodec) at each of `bandwidths`,
by default each bandwidth its checkpoint offers up to 6 kbps (0.75 / 1.5 / 3 / 6 where its
config lists 0.75; its bandwidth is restored afterwards); a reference codec (Opus, Codec2: no
latents) at each of its own bitrates; any other codec at its one setting. Reference codecs have
no probe and no transfer grid; their rows carry the bitrate measured from what they produced.
Every clip goes through `codec.reconstruct` (encode -> quantize -> decode) and is scored with
`analysis.metrics.score_pair`: delay-aligned mel distance, SI-SDR, STOI, ViSQOL (audio mode,
within a clip budget), the neural F0 tracker's pitch kept / F0 RMSE / voicing agreement, and
for speech PESQ and DNSMOS. A row named "clean" scores the originals themselves: the ceiling.

With an audio judge (`analysis.metrics.judge`), each reconstruction is also judged by ear:
"recognised as source" is the share of reconstructions whose most probable class is the clip's own
instrument (or speech). With `transfer_clips`, the timbre-transfer grid of
`analysis.metrics.judge_grid` runs too (held-out sources, targets from the training split's notes).
"""

from __future__ import annotations

import contextlib
import logging
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from analysis.codec_ops import bandwidths_for, codec_device
from analysis.dataset import heldout_items
from analysis.latents import DEFAULT_CACHE_DIR, DEFAULT_MAX_SECONDS, extract_latents
from analysis.metrics import ClipScores, codec_rates, score_pair
from analysis.metrics.f0 import DEFAULT_TRACKER, F0Track, Tracker, track_f0
from analysis.metrics.judge import Judge, judge_label
from analysis.metrics.rates import RateInfo
from analysis.probe import ProbeScores, probe_latents
from analysis.records import EvalRow, EvaluationReport
from codec.audio import load_audio
from codec.models.base import Codec

log = logging.getLogger(__name__)

WINDOWS = tuple(range(2, 11))
DEFAULT_VISQOL_CLIPS = 48  # ViSQOL's clip budget (about 0.3 s of CPU per clip-second)
CLEAN_LABEL = "clean"  # the row of the clean originals: every measure's ceiling


@dataclass
class Setting:
    """One operating point: a window (ALMTokenizer) or a bandwidth in kbps (EnCodec, Opus),
    with the codec's name for it when it has one (Codec2's "700C")."""

    window: int | None = None
    bandwidth: float | None = None
    name: str | None = None

    @property
    def label(self) -> str:
        if self.name is not None:
            return self.name
        if self.window is not None:
            return f"w={self.window}"
        return f"{self.bandwidth:g} kbps" if self.bandwidth is not None else "default"


def settings_for(
    codec: Codec,
    windows: Sequence[int] = WINDOWS,
    bandwidths: Sequence[float] | None = None,
    label: str | None = None,
) -> list[Setting]:
    """The settings a codec is evaluated at, by the setting it declares (`Codec.setting`):
    each of `windows`, or the bandwidths of `bandwidths_for` (None: each its checkpoint
    offers up to 6 kbps; a requested one it does not offer is a ValueError), or its one
    default. A reference codec (no latents) is evaluated at each of its own few bitrates
    (`bandwidths` sweeps EnCodec's)."""
    spec = codec.setting()
    if not codec.has_latents and spec.kind == "bandwidth":
        return [Setting(bandwidth=float(b), name=spec.label(b)) for b in spec.choices]
    if spec.kind == "window":
        return [Setting(window=int(w)) for w in windows]
    if spec.kind == "bandwidth":
        return [Setting(bandwidth=b) for b in bandwidths_for(codec, bandwidths, label)]
    return [Setting()]


@contextlib.contextmanager
def applied(codec: Codec, setting: Setting) -> Iterator[None]:
    """Apply a bandwidth for the duration of the block (`Codec.use_setting`: under the
    model's setting lock, restored after); a window or no setting needs nothing."""
    if setting.bandwidth is None:
        yield
        return
    with codec.use_setting(setting.bandwidth):
        yield


def is_speech(item: Any) -> bool:
    """Speech clips of the demo set: klass "speech" or an instrument named speech_*."""
    return getattr(item, "klass", "") == "speech" or str(
        getattr(item, "instrument", "")
    ).startswith("speech")


def _nanmean(values: list[float]) -> float:
    arr = np.asarray(values, dtype=float)
    return float(np.nanmean(arr)) if arr.size and not np.isnan(arr).all() else math.nan


@dataclass
class _Clip:
    """One held-out clip, loaded once for every codec: the waveform `[1, 1, N]` and what
    applies to it."""

    item: Any
    wav: torch.Tensor
    speech: bool
    label_hz: float | None
    ref_f0: F0Track | None = None


def load_clips(
    items: Sequence[Any], sr: int, max_seconds: float, use_f0: bool, tracker: Tracker
) -> list[_Clip]:
    """Load each clip once (and track its F0 once) for every codec and setting."""
    clips = []
    for it in items:
        wav = load_audio(getattr(it, "path", it), sr, max_seconds)[None]
        midi = getattr(it, "midi", None)
        hz = 440.0 * 2 ** ((midi - 69) / 12) if midi is not None else None
        clips.append(_Clip(it, wav, is_speech(it), hz))
        if use_f0:
            clips[-1].ref_f0 = track_f0(wav, sr, tracker)
    return clips


def _score(
    clip: _Clip, rec: torch.Tensor, sr: int, use_visqol: bool, use_f0: bool, tracker: Tracker
) -> ClipScores:
    return score_pair(
        clip.wav, rec, sr, speech=clip.speech, pitched=not clip.speech, label_hz=clip.label_hz,
        use_visqol=use_visqol, use_f0=use_f0, tracker=tracker, reference_f0=clip.ref_f0,
    )  # fmt: skip


def _not_scored_summary(scores: Sequence[ClipScores]) -> str:
    """ "visqol: 3 clips (shorter than ViSQOL's minimum ...)" over the clips, by measure."""
    why: dict[str, dict[str, int]] = {}
    for s in scores:
        for k, reason in s.not_scored.items():
            if reason in ("not speech", "not a note"):
                continue  # by design, not a failure
            why.setdefault(k, {}).setdefault(reason, 0)
            why[k][reason] += 1
    return "; ".join(
        f"{k}: " + ", ".join(f"{n} clip{'s' * (n > 1)} ({r})" for r, n in rs.items())
        for k, rs in why.items()
    )


def _row(
    label: str, setting: str, rates: RateInfo | None, scores: Sequence[ClipScores],
    heard: Sequence[bool], n_speech: int, window: int | None = None,
    bandwidth: float | None = None,
) -> EvalRow:  # fmt: skip
    def mean(key: str) -> float:
        return _nanmean([s.values[key] for s in scores])

    nan = math.nan
    return EvalRow(
        codec=label, setting=setting, window=window, bandwidth_kbps=bandwidth,
        tokens_per_second=rates.tokens_per_second if rates else nan,
        codes_per_second=rates.codes_per_second if rates else nan,
        bitrate=rates.bitrate if rates else nan, mel_distance=mean("mel_distance"),
        si_sdr=mean("si_sdr"), stoi=mean("stoi"), pesq=mean("pesq"),
        pitch_accuracy=mean("pitch_kept"), n_clips=len(scores), n_speech=n_speech,
        recognised_as_source=_nanmean([float(h) for h in heard]), visqol=mean("visqol"),
        n_visqol=sum(not math.isnan(s.values["visqol"]) for s in scores),
        dnsmos_sig=mean("dnsmos_sig"), dnsmos_bak=mean("dnsmos_bak"),
        dnsmos_ovrl=mean("dnsmos_ovrl"), f0_rmse_cents=mean("f0_rmse_cents"),
        voicing_agreement=mean("voicing_agreement"), not_scored=_not_scored_summary(scores),
    )  # fmt: skip


def _heard(judge: Judge | None, clip: _Clip, wav: torch.Tensor, sr: int) -> list[bool]:
    if judge is None or judge_label(clip.item) not in judge.classes:
        return []
    return [judge.hear(wav, sr).label == judge_label(clip.item)]


@torch.inference_mode()
def evaluate_clean(
    clips: Sequence[_Clip],
    sr: int,
    judge: Judge | None = None,
    visqol_clips: int | None = DEFAULT_VISQOL_CLIPS,
    use_f0: bool = True,
    tracker: Tracker = DEFAULT_TRACKER,
) -> EvalRow:
    """The clean originals scored against themselves: every measure's ceiling (ViSQOL's is
    about 4.73; DNSMOS and the judge score the clean speech and notes themselves)."""
    scores, heard = [], []
    for i, c in enumerate(clips):
        use_v = visqol_clips is None or i < visqol_clips
        scores.append(_score(c, c.wav, sr, use_v, use_f0, tracker))
        heard += _heard(judge, c, c.wav, sr)
    return _row(CLEAN_LABEL, "original", None, scores, heard, sum(c.speech for c in clips))


@torch.inference_mode()
def evaluate_codec(
    codec: Codec,
    items: Sequence[Any],
    settings: Sequence[Setting],
    max_seconds: float = DEFAULT_MAX_SECONDS,
    progress: bool = True,
    judge: Judge | None = None,
    label: str | None = None,
    visqol_clips: int | None = DEFAULT_VISQOL_CLIPS,
    use_f0: bool = True,
    tracker: Tracker = DEFAULT_TRACKER,
    clips: Sequence[_Clip] | None = None,
) -> list[EvalRow]:
    """Mean scores of `codec.reconstruct` at each setting over the clips `items`, every
    measure of `analysis.metrics.score_pair` (and, with `judge`, the share of reconstructions
    recognised as their source's class). Rows are named `label` (default `codec.name`), so two
    codecs of one backend stay apart.

    Args:
        visqol_clips: ViSQOL scores the first N clips only (it costs most CPU); None: all.
        use_f0, tracker: the neural F0 measures, and which tracker.
        clips: the items already loaded (`load_clips`), shared across codecs.
    """
    label = label or codec.name
    codec.eval()
    dev = codec_device(codec)
    sr = codec.sample_rate
    if clips is None:
        clips = load_clips(items, sr, max_seconds, use_f0, tracker)
    scores: dict[str, list[ClipScores]] = {s.label: [] for s in settings}
    heard: dict[str, list[bool]] = {s.label: [] for s in settings}
    spent: dict[str, list[tuple[float, float]]] = {s.label: [] for s in settings}  # bits, s
    bar = tqdm(total=len(clips) * len(settings), desc=f"eval {label}", disable=not progress)
    for i, c in enumerate(clips):
        use_v = visqol_clips is None or i < visqol_clips
        for s in settings:
            with applied(codec, s):
                out = codec.reconstruct_measured(c.wav.to(dev), s.window)
            rec = out.wav.cpu()
            if out.measured:  # bits counted from what the codec produced (Opus's packets)
                spent[s.label].append((float(out.bits or 0.0), out.seconds))
            scores[s.label].append(_score(c, rec, sr, use_v, use_f0, tracker))
            heard[s.label] += _heard(judge, c, rec, sr)
            bar.update(1)
    bar.close()
    rows = []
    n_speech = sum(c.speech for c in clips)
    for s in settings:
        with applied(codec, s):
            rates = codec_rates(codec, s.window)
        if spent[s.label]:  # the measured bitrate, not the nominal one
            bits, seconds = (sum(v) for v in zip(*spent[s.label]))
            rates = replace(rates, bitrate=bits / seconds)
        rows.append(_row(label, s.label, rates, scores[s.label], heard[s.label], n_speech,
                         s.window, s.bandwidth))  # fmt: skip
    return rows


def evaluate_codecs(
    codecs: Sequence[Codec],
    items: Sequence[Any],
    out_dir: str | Path | None = None,
    heldout_sound_ids: Sequence[int] | None = None,
    split_seed: int | None = None,
    windows: Sequence[int] = WINDOWS,
    bandwidths: Sequence[float] | None = None,
    probe: bool = True,
    probe_window: int = 6,
    max_clips: int | None = None,
    cache_dir: str | Path | None = DEFAULT_CACHE_DIR,
    seed: int = 0,
    progress: bool = True,
    judge: Judge | None = None,
    transfer_clips: int = 0,
    transfer_methods: Sequence[str] = ("mean",),
    transfer_alphas: Sequence[float] = (0.5, 1.0),
    transfer_items: Sequence[Any] | None = None,
    quantize_transfer: Sequence[str] | None = None,
    labels: Sequence[str] | None = None,
    visqol_clips: int | None = DEFAULT_VISQOL_CLIPS,
    use_f0: bool = True,
    tracker: Tracker = DEFAULT_TRACKER,
    max_seconds: float = DEFAULT_MAX_SECONDS,
) -> EvaluationReport:
    """Evaluate every codec on held-out clips and probe its latents; write the report files.

    Args:
        codecs: e.g. [ALMTokenizer, EnCodecCodec].
        items: the dataset's records (e.g. `analysis.dataset.load_items(root)`).
        out_dir: where results.csv / .json / .md and quality_vs_bitrate.png / .html go (None:
            write nothing).
        heldout_sound_ids: evaluate the clips of these sounds (e.g.
            `analysis.dataset.unseen_sound_ids(root)`: sounds training never saw) ...
        split_seed: ... else the test side of a grouped 80/20 split drawn with this seed; with
            neither, every item is treated as held out.
        windows, bandwidths: settings (see `settings_for`; bandwidths None: each one an
            EnCodec checkpoint offers up to 6 kbps).
        probe: run the semantic probe on all `items` (grouped splits by sound id keep it honest).
        probe_window: window for the probe's latents (ignored by EnCodec).
        max_clips: evaluate at most this many held-out clips (a seeded subset).
        cache_dir: latent cache for the probe.
        seed: subset and probe seed.
        judge: the audio judge (`analysis.metrics.judge.load_or_fit_judge`); None skips every
            judged figure.
        transfer_clips: N > 0 runs the transfer grid on N held-out clips (needs `judge`)...
        transfer_methods, transfer_alphas: ... with these methods and strengths ...
        transfer_items: ... toward targets built from these records (default: the `items`
            that are not held out) ...
        quantize_transfer: ... re-quantizing the moved latents for these codec names
            (default: the codecs that declare `decodes_quantized_only`, ALMTokenizer).
        labels: one name per codec for rows, probes and the grid (default `codec.name`); two
            codecs of one backend (our EnCodec and the official one) need distinct labels.
        visqol_clips: ViSQOL scores the first N held-out clips (None: every clip).
        use_f0, tracker: the neural F0 measures (pitch kept, F0 RMSE, voicing), which tracker.
        max_seconds: each clip is cut to this length.

    The first row is the clean originals' ("clean", setting "original"): the ceiling of every
    measure on the same clips.

    Raises:
        ValueError: no held-out clips, none of `heldout_sound_ids` in `items`, or a requested
            bandwidth a codec does not offer (before any work).
    """
    clips = heldout_items(items, heldout_sound_ids, split_seed)
    if not clips:
        raise ValueError("no held-out clips to evaluate")
    names = list(labels) if labels is not None else [c.name for c in codecs]
    if len(names) != len(codecs) or len(set(names)) != len(names):
        raise ValueError(f"need one distinct label per codec, got {names} for {len(codecs)}")
    settings = [settings_for(c, windows, bandwidths, n) for c, n in zip(codecs, names)]
    if max_clips is not None and len(clips) > max_clips:
        rng = np.random.default_rng(seed)
        clips = [clips[i] for i in sorted(rng.choice(len(clips), max_clips, replace=False))]
    sr = codecs[0].sample_rate if codecs else 24000
    loaded = load_clips(clips, sr, max_seconds, use_f0, tracker)
    opts = {"visqol_clips": visqol_clips, "use_f0": use_f0, "tracker": tracker}
    rows: list[EvalRow] = [evaluate_clean(loaded, sr, judge, **opts)]
    probes: dict[str, dict[str, ProbeScores]] = {}
    for codec, name, codec_settings in zip(codecs, names, settings):
        same_rate = codec.sample_rate == sr
        rows += evaluate_codec(
            codec, clips, codec_settings, max_seconds, progress,
            judge, name, clips=loaded if same_rate else None, **opts,
        )  # fmt: skip
        if probe and not codec.has_latents:
            log.warning("%s: no semantic probe: a reference codec has no latents", name)
        elif probe:
            lat = extract_latents(
                codec, items, probe_window, cache_dir=cache_dir, progress=progress
            )
            probes[name] = probe_latents(lat.pooled, lat.items, name, seed=seed)
    ids = sorted({int(getattr(it, "sound_id", -1)) for it in clips})
    report = EvaluationReport(rows, probes, ids)
    if judge is not None:
        report.judge = dict(judge.meta, classes=list(judge.classes))
    if judge is not None and transfer_clips > 0:
        from analysis.metrics.judge_grid import grid_sources, summarise, transfer_grid

        held_ids = {int(getattr(it, "sound_id", -1)) for it in clips}
        if transfer_items is None:
            transfer_items = [it for it in items if getattr(it, "sound_id", None) not in held_ids]
        targets_from = [it for it in transfer_items if getattr(it, "midi", None) is not None]
        sources = grid_sources(clips, transfer_clips, seed)
        for codec, name in zip(codecs, names):
            if not codec.has_latents:
                log.warning("%s: no transfer grid: a reference codec has no latents", name)
                continue
            report.transfer_rows += transfer_grid(
                codec, judge, sources, targets_from, transfer_methods, transfer_alphas,
                probe_window, quantize=codec.decodes_quantized_only
                if quantize_transfer is None else codec.name in quantize_transfer,
                cache_dir=cache_dir,
                progress=progress, label=name,
            )  # fmt: skip
        report.transfers = summarise(report.transfer_rows)
    if out_dir is not None:
        from analysis.report import write_report

        report.files = write_report(report, out_dir)
    return report
