"""Reconstruct tab: one clip through ALMTokenizer (window w) and EnCodec (bandwidth) side by side.

Each codec's column (player, rates, metrics, spectrogram, codebook usage, token timeline) is
computed by its own function and cached by (clip hash, codec, setting). So:
- `set_window` (slider release) recomputes the ALMTokenizer column only;
- `set_bandwidth` recomputes the EnCodec column only;
- `reconstruct` computes both, reusing whatever is cached.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Any

import gradio as gr
import plotly.graph_objects as go
import torch

from analysis.metrics import align_delay
from app.clips import Clip, load_clip, write_wav
from app.errors import UserInputError, user_errors
from app.figures import codebook_usage_figure, spectrogram_figure, token_timeline_figure
from app.state import WINDOW_MAX, WINDOW_MIN, Studio
from app.tabs.widgets import window_slider
from codec.metrics import mel_distance, si_sdr
from codec.tokenizer.stats import codebook_stats, token_timeline

log = logging.getLogger(__name__)

TABLE_HEADERS = ["codec", "setting", "tokens/s", "kbps", "mel distance", "SI-SDR (dB)"]


@dataclass
class Column:
    """One codec's outputs for one clip and setting."""

    audio: str
    info: str
    spectrogram: go.Figure
    usage: go.Figure
    timeline: go.Figure
    row: list[Any]

    def outputs(self) -> list[Any]:
        return [self.audio, self.info, self.spectrogram, self.usage, self.timeline]


def check_window(window: Any) -> int:
    try:
        w = int(round(float(window)))
    except (TypeError, ValueError):
        raise UserInputError(f"window must be a number from {WINDOW_MIN} to {WINDOW_MAX}") from None
    if not WINDOW_MIN <= w <= WINDOW_MAX:
        raise UserInputError(f"window must be from {WINDOW_MIN} to {WINDOW_MAX}, got {w}")
    return w


def check_bandwidth(studio: Studio, bandwidth: Any) -> float:
    try:
        bw = float(str(bandwidth).replace("kbps", "").strip())
    except ValueError:
        bw = math.nan
    if bw not in studio.bandwidths:
        allowed = ", ".join(f"{b:g}" for b in studio.bandwidths)
        raise UserInputError(f"EnCodec bandwidth must be one of {allowed} kbps, got {bandwidth!r}")
    return bw


def _quality(recon: torch.Tensor, clip: Clip) -> tuple[float, float]:
    """Mel distance and SI-SDR after delay alignment."""
    al = align_delay(recon, clip.wav)
    return float(mel_distance(al.estimate, al.reference)), float(si_sdr(al.estimate, al.reference))


def _column(
    studio: Studio,
    clip: Clip,
    name: str,
    setting: str,
    recon: torch.Tensor,
    codes: torch.Tensor,
    frame_rate: float,
    bitrate: float,
    codebook_size: int,
) -> Column:
    mel, sdr = _quality(recon, clip)
    tag = setting.replace(" ", "").replace("=", "").replace(".", "p")
    path = write_wav(studio.out_dir, f"{clip.key}_{name.lower()}_{tag}", recon)
    stats = codebook_stats(codes, codebook_size)
    info = (
        f"**{name}** ({setting}): **{frame_rate:.2f} tokens/s** x {codes.shape[0]} codebooks, "
        f"**{bitrate / 1000:.3f} kbps**  \n"
        f"mel distance **{mel:.3f}** (lower is better), SI-SDR **{sdr:.2f} dB**"
    )
    return Column(
        audio=path,
        info=info,
        spectrogram=spectrogram_figure(recon, f"{name} ({setting})"),
        usage=codebook_usage_figure(stats, f"{name}: codebook usage in this clip"),
        timeline=token_timeline_figure(token_timeline(codes, frame_rate), f"{name}: tokens"),
        row=[
            name,
            setting,
            round(frame_rate, 2),
            round(bitrate / 1000, 3),
            round(mel, 3),
            round(sdr, 2),
        ],
    )


def alm_column(studio: Studio, clip: Clip, window: int) -> Column:
    """ALMTokenizer at window `window` (cached per clip and window)."""

    def compute() -> Column:
        codec = studio.alm
        with torch.inference_mode():
            enc = codec.encode(clip.wav[None], window)
            recon = codec.decode(enc.quantized, window, num_samples=clip.num_samples)
        return _column(
            studio,
            clip,
            "ALMTokenizer",
            f"w={window}",
            recon,
            enc.codes[0],
            codec.frame_rate(window),
            codec.bitrate(window),
            codec.codebook_size,
        )

    return studio.results.get_or_compute((clip.key, "alm", window), compute)


def encodec_column(studio: Studio, clip: Clip, bandwidth: float) -> Column:
    """EnCodec at `bandwidth` kbps (cached per clip and bandwidth; never per window)."""

    def compute() -> Column:
        enc, recon = studio.encodec_reconstruct(clip.wav[None], bandwidth)
        return _column(
            studio,
            clip,
            "EnCodec",
            f"{bandwidth:g} kbps",
            recon,
            enc.codes[0],
            studio.encodec.frame_rate(None),
            enc.bitrate,
            studio.encodec.codebook_size,
        )

    return studio.results.get_or_compute((clip.key, "encodec", bandwidth), compute)


def original_outputs(studio: Studio, clip: Clip) -> list[Any]:
    """The original's spectrogram (cached per clip) and caption."""
    spec = studio.results.get_or_compute(
        (clip.key, "original"), lambda: spectrogram_figure(clip.wav, "Original")
    )
    return [spec, f"**Original**: {clip.name}, {clip.seconds:.2f} s at 24 kHz mono"]


