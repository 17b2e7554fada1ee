"""Continue tab: each codec's token LM carries on a clip, side by side.

The first `prompt_seconds` of the clip are encoded by each codec that has a token LM (app/lms.py
pairs them at start-up), continued by `seconds` of sampled codes and decoded
(`analysis.continuation.continue_clip`: the prompt is cropped to whole token frames, the codec
runs at its LM's window or bandwidth). Each such codec gets a column: its player (prompt +
continuation), a caption, its spectrogram and its token timeline (the codes `[n_q, T]`), both
with the prompt/continuation boundary marked. A codec without an LM shows one line saying so
and how to give one; the reference codecs (no tokens) are left out with one line. Every wav is
downloadable from its player, and all of them as one zip.

One event, `continue`, through the request gate; API parameter names: `audio`,
`prompt_seconds`, `seconds` (generated, at most `--max-seconds`), `temperature`, `top_k`,
`seed`. Bad settings or clips raise the messages of `analysis.continuation` (as `gr.Error`).
Continuations are cached by (clip hash, codec, LM, settings): sampling is seeded, so a repeated
click returns the same audio.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gradio as gr

from analysis.continuation import ClipError, Continuation, check_settings, continue_clip
from analysis.continuation_lms import CodecLM
from analysis.export import export_audio, safe_name
from app.clips import Clip, load_clip
from app.figures import PlotData, mark_boundary, spectrogram_figure, token_timeline_figure
from app.lineup import shown_path
from app.state import Studio
from app.tabs.reconstruct import example_path
from app.tabs.widgets import studio_handler
from codec.tokenizer.stats import token_timeline

PARAMS = ("audio", "prompt_seconds", "seconds", "temperature", "top_k", "seed")
DEFAULTS = {"prompt_seconds": 1.0, "seconds": 3.0, "temperature": 1.0, "top_k": 50, "seed": 0}


@dataclass
class ContinueColumn:
    """One codec's continuation of one clip, ready for the page."""

    audio: str
    info: str
    spectrogram: PlotData
    timeline: PlotData
    result: Continuation

    def outputs(self) -> list[Any]:
        return [self.audio, self.info, self.spectrogram, self.timeline]


def default_values(studio: Studio) -> list[float | int]:
    """prompt_seconds, seconds, temperature, top_k, seed as the tab starts (the generated
    seconds within `--max-seconds`)."""
    d = {**DEFAULTS, "seconds": min(DEFAULTS["seconds"], studio.config.max_seconds)}
    return [d[name] for name in PARAMS[1:]]


