"""Evaluation over held-out clips: quality against bitrate for every codec setting, plus the
semantic probe.

Settings: a codec whose frame rate depends on the window (ALMTokenizer) is evaluated at every
window in `windows` (2..10); a codec with `set_bandwidth` (EnCodec) at each of `bandwidths`
(1.5, 3, 6 kbps; its bandwidth is restored afterwards); any other codec at its one setting.
Every clip goes through `codec.reconstruct` (encode -> quantize -> decode) and is scored with
`analysis.metrics.quality_metrics` (delay-aligned mel distance, SI-SDR, STOI; PESQ for speech).

With an audio judge (`analysis.judge`), each reconstruction is also judged by ear: "recognised
as source" is the share of reconstructions whose most probable class is the clip's own
instrument (or speech). With `transfer_clips`, the timbre-transfer grid of
`analysis.judge_grid` runs too (held-out sources, targets from the training split's notes).
"""

from __future__ import annotations

import contextlib
import logging
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from analysis.codec_ops import codec_device
from analysis.dataset import heldout_items
from analysis.judge import Judge, judge_label
from analysis.latents import DEFAULT_CACHE_DIR, DEFAULT_MAX_SECONDS, extract_latents
from analysis.metrics import QualityMetrics, codec_rates, quality_metrics
from analysis.probe import ProbeScores, probe_latents
from analysis.records import EvalRow, EvaluationReport
from codec.audio import load_audio
from codec.metrics import estimate_f0, pitch_matches
from codec.models.base import Codec

log = logging.getLogger(__name__)

WINDOWS = tuple(range(2, 11))
ENCODEC_BANDWIDTHS = (1.5, 3.0, 6.0)


@dataclass
class Setting:
    """One operating point: a window (ALMTokenizer) or a bandwidth in kbps (EnCodec)."""

    window: int | None = None
    bandwidth: float | None = None

    @property
    def label(self) -> str:
        if self.window is not None:
            return f"w={self.window}"
        return f"{self.bandwidth:g} kbps" if self.bandwidth is not None else "default"


def settings_for(
    codec: Codec, windows: Sequence[int] = WINDOWS, bandwidths: Sequence[float] = ENCODEC_BANDWIDTHS
) -> list[Setting]:
    """The settings a codec is evaluated at, by the setting it declares (`Codec.setting`):
    each of `windows`, or each of `bandwidths` it offers (others skipped with a warning), or
    its one default."""
    spec = codec.setting()
    if spec.kind == "window":
        return [Setting(window=int(w)) for w in windows]
    if spec.kind == "bandwidth":
        out = []
        for b in bandwidths:
            try:
                spec.check(float(b))
            except ValueError as e:
                log.warning("%s: skipping %g kbps: %s", codec.name, b, e)
                continue
            out.append(Setting(bandwidth=float(b)))
        if not out:
            raise ValueError(f"{codec.name} supports none of the bandwidths {list(bandwidths)}")
        return out
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


@torch.inference_mode()
def evaluate_codec(
    codec: Codec,
    items: Sequence[Any],
    settings: Sequence[Setting],
    max_seconds: float = DEFAULT_MAX_SECONDS,
    progress: bool = True,
    judge: Judge | None = None,
    label: str | None = None,
) -> list[EvalRow]:
    """Mean quality of `codec.reconstruct` at each setting over the clips `items` (and, with
    `judge`, the share of reconstructions recognised as their source's class). Rows are named
    `label` (default `codec.name`), so two codecs of one backend stay apart."""
    label = label or codec.name
    codec.eval()
    dev = codec_device(codec)
    per: dict[str, list[QualityMetrics]] = {s.label: [] for s in settings}
    pitch: dict[str, list[bool]] = {s.label: [] for s in settings}
    heard: dict[str, list[bool]] = {s.label: [] for s in settings}
    bar = tqdm(total=len(items) * len(settings), desc=f"eval {label}", disable=not progress)
    for it in items:
        wav = load_audio(getattr(it, "path", it), codec.sample_rate, max_seconds)[None].to(dev)
        pitched = not is_speech(it) and not math.isnan(estimate_f0(wav.cpu(), codec.sample_rate))
        for s in settings:
            with applied(codec, s):
                rec = codec.reconstruct(wav, s.window)
            per[s.label].append(
                quality_metrics(rec.cpu(), wav.cpu(), codec.sample_rate, speech=is_speech(it))
            )
            if pitched:  # the gate that matters: mel distance alone can hide a lost pitch
                pitch[s.label].append(pitch_matches(rec.cpu(), wav.cpu(), codec.sample_rate))
            if judge is not None and judge_label(it) in judge.classes:
                heard[s.label].append(
                    judge.hear(rec.cpu(), codec.sample_rate).label == judge_label(it)
                )
            bar.update(1)
    bar.close()
    rows = []
    n_speech = sum(is_speech(it) for it in items)
    for s in settings:
        with applied(codec, s):
            rates = codec_rates(codec, s.window)
        ms = per[s.label]
        rows.append(
            EvalRow(
                codec=label, setting=s.label, window=s.window, bandwidth_kbps=s.bandwidth,
                tokens_per_second=rates.tokens_per_second, codes_per_second=rates.codes_per_second,
                bitrate=rates.bitrate, mel_distance=_nanmean([m.mel_distance for m in ms]),
                si_sdr=_nanmean([m.si_sdr for m in ms]), stoi=_nanmean([m.stoi for m in ms]),
                pesq=_nanmean([m.pesq for m in ms]),
                pitch_accuracy=_nanmean([float(p) for p in pitch[s.label]]),
                n_clips=len(ms), n_speech=n_speech,
                recognised_as_source=_nanmean([float(h) for h in heard[s.label]]),
            )
        )  # fmt: skip
    return rows