def _table(alm: Column, enc: Column) -> list[list[Any]]:
    return [alm.row, enc.row]


# --- event handlers --------------------------------------------------------------------------
def reconstruct(
    studio: Studio,
    audio: Any,
    window: Any,
    bandwidth: Any,
    progress: Any = None,
    name: str | None = None,
) -> list[Any]:
    """Both codecs on the clip: original spectrogram + info, ALMTokenizer column, EnCodec
    column, comparison table. `name` labels the clip (default: its file name)."""
    w, bw = check_window(window), check_bandwidth(studio, bandwidth)
    clip = load_clip(audio, studio.config.max_seconds, name)
    if progress is not None:
        progress(0.1, desc="ALMTokenizer")
    alm = alm_column(studio, clip, w)
    if progress is not None:
        progress(0.5, desc="EnCodec")
    enc = encodec_column(studio, clip, bw)
    return [*original_outputs(studio, clip), *alm.outputs(), *enc.outputs(), _table(alm, enc)]


def set_window(studio: Studio, audio: Any, window: Any, bandwidth: Any) -> list[Any]:
    """Window moved: the ALMTokenizer column and the table (EnCodec comes from the cache)."""
    w, bw = check_window(window), check_bandwidth(studio, bandwidth)
    clip = load_clip(audio, studio.config.max_seconds)
    alm = alm_column(studio, clip, w)
    return [*alm.outputs(), _table(alm, encodec_column(studio, clip, bw))]


def set_bandwidth(studio: Studio, audio: Any, window: Any, bandwidth: Any) -> list[Any]:
    """Bandwidth changed: the EnCodec column and the table."""
    w, bw = check_window(window), check_bandwidth(studio, bandwidth)
    clip = load_clip(audio, studio.config.max_seconds)
    enc = encodec_column(studio, clip, bw)
    return [*enc.outputs(), _table(alm_column(studio, clip, w), enc)]


def example_path(studio: Studio, label: str) -> str:
    sound = studio.sound(label) if label else None
    if sound is None:
        raise UserInputError(f"unknown example {label!r}; pick one from the list")
    return str(sound.path)


# --- UI ----------------------------------------------------------------------------------------
def _codec_column(name: str, key: str) -> list[gr.components.Component]:
    audio = gr.Audio(
        label=f"{name} reconstruction", type="filepath", interactive=False, elem_id=f"{key}_audio"
    )
    info = gr.Markdown(elem_id=f"{key}_info")
    spec = gr.Plot(label=f"{name} spectrogram", elem_id=f"{key}_spec")
    usage = gr.Plot(label=f"{name} codebook usage")
    timeline = gr.Plot(label=f"{name} token timeline")
    return [audio, info, spec, usage, timeline]


def build(studio: Studio) -> None:
    """Lay out the tab and wire its events (inside a `gr.Blocks` / `gr.Tab` context)."""
    examples = [s.label for s in studio.examples()]
    with gr.Row():
        with gr.Column(scale=2):
            audio_in = gr.Audio(
                label="Clip (upload, record, or pick an example)",
                sources=["upload", "microphone"],
                type="filepath",
                elem_id="input_audio",
            )
        with gr.Column(scale=1):
            example = gr.Dropdown(examples, value=None, label="Bundled example", elem_id="example")
            window = window_slider(
                studio.config.window, "window_slider", label="ALMTokenizer window size w"
            )
            bandwidth = gr.Radio(
                list(studio.bandwidths),
                value=studio.bandwidths[0],
                label="EnCodec bandwidth (kbps)",
                elem_id="bandwidth",
            )
            run = gr.Button("Reconstruct", variant="primary", elem_id="reconstruct_btn")
    table = gr.Dataframe(
        headers=TABLE_HEADERS, label="Comparison", interactive=False, elem_id="comparison"
    )
    with gr.Row(equal_height=False):
        with gr.Column():
            orig_info = gr.Markdown()
            orig_spec = gr.Plot(label="Original spectrogram", elem_id="original_spec")
        with gr.Column():
            alm_out = _codec_column("ALMTokenizer", "alm")
        with gr.Column():
            enc_out = _codec_column("EnCodec", "encodec")

    all_out = [orig_spec, orig_info, *alm_out, *enc_out, table]

    @user_errors
    def on_reconstruct(audio, w, bw, progress=gr.Progress()):  # noqa: B008
        return reconstruct(studio, audio, w, bw, progress)

    @user_errors
    def on_example(label, w, bw, progress=gr.Progress()):  # noqa: B008
        path = example_path(studio, label)
        return [path, *reconstruct(studio, path, w, bw, progress, name=label)]

    @user_errors
    def on_window(audio, w, bw):
        return set_window(studio, audio, w, bw)

    @user_errors
    def on_bandwidth(audio, w, bw):
        return set_bandwidth(studio, audio, w, bw)

    inputs = [audio_in, window, bandwidth]
    gr.on(
        [run.click, audio_in.upload, audio_in.stop_recording],
        on_reconstruct,
        inputs,
        all_out,
        api_name="reconstruct",
    )
    example.input(
        on_example, [example, window, bandwidth], [audio_in, *all_out], api_name="load_example"
    )
    window.release(on_window, inputs, [*alm_out, table], api_name="set_window")
    bandwidth.input(on_bandwidth, inputs, [*enc_out, table], api_name="set_bandwidth")
