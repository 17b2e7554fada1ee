"""Reconstruct tab: one clip through every codec of the line-up, side by side.

Each codec offers one control (`Codec.setting()`): ALMTokenizer a window slider, EnCodec a
bandwidth radio. Each codec's column (player, rates, metrics, spectrogram, codebook usage, token
timeline) is computed by `codec_column` and cached by (clip hash, codec key, setting). So:
- moving one codec's control (`set_window`, `set_bandwidth`, `set_<key>_<kind>`) recomputes that
  codec's column only, and the table;
- `reconstruct` computes every column, reusing whatever is cached.

API parameter names: `audio`, then one per control: the first window codec's is `window`, the
first bandwidth codec's `bandwidth`, further ones `<codec key>_<kind>` (for example
`encodec_official_bandwidth`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import gradio as gr
import torch

from analysis.metrics import align_delay
from analysis.models import LoadedCodec
from app.clips import Clip, load_clip, write_wav
from app.errors import UserInputError
from app.figures import (
    PlotData,
    codebook_usage_figure,
    spectrogram_figure,
    token_timeline_figure,
)
from app.janitor import refreshed
from app.judging import judge_loader, reconstruct_verdicts
from app.state import WINDOW_MAX, WINDOW_MIN, Studio
from app.tabs import rate_chart
from app.tabs.widgets import named_handler, setting_control
from codec.metrics import mel_distance, si_sdr
from codec.tokenizer.stats import codebook_stats, token_timeline

log = logging.getLogger(__name__)

TABLE_HEADERS = ["codec", "setting", "tokens/s", "kbps", "mel distance", "SI-SDR (dB)"]


@dataclass
class Column:
    """One codec's outputs for one clip and setting."""

    audio: str
    info: str
    spectrogram: PlotData
    usage: PlotData
    timeline: PlotData
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


def check_setting(entry: LoadedCodec, value: Any) -> float | None:
    """A codec's setting value from the UI/API (windows also through `check_window`)."""
    if entry.setting.kind == "window":
        return check_window(value)
    try:
        return entry.setting.check(value)
    except ValueError as e:
        raise UserInputError(f"{entry.label} {e}") from None


def controls(studio: Studio) -> list[tuple[LoadedCodec, str]]:
    """(codec, API parameter name) for every codec that offers a setting, in line-up order."""
    out, seen = [], set()
    for c in studio.codecs:
        kind = c.setting.kind
        if kind == "none":
            continue
        out.append((c, kind if kind not in seen else f"{c.key}_{kind}"))
        seen.add(kind)
    return out


def default_values(studio: Studio) -> list[float | None]:
    """The controls' start values: the config's window, each codec's default otherwise."""
    return [
        studio.config.window if c.setting.kind == "window" else c.setting.default
        for c, _ in controls(studio)
    ]


def checked_settings(studio: Studio, values: Any) -> dict[str, float | None]:
    """{codec key: checked setting value} from the controls' values (codecs without a control:
    None)."""
    values = list(values)
    ctl = controls(studio)
    if len(values) != len(ctl):
        raise UserInputError(f"expected {len(ctl)} settings ({[n for _, n in ctl]})")
    out: dict[str, float | None] = {c.key: None for c in studio.codecs}
    for (c, _), v in zip(ctl, values):
        out[c.key] = check_setting(c, v)
    return out


def quality(recon: torch.Tensor, clip: Clip) -> tuple[float, float]:
    """Mel distance and SI-SDR after delay alignment."""
    al = align_delay(recon, clip.wav)
    return float(mel_distance(al.estimate, al.reference)), float(si_sdr(al.estimate, al.reference))


