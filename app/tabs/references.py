"""The reference codecs on the Reconstruct tab: Opus and Codec2 next to the learned codecs.

They sit in their own section under the learned codecs' columns, behind one checkbox
("reference codecs (Opus, Codec2)", off by default: measured with bench/bench_app.py on a
loaded 2-core CPU, the section adds about half again to a new 5 s clip's reconstruction, most of
it the mel distance of each column): a radio per codec for its bitrate (Opus 6 / 12 kbps,
Codec2 700C / 1200 / 3200), a table (bitrate measured from what the codec produced, beside the
nominal one; mel distance; SI-SDR) and a column per codec (player, caption, spectrogram). They
have no latents, so no codebook usage or token timeline.

One event, `reconstruct_references`, fills the section. It runs after every change of the
learned codecs' comparison table (so after `reconstruct`, `load_example` and every setting
move, leaving those events and their API as they were), when the checkbox changes and when a
reference codec's radio moves. With the box unticked it only hides the section. Columns are
cached by (clip hash, codec key, bitrate), as the learned codecs' are.

API parameter names: `audio`, `show_references`, then `<key>_kbps` per reference codec
(`opus_kbps`, `codec2_kbps`; Codec2 also takes its mode names, "700C").
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import gradio as gr
import torch

from analysis.models import LoadedCodec
from app.clips import Clip, audio_path, load_clip, write_wav
from app.errors import UserInputError
from app.figures import PlotData, spectrogram_figure
from app.janitor import refreshed
from app.state import Studio
from app.tabs.reconstruct import quality
from app.tabs.widgets import named_handler, setting_radio

TOGGLE_LABEL = "reference codecs (Opus, Codec2)"
SHOWN_BY_DEFAULT = False  # they cost more than the page's latency budget allows
TABLE_HEADERS = [
    "codec",
    "setting",
    "kbps (measured)",
    "kbps (nominal)",
    "mel distance",
    "SI-SDR (dB)",
]


@dataclass
class ReferenceColumn:
    """One reference codec's outputs for one clip and bitrate."""

    audio: str
    info: str
    spectrogram: PlotData
    row: list[Any]

    def outputs(self) -> list[Any]:
        return [self.audio, self.info, self.spectrogram]


def _caption(label: str, setting: str, measured: float, nominal: float, rate: float) -> str:
    return (
        f"**{label}** ({setting}): **{measured / 1000:.3f} kbps** measured from what it "
        f"produced (nominal {nominal / 1000:g} kbps), {rate:g} packets/s"
    )


def reference_column(
    studio: Studio, clip: Clip, entry: LoadedCodec, value: float | None
) -> ReferenceColumn:
    """One reference codec at bitrate `value` (cached per clip, codec and bitrate); the
    bitrate is applied under the codec's lock for the round trip."""

    def compute() -> ReferenceColumn:
        codec = entry.codec
        with codec.use_setting(value), torch.inference_mode():
            out = codec.reconstruct_measured(clip.wav[None])
            packets = codec.frame_rate()
        recon = out.wav[0]
        setting = entry.setting.label(value)
        mel, sdr = quality(recon, clip)
        tag = setting.replace(" ", "").replace(".", "p")
        path = write_wav(studio.out_dir, f"{clip.key}_{entry.key}_{tag}", recon)
        return ReferenceColumn(
            audio=path,
            info=_caption(entry.label, setting, out.bitrate, out.nominal, packets)
            + f"  \nmel distance **{mel:.3f}** (lower is better), SI-SDR **{sdr:.2f} dB**",
            spectrogram=spectrogram_figure(recon, f"{entry.label} ({setting})"),
            row=[
                entry.label,
                setting,
                round(out.bitrate / 1000, 3),
                round(out.nominal / 1000, 3),
                round(mel, 3),
                round(sdr, 2),
            ],
        )

    return studio.results.get_or_compute(
        (clip.key, entry.key, value), compute, lambda column: refreshed(column.audio)
    )


def check_values(studio: Studio, values: Any) -> list[float | None]:
    """The reference codecs' bitrates from the radios/API, checked (names accepted)."""
    values = list(values)
    if len(values) != len(studio.references):
        names = [f"{c.key}_kbps" for c in studio.references]
        raise UserInputError(f"expected {len(names)} reference settings ({names})")
    out = []
    for entry, value in zip(studio.references, values):
        try:
            out.append(entry.setting.check(value))
        except ValueError as e:  # "bandwidth" is Opus's audio band: call it the bitrate
            raise UserInputError(
                f"{entry.label} {str(e).replace('bandwidth', 'bitrate', 1)}"
            ) from None
    return out


def reconstruct_references(studio: Studio, audio: Any, show: Any, *values: Any) -> list[Any]:
    """The section's visibility, then per reference codec its player, caption and spectrogram,
    then the table. Unticked (or no clip yet): only the visibility changes."""
    shown = bool(show) and bool(studio.references)
    n_out = 3 * len(studio.references) + 1
    if not shown or audio_path(audio) is None:
        return [gr.update(visible=shown), *(gr.skip() for _ in range(n_out))]
    settings = check_values(studio, values)
    clip = load_clip(audio, studio.config.max_seconds)
    columns = [reference_column(studio, clip, c, v) for c, v in zip(studio.references, settings)]
    return [gr.update(visible=True), *(x for c in columns for x in c.outputs()),
            [c.row for c in columns]]  # fmt: skip


def build(
    studio: Studio, audio_in: gr.Audio, table: gr.Dataframe
) -> tuple[list[gr.components.Component], gr.Dataframe | None]:
    """Lay out the section under the learned codecs' columns and wire its event: it follows
    every change of their comparison `table` (inside the Reconstruct tab's context). Returns
    its checkbox and bitrate radios, and its table (nothing without reference codecs)."""
    if not studio.references:
        return [], None
    names = ", ".join(c.label for c in studio.references)
    show = gr.Checkbox(
        value=SHOWN_BY_DEFAULT,
        label=TOGGLE_LABEL,
        info=f"{names}: classical codecs a user would pick instead, for comparison. They "
        "reconstruct but have no latents (so no map, traversal or transfer).",
        elem_id="show_references",
    )
    with gr.Column(visible=SHOWN_BY_DEFAULT, elem_id="references") as section:
        with gr.Row():
            radios = [
                setting_radio(
                    c.setting, "bitrate", label=f"{c.label} bitrate (kbps)", elem_id=f"{c.key}_kbps"
                )
                for c in studio.references
            ]
        ref_table = gr.Dataframe(
            headers=TABLE_HEADERS,
            label="Reference codecs (bitrate measured from what each produced)",
            interactive=False,
            elem_id="reference_table",
        )
        outputs: list[gr.components.Component] = []
        with gr.Row(equal_height=False):
            for c in studio.references:
                with gr.Column():
                    outputs += [
                        gr.Audio(label=f"{c.label} reconstruction", type="filepath",
                                 interactive=False, elem_id=f"{c.key}_audio"),
                        gr.Markdown(elem_id=f"{c.key}_info"),
                        gr.Plot(label=f"{c.label} spectrogram", elem_id=f"{c.key}_spec"),
                    ]  # fmt: skip

    def on_references(audio, show, *values):
        return reconstruct_references(studio, audio, show, *values)

    params = ["audio", "show_references", *(f"{c.key}_kbps" for c in studio.references)]
    gr.on(
        [table.change, show.change, *(r.input for r in radios)],
        named_handler(studio, on_references, params),
        [audio_in, show, *radios],
        [section, *outputs, ref_table],
        api_name="reconstruct_references",
    )
    return [show, *radios], ref_table