def _whole(value: Any) -> Any:
    """A float that is a whole number as an int (gr.Number and JSON send 50.0 for 50); anything
    else unchanged, for `analysis.continuation` to accept or name."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _number(value: Any) -> Any:
    """An int as a float, else unchanged (None, text: named by the checks)."""
    return float(value) if isinstance(value, int) and not isinstance(value, bool) else value


def check_all(studio: Studio, settings: dict[str, Any]) -> None:
    """Refuse settings out of range for any paired LM before any work (top_k depends on each
    LM's codebook size, so its message names the codec)."""
    for pair in studio.lms.pairs.values():
        try:
            check_settings(pair.lm, max_seconds=studio.config.max_seconds, **settings)
        except ValueError as e:
            raise ValueError(
                f"{pair.codec.label}: {e}" if str(e).startswith("top_k") else e
            ) from None


def _setting_text(result: Continuation) -> str:
    st = result.settings
    if st.window is not None:
        return f"w={st.window}"
    return f"{st.bandwidth:g} kbps" if st.bandwidth is not None else "-"


def continue_one(
    studio: Studio, pair: CodecLM, clip: Clip, settings: dict[str, Any]
) -> Continuation:
    """One codec's continuation of `clip` (cached by clip hash, codec, LM and settings)."""

    def compute() -> Continuation:
        try:
            return continue_clip(pair.codec.codec, pair.lm, clip.wav[None],
                                 max_seconds=studio.config.max_seconds, **settings)  # fmt: skip
        except ClipError:
            raise  # about the clip: the same for every codec
        except ValueError as e:  # frames: the codec's frame rate, its LM's context
            raise ValueError(f"{pair.codec.label}: {e}") from None

    key = (clip.key, pair.key, str(pair.path), "continue", *sorted(settings.items()))
    return studio.results.get_or_compute(key, compute)


def column(pair: CodecLM, result: Continuation, wav_path: str) -> ContinueColumn:
    """The player's file, caption, spectrogram and token timeline of one continuation."""
    label, st, sr = pair.codec.label, result.settings, result.sample_rate
    rate = st.frame_rate
    prompt_s, generated_s = result.boundary_sample / sr, result.continuation.shape[-1] / sr
    k = "every code" if st.top_k is None else str(st.top_k)
    info = (
        f"**{label}** + LM `{shown_path(pair.path)}` ({_setting_text(result)}, {rate:.2f} "
        f"tokens/s x {result.codes.shape[0]} codebooks)  \n"
        f"prompt **{prompt_s:.2f} s** ({st.prompt_frames} frames), generated "
        f"**{generated_s:.2f} s** ({st.generated_frames} frames); temperature {st.temperature:g}, "
        f"top-k {k}, seed {st.seed}"
    )
    spec = spectrogram_figure(result.wav, f"{label}: prompt + continuation")
    # cells centred on the middle of their frame: frame k spans [k, k + 1) / rate
    tl = token_timeline(result.codes, rate, start=0.5 / rate)
    tokens = token_timeline_figure(tl, f"{label}: tokens (codes per codebook)")
    return ContinueColumn(
        audio=wav_path,
        info=info,
        spectrogram=mark_boundary(spec, round(prompt_s, 4)),
        timeline=mark_boundary(tokens, round(result.boundary_frame / rate, 4)),
        result=result,
    )


def _tag(pair: CodecLM, result: Continuation) -> str:
    return pair.key + "_" + _setting_text(result).replace("=", "").replace(" ", "")


def continue_all(
    studio: Studio,
    audio: Any,
    prompt_seconds: Any,
    seconds: Any,
    temperature: Any,
    top_k: Any,
    seed: Any,
    progress: Any = None,
    name: str | None = None,
) -> list[Any]:
    """Every paired codec's column (player, caption, spectrogram, timeline), then the zip of
    every wav and a caption. No paired codec: no columns, no zip, a caption saying so."""
    settings = {"prompt_seconds": _number(prompt_seconds), "seconds": _number(seconds),
                "temperature": _number(temperature), "top_k": _whole(top_k),
                "seed": _whole(seed)}  # fmt: skip
    clip = load_clip(audio, studio.config.max_seconds, name)
    pairs = list(studio.lms.pairs.values())
    if not pairs:
        return [None, no_lm_caption(studio)]
    check_all(studio, settings)
    results = {}
    for i, pair in enumerate(pairs):
        if progress is not None:
            progress(i / len(pairs), desc=f"{pair.codec.label}: generating")
        results[pair.key] = continue_one(studio, pair, clip, settings)
    stem = Path(clip.name).stem
    tracks = {_tag(p, results[p.key]): {f"{stem}_continued": results[p.key].wav[0]} for p in pairs}
    what = f"p{settings['prompt_seconds']:g}s_g{settings['seconds']:g}s_seed{settings['seed']}"
    folder_name = safe_name(f"{stem}_{what}", "continue", max_len=80)
    exported = export_audio(tracks, studio.new_export_folder("continue"), folder_name)
    columns = [column(p, results[p.key], str(f)) for p, f in zip(pairs, exported.files)]
    caption = (
        f"**{clip.name}** ({clip.seconds:.2f} s): its first {settings['prompt_seconds']:g} s "
        f"as each codec's codes, continued by {settings['seconds']:g} s of codes sampled from "
        "the codec's token LM, decoded. Each player plays prompt + continuation; the dashed "
        "line marks where the prompt ends (rounded down to whole token frames)."
    )
    return [*(x for c in columns for x in c.outputs()), str(exported.zip_path), caption]


def no_lm_caption(studio: Studio) -> str:
    return "No codec of the line-up has a token LM, so there is nothing to continue. " + " ".join(
        studio.lms.missing.values()
    )


# --- UI ----------------------------------------------------------------------------------------
def _number_input(label: str, value: float, elem: str, info: str, whole: bool = False) -> gr.Number:
    # no minimum/maximum: out-of-range values reach the handler, which names the problem
    return gr.Number(value=value, label=label, info=info, precision=0 if whole else None,
                     elem_id=f"continue_{elem}")  # fmt: skip


def _reference_note(studio: Studio) -> None:
    if studio.references:
        names = ", ".join(c.label for c in studio.references)
        gr.Markdown(
            f"*{names} left out: reference codecs have no tokens for a token LM to continue.*",
            elem_id="continue_no_tokens",
        )


def _codec_column(studio: Studio, key: str, label: str) -> list[Any]:
    pair = studio.lms.get(key)
    if pair is None:
        gr.Markdown(f"*{studio.lms.missing.get(key, f'{label} has no token LM.')}*",
                    elem_id=f"continue_{key}_no_lm")  # fmt: skip
        return []
    return [
        gr.Audio(label=f"{label}: prompt + continuation", type="filepath", interactive=False,
                 elem_id=f"continue_{key}_audio"),
        gr.Markdown(elem_id=f"continue_{key}_info"),
        gr.Plot(label=f"{label} spectrogram", elem_id=f"continue_{key}_spec"),
        gr.Plot(label=f"{label} token timeline", elem_id=f"continue_{key}_tokens"),
    ]  # fmt: skip


def build(studio: Studio) -> None:
    """Lay out the tab and wire its events (inside a `gr.Blocks` / `gr.Tab` context)."""
    _reference_note(studio)
    values = dict(zip(PARAMS[1:], default_values(studio)))
    max_s = studio.config.max_seconds
    with gr.Row():
        with gr.Column(scale=2):
            audio = gr.Audio(label="Clip (upload, record, or pick an example): its beginning is "
                             "the prompt", sources=["upload", "microphone"], type="filepath",
                             elem_id="continue_audio")  # fmt: skip
            example = gr.Dropdown([s.label for s in studio.examples()], value=None,
                                  label="Bundled example", elem_id="continue_example")  # fmt: skip
        with gr.Column(scale=1):
            inputs = [
                _number_input("Prompt (seconds)", values["prompt_seconds"], "prompt_seconds",
                              "the clip's first seconds, rounded down to whole token frames"),
                _number_input("Generate (seconds)", values["seconds"], "seconds",
                              f"after the prompt; at most {max_s:g} s (--max-seconds)"),
                _number_input("Temperature", values["temperature"], "temperature", "in (0, 10]"),
                _number_input("Top-k", values["top_k"], "top_k",
                              "sample among the k likeliest codes, 1 .. codebook size", True),
                _number_input("Seed", values["seed"], "seed", "same seed, same audio", True),
            ]  # fmt: skip
            run = gr.Button("Continue", variant="primary", elem_id="continue_btn")
    caption = gr.Markdown(elem_id="continue_caption")
    outputs: list[Any] = []
    with gr.Row(equal_height=False):
        for c in studio.codecs:
            with gr.Column():
                outputs += _codec_column(studio, c.key, c.label)
    download = gr.File(label="Download every continuation (zip)", elem_id="continue_zip")

    def on_continue(audio, prompt_seconds, seconds, temperature, top_k, seed,
                    progress=gr.Progress()):  # noqa: B008  # fmt: skip
        return continue_all(studio, audio, prompt_seconds, seconds, temperature, top_k, seed,
                            progress)  # fmt: skip

    def on_example(example):
        return example_path(studio, example)

    run.click(
        studio_handler(studio, on_continue),
        [audio, *inputs],
        [*outputs, download, caption],
        api_name="continue",
    )
    example.input(
        studio_handler(studio, on_example, heavy=False), [example], [audio],
        api_name="continue_example",
    )  # fmt: skip