def _column(
    studio: Studio,
    clip: Clip,
    entry: LoadedCodec,
    setting: str,
    recon: torch.Tensor,
    codes: torch.Tensor,
    frame_rate: float,
    bitrate: float,
) -> Column:
    name = entry.label
    mel, sdr = quality(recon, clip)
    tag = setting.replace(" ", "").replace("=", "").replace(".", "p")
    path = write_wav(studio.out_dir, f"{clip.key}_{entry.key}_{tag}", recon)
    stats = codebook_stats(codes, entry.codec.codebook_size)
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


def codec_column(studio: Studio, clip: Clip, entry: LoadedCodec, value: float | None) -> Column:
    """One codec at setting `value` (cached per clip, codec and setting). A stateful setting
    (EnCodec's bandwidth) is applied under the codec's lock for encode + decode + rates."""

    def compute() -> Column:
        codec = entry.codec
        with codec.use_setting(value) as window, torch.inference_mode():
            enc = codec.encode(clip.wav[None], window)
            recon = codec.decode(enc.quantized, window, num_samples=clip.num_samples)
            frame_rate, bitrate = codec.frame_rate(window), codec.bitrate(window)
        label = entry.setting.label(value)
        return _column(studio, clip, entry, label, recon, enc.codes[0], frame_rate, bitrate)

    # the disk cap may have removed the file; one handed out again counts as new for it
    return studio.results.get_or_compute(
        (clip.key, entry.key, value), compute, lambda column: refreshed(column.audio)
    )


def original_outputs(studio: Studio, clip: Clip) -> list[Any]:
    """The original's spectrogram (cached per clip) and caption."""
    spec = studio.results.get_or_compute(
        (clip.key, "original"), lambda: spectrogram_figure(clip.wav, "Original")
    )
    return [spec, f"**Original**: {clip.name}, {clip.seconds:.2f} s at 24 kHz mono"]


def _columns(
    studio: Studio, clip: Clip, settings: dict[str, float | None], progress: Any = None
) -> list[Column]:
    out = []
    for i, c in enumerate(studio.codecs):
        if progress is not None:
            progress(0.1 + 0.8 * i / len(studio.codecs), desc=c.label)
        out.append(codec_column(studio, clip, c, settings[c.key]))
    return out


def _table(columns: list[Column]) -> list[list[Any]]:
    return [c.row for c in columns]


# --- event handlers --------------------------------------------------------------------------
def reconstruct(
    studio: Studio,
    audio: Any,
    *values: Any,
    progress: Any = None,
    name: str | None = None,
) -> list[Any]:
    """Every codec on the clip: original spectrogram + info, one column per codec, the
    comparison table. `values`: one per control (`controls`); `name` labels the clip (default:
    its file name)."""
    settings = checked_settings(studio, values)
    clip = load_clip(audio, studio.config.max_seconds, name)
    columns = _columns(studio, clip, settings, progress)
    return [*original_outputs(studio, clip), *(x for c in columns for x in c.outputs()),
            _table(columns)]  # fmt: skip


def set_setting(studio: Studio, key: str, audio: Any, *values: Any) -> list[Any]:
    """One codec's control moved: that codec's column and the table (the other columns come
    from the cache)."""
    settings = checked_settings(studio, values)
    clip = load_clip(audio, studio.config.max_seconds)
    columns = _columns(studio, clip, settings)
    k = [c.key for c in studio.codecs].index(key)
    return [*columns[k].outputs(), _table(columns)]


def set_window(studio: Studio, audio: Any, *values: Any) -> list[Any]:
    """The first window codec's column and the table."""
    key = next(c.key for c, n in controls(studio) if n == "window")
    return set_setting(studio, key, audio, *values)


def set_bandwidth(studio: Studio, audio: Any, *values: Any) -> list[Any]:
    """The first bandwidth codec's column and the table."""
    key = next(c.key for c, n in controls(studio) if n == "bandwidth")
    return set_setting(studio, key, audio, *values)


def example_path(studio: Studio, label: str) -> str:
    sound = studio.sound(label) if label else None
    if sound is None:
        raise UserInputError(f"unknown example {label!r}; pick one from the list")
    return str(sound.path)