def evaluate_codecs(
    codecs: Sequence[Codec],
    items: Sequence[Any],
    out_dir: str | Path | None = None,
    heldout_sound_ids: Sequence[int] | None = None,
    split_seed: int | None = None,
    windows: Sequence[int] = WINDOWS,
    bandwidths: Sequence[float] = ENCODEC_BANDWIDTHS,
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
        windows, bandwidths: settings (see `settings_for`).
        probe: run the semantic probe on all `items` (grouped splits by sound id keep it honest).
        probe_window: window for the probe's latents (ignored by EnCodec).
        max_clips: evaluate at most this many held-out clips (a seeded subset).
        cache_dir: latent cache for the probe.
        seed: subset and probe seed.
        judge: the audio judge (`analysis.judge.load_or_fit_judge`); None skips every
            judged figure.
        transfer_clips: N > 0 runs the transfer grid on N held-out clips (needs `judge`)...
        transfer_methods, transfer_alphas: ... with these methods and strengths ...
        transfer_items: ... toward targets built from these records (default: the `items`
            that are not held out) ...
        quantize_transfer: ... re-quantizing the moved latents for these codec names
            (default: the codecs that declare `decodes_quantized_only`, ALMTokenizer).
        labels: one name per codec for rows, probes and the grid (default `codec.name`); two
            codecs of one backend (our EnCodec and the official one) need distinct labels.

    Raises:
        ValueError: no held-out clips, or none of `heldout_sound_ids` in `items`.
    """
    clips = heldout_items(items, heldout_sound_ids, split_seed)
    if not clips:
        raise ValueError("no held-out clips to evaluate")
    names = list(labels) if labels is not None else [c.name for c in codecs]
    if len(names) != len(codecs) or len(set(names)) != len(names):
        raise ValueError(f"need one distinct label per codec, got {names} for {len(codecs)}")
    if max_clips is not None and len(clips) > max_clips:
        rng = np.random.default_rng(seed)
        clips = [clips[i] for i in sorted(rng.choice(len(clips), max_clips, replace=False))]
    rows: list[EvalRow] = []
    probes: dict[str, dict[str, ProbeScores]] = {}
    for codec, name in zip(codecs, names):
        rows += evaluate_codec(
            codec, clips, settings_for(codec, windows, bandwidths), progress=progress, judge=judge,
            label=name,
        )  # fmt: skip
        if probe:
            lat = extract_latents(
                codec, items, probe_window, cache_dir=cache_dir, progress=progress
            )
            probes[name] = probe_latents(lat.pooled, lat.items, name, seed=seed)
    ids = sorted({int(getattr(it, "sound_id", -1)) for it in clips})
    report = EvaluationReport(rows, probes, ids)
    if judge is not None:
        report.judge = dict(judge.meta, classes=list(judge.classes))
    if judge is not None and transfer_clips > 0:
        from analysis.judge_grid import grid_sources, summarise, transfer_grid

        held_ids = {int(getattr(it, "sound_id", -1)) for it in clips}
        if transfer_items is None:
            transfer_items = [it for it in items if getattr(it, "sound_id", None) not in held_ids]
        targets_from = [it for it in transfer_items if getattr(it, "midi", None) is not None]
        sources = grid_sources(clips, transfer_clips, seed)
        for codec, name in zip(codecs, names):
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
