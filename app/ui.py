"""The Gradio Blocks page: banner, model summary and the five tabs.

`build_demo(studio)` only lays out components and wires events; every handler lives in its
tab module (`app/tabs/*.py`) and reaches models through `analysis` / the Codec interface. Each
tab lays out one column (or player, or panel) per codec of `studio.codecs`.
"""

from __future__ import annotations

import logging
from typing import Any

import gradio as gr

from app.config import GRADIO_CACHE_SECONDS
from app.state import Studio, shown_path, weights_source
from app.tabs import (
    continuation,
    field_measures,
    latent_map,
    reconstruct,
    references,
    timbre,
    traversal,
)
from app.tabs.latent_map import CLICK_JS

log = logging.getLogger(__name__)

TITLE = "ALMTokenizer Studio"
CSS = """
#banner { border: 2px solid #d97706; border-radius: 8px; padding: 4px 12px; background: #fffbeb; }
#warmup_status { font-size: 0.9em; color: #475569; }
"""
JS = CLICK_JS  # runs once on page load (gr.Blocks.launch(js=...))


def summary_markdown(studio: Studio) -> str:
    """One paragraph: what is loaded."""
    w = studio.config.window
    parts = []
    for c in studio.codecs:
        value = w if c.setting.kind == "window" else c.setting.default
        with c.codec.use_setting(value) as window:
            rate, kbps = c.codec.frame_rate(window), c.codec.bitrate(window) / 1000
            n_q, k = c.codec.num_codebooks, c.codec.codebook_size
        parts.append(
            f"**{c.label}** ({weights_source(c)}): {rate:.2f} tokens/s at "
            f"{c.setting.label(value)}, {n_q} x {k} codebooks, {kbps:.3f} kbps."
        )
    if studio.references:
        refs = "; ".join(
            f"{c.label}, {' / '.join(c.setting.label(v) for v in c.setting.choices)} "
            f"({weights_source(c)})"
            for c in studio.references
        )
        parts.append(
            f"**Reference codecs** (Reconstruct tab; they reconstruct but have no latents): {refs}."
        )
    parts.append(
        f"**Dataset**: {shown_path(studio.config.dataset_root)} ({len(studio.items)} clips, "
        f"{len(studio.instruments)} instruments)."
    )
    return " ".join(parts)


def banner_markdown(studio: Studio) -> str:
    return "\n".join(f"**Warning:** {n}  " for n in studio.notices)


def warm_tabs(studio: Studio) -> None:
    """Run the Reconstruct tab once on the first bundled example (plots, metrics and that
    example's results are then warm)."""
    examples = studio.examples()
    if not examples:
        return
    try:
        first = examples[0]
        values = reconstruct.default_values(studio)
        reconstruct.reconstruct(studio, str(first.path), *values, name=first.label)
    except Exception:
        log.exception("warm-up of the Reconstruct tab failed")


def warmup_status(studio: Studio) -> tuple[str, Any]:
    """The status line and the timer's update (stopped once the warm-up finished)."""
    st = studio.warmup_status
    return st.markdown(), gr.Timer(active=st.state in ("idle", "running"))


def build_demo(studio: Studio) -> gr.Blocks:
    """The whole page: title, banner, what is loaded, the warm-up status and the five tabs."""
    cache = (GRADIO_CACHE_SECONDS, GRADIO_CACHE_SECONDS)
    labels = ", ".join(c.label for c in studio.codecs)
    with gr.Blocks(title=TITLE, analytics_enabled=False, delete_cache=cache) as demo:
        refs = ", ".join(c.label for c in studio.references)
        gr.Markdown(
            f"# {TITLE}\nALMTokenizer (arXiv 2504.10344) side by side: {labels}."
            + (f" Reference codecs on the Reconstruct tab: {refs}." if refs else "")
        )
        gr.Markdown(banner_markdown(studio), visible=bool(studio.notices), elem_id="banner")
        gr.Markdown(summary_markdown(studio), elem_id="summary")
        status = gr.Markdown(studio.warmup_status.markdown(), elem_id="warmup_status")
        timer = gr.Timer(1.0, active=studio.warmup_status.state in ("idle", "running"))
        timer.tick(
            lambda: warmup_status(studio), None, [status, timer], api_name="warmup_status",
            show_progress="hidden", queue=False,
        )  # fmt: skip
        with gr.Tabs():
            with gr.Tab("Reconstruct", id="reconstruct", elem_id="tab_reconstruct"):
                audio_in, table, widgets = reconstruct.build(studio)
                ref_inputs, ref_table = references.build(studio, audio_in, table)
                tables = [table] if ref_table is None else [table, ref_table]
                field_measures.build(
                    studio, audio_in, widgets, [t.change for t in tables], ref_inputs
                )
            with gr.Tab("Latent map", id="latent_map", elem_id="tab_latent_map") as map_tab:
                latent_map.build(studio, map_tab)
            with gr.Tab("Traversal", id="traversal", elem_id="tab_traversal"):
                traversal.build(studio)
            with gr.Tab("Timbre transfer", id="timbre", elem_id="tab_timbre"):
                timbre.build(studio)
            with gr.Tab("Continue", id="continue", elem_id="tab_continue"):
                continuation.build(studio)
    return demo