# --- UI ----------------------------------------------------------------------------------------
def _codec_column(entry: LoadedCodec) -> list[gr.components.Component]:
    name, key = entry.label, entry.key
    audio = gr.Audio(
        label=f"{name} reconstruction", type="filepath", interactive=False, elem_id=f"{key}_audio"
    )
    info = gr.Markdown(elem_id=f"{key}_info")
    spec = gr.Plot(label=f"{name} spectrogram", elem_id=f"{key}_spec")
    usage = gr.Plot(label=f"{name} codebook usage")
    timeline = gr.Plot(label=f"{name} token timeline")
    return [audio, info, spec, usage, timeline]


def build(studio: Studio) -> tuple[gr.Audio, gr.Dataframe, list[gr.components.Component]]:
    """Lay out the tab and wire its events (inside a `gr.Blocks` / `gr.Tab` context); returns
    the clip input, the comparison table and the codecs' controls, which the reference codecs'
    section and the field measures follow (`app.tabs.references`, `app.tabs.field_measures`)."""
    examples = [s.label for s in studio.examples()]
    ctl = controls(studio)
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
            widgets = [
                setting_control(c, name, studio.config.window) for c, name in ctl
            ]  # fmt: skip
            run = gr.Button("Reconstruct", variant="primary", elem_id="reconstruct_btn")
    table = gr.Dataframe(
        headers=TABLE_HEADERS, label="Comparison", interactive=False, elem_id="comparison"
    )
    rate_chart.build(studio, widgets, [c.key for c, _ in ctl])
    with gr.Row(equal_height=False):
        with gr.Column():
            orig_info = gr.Markdown()
            orig_spec = gr.Plot(label="Original spectrogram", elem_id="original_spec")
        columns, heard = {}, {}
        for c in studio.codecs:
            with gr.Column():
                columns[c.key] = _codec_column(c)
                heard[c.key] = gr.Markdown(elem_id=f"{c.key}_heard")  # what the judge hears

    all_out = [orig_spec, orig_info, *(x for c in studio.codecs for x in columns[c.key]), table]
    names = [n for _, n in ctl]

    def on_reconstruct(audio, *values, progress):
        return reconstruct(studio, audio, *values, progress=progress)

    def on_example(example, *values, progress):
        path = example_path(studio, example)
        return [path, *reconstruct(studio, path, *values, progress=progress, name=example)]

    # the audio judge (app/judging.py): loads in the background; after each reconstruction a
    # chained event says what each codec's output is recognised as
    judge_loader(studio).start()
    judged = ([columns[c.key][0] for c in studio.codecs], [heard[c.key] for c in studio.codecs])

    def on_heard(*players, progress):
        return reconstruct_verdicts(studio, *players, progress=progress)

    heard_fn = named_handler(studio, on_heard, [f"{c.key}_audio" for c in studio.codecs], True)
    gr.on(
        [run.click, audio_in.upload, audio_in.stop_recording],
        named_handler(studio, on_reconstruct, ["audio", *names], progress=True),
        [audio_in, *widgets],
        all_out,
        api_name="reconstruct",
    ).success(heard_fn, *judged, api_name="reconstruct_judge")
    example.input(
        named_handler(studio, on_example, ["example", *names], progress=True),
        [example, *widgets],
        [audio_in, *all_out],
        api_name="load_example",
    ).success(heard_fn, *judged, api_name="load_example_judge")
    for (c, name), widget in zip(ctl, widgets):

        def on_setting(audio, *values, key=c.key):
            return set_setting(studio, key, audio, *values)

        event = widget.release if c.setting.kind == "window" else widget.input
        event(
            named_handler(studio, on_setting, ["audio", *names]),
            [audio_in, *widgets],
            [*columns[c.key], table],
            api_name=f"set_{name}",
        ).success(heard_fn, *judged, api_name=f"set_{name}_judge")
    return audio_in, table, widgets
