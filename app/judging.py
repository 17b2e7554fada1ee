"""The audio judge in the app: what each output sounds like (wiring only).

The judge (`analysis.metrics.judge`, fitted on the dataset's training notes, never on codec output)
is
loaded once per studio in a background thread started when the tabs are built
(`judge_loader(studio).start()`), from the cache next to the latent cache when it was fitted
before. The handlers below read the files a tab has just produced (its players, or its zip) and
are wired as chained events (`.then`), so the tab's own outputs and API never wait for them:

- `reconstruct_verdicts`: "recognised as: flute 0.81, C5" under each codec's player;
- `transfer_verdicts`: per codec "sounds like: cello 0.62 (before: violin 0.71); pitch A3 -> A3";
- `traversal_strip`: the judge's class probabilities along the path (one row per codec).
"""

from __future__ import annotations

import io
import re
import threading
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf
import torch

from analysis.metrics.judge_view import (
    JudgeLoader,
    glide_slices,
    path_probabilities,
    probability_strip,
    recognised_caption,
    transfer_caption,
)
from app.clips import audio_path, load_clip
from app.errors import UserInputError
from codec.models.base import SAMPLE_RATE

_LOADERS: dict[int, JudgeLoader] = {}
_LOCK = threading.Lock()
MAX_ZIP_MEMBERS = 256
MAX_MEMBER_BYTES = 64 << 20
GLIDE_SLICES = 8
MIN_SLICE_SECONDS = 0.25  # the judge needs a few hundred ms to hear an instrument
_MEMBER = re.compile(r"^([\w.-]{1,80})/(step_(\d{1,4})|glide)\.wav$")


def judge_loader(studio: Any) -> JudgeLoader:
    """The studio's judge loader (created once; `start()` it to load in the background)."""
    with _LOCK:
        loader = _LOADERS.get(id(studio))
        if loader is None:
            cache = studio.config.cache_dir
            cache = Path(cache).parent / "judge" if cache is not None else None
            loader = _LOADERS[id(studio)] = JudgeLoader(studio.config.dataset_root, cache)
        return loader


def _judge(studio: Any, progress: Any = None) -> Any:
    def report(fraction: float, desc: str) -> None:
        if progress is not None:
            progress(fraction, desc=desc)

    return judge_loader(studio).get(report)


def _unavailable(studio: Any) -> str:
    return f"_{judge_loader(studio).status()}_"


def reconstruct_verdicts(studio: Any, *players: Any, progress: Any = None) -> list[str]:
    """One caption per codec player: what the judge recognises in the reconstruction."""
    judge = _judge(studio, progress)
    out = []
    for value in players:
        if judge is None:
            out.append(_unavailable(studio))
        elif audio_path(value) is None:
            out.append("")
        else:
            clip = load_clip(value, studio.config.max_seconds)
            out.append(f"**{recognised_caption(judge.hear(clip.wav))}**")
    return out


def transfer_verdicts(studio: Any, labels: list[str], *players: Any, progress: Any = None) -> str:
    """Markdown lines, one per codec, from the (before, after) player pairs in order."""
    judge = _judge(studio, progress)
    if judge is None:
        return _unavailable(studio)
    lines = []
    for label, before, after in zip(labels, players[0::2], players[1::2]):
        if audio_path(before) is None or audio_path(after) is None:
            continue
        vb = judge.hear(load_clip(before, studio.config.max_seconds).wav)
        va = judge.hear(load_clip(after, studio.config.max_seconds).wav)
        lines.append(f"- **{label}**: {transfer_caption(vb, va)}")
    return "\n".join(lines)


def _zip_tracks(value: Any) -> dict[str, list[tuple[str, torch.Tensor]]]:
    """{codec tag: [(column, wav)]} from a traversal zip: its steps in order, or its glide cut
    into up to GLIDE_SLICES parts of at least MIN_SLICE_SECONDS. Only `<tag>/step_NN.wav` and
    `<tag>/glide.wav` members are read, with bounded count and size."""
    path = audio_path(value)
    if path is None:
        return {}
    steps: dict[str, list[tuple[int, torch.Tensor]]] = {}
    glides: dict[str, torch.Tensor] = {}
    if not zipfile.is_zipfile(path):
        raise UserInputError(
            f"'{Path(path).name}' is not a traversal zip (the Traversal tab's download)"
        )
    with zipfile.ZipFile(path) as zf:
        infos = [i for i in zf.infolist() if _MEMBER.match(i.filename)][:MAX_ZIP_MEMBERS]
        for info in infos:
            if info.file_size > MAX_MEMBER_BYTES:
                continue
            m = _MEMBER.match(info.filename)
            assert m is not None
            data, sr = sf.read(io.BytesIO(zf.read(info)), dtype="float32", always_2d=True)
            if sr != SAMPLE_RATE:
                continue
            wav = torch.from_numpy(np.ascontiguousarray(data.mean(1)))
            if m.group(3) is not None:
                steps.setdefault(m.group(1), []).append((int(m.group(3)), wav))
            else:
                glides[m.group(1)] = wav
    out: dict[str, list[tuple[str, torch.Tensor]]] = {}
    for tag in sorted(set(steps) | set(glides)):
        if tag in steps:
            out[tag] = [(f"step {i}", w) for i, w in sorted(steps[tag], key=lambda t: t[0])]
        else:
            fit = int(glides[tag].numel() / (MIN_SLICE_SECONDS * SAMPLE_RATE))
            parts = glide_slices(glides[tag], max(1, min(GLIDE_SLICES, fit)))
            out[tag] = [(f"{k + 1}/{len(parts)}", w) for k, w in enumerate(parts)]
    return out


def traversal_strip(studio: Any, zip_value: Any, progress: Any = None) -> Any:
    """A figure: per codec, the judge's class probabilities at each step (or glide slice)."""
    import plotly.graph_objects as go

    judge = _judge(studio, progress)
    if judge is None:
        return go.Figure(layout={"title": judge_loader(studio).status()})
    tracks = _zip_tracks(zip_value)
    if not tracks:
        return None
    figs = {}
    for tag, cols in tracks.items():
        probs = path_probabilities(judge, [w for _, w in cols])
        figs[tag] = probability_strip(judge, probs, [c for c, _ in cols], title=tag, top=4)
    if len(figs) == 1:
        return next(iter(figs.values()))
    from plotly.subplots import make_subplots

    fig = make_subplots(rows=len(figs), cols=1, subplot_titles=list(figs), vertical_spacing=0.12)
    for row, f in enumerate(figs.values(), start=1):
        hm = f.data[0]
        hm.update(showscale=row == 1)
        fig.add_trace(hm, row=row, col=1)
        winners = [a.text.replace("<br>", " ") for a in f.layout.annotations]
        fig.update_xaxes(ticktext=[f"{x}<br>{w}" for x, w in zip(hm.x, winners)],
                         tickvals=list(hm.x), row=row, col=1)  # fmt: skip
    fig.update_layout(
        title="what the judge hears along the path (winner under each column)",
        height=140 + 190 * len(figs), template="plotly_white",
        margin={"l": 90, "r": 20, "t": 70, "b": 40},
    )  # fmt: skip
    return fig
