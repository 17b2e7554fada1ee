"""The app's judge wiring (app/judging.py): verdicts read from the files a tab produced."""

from __future__ import annotations

import asyncio
import inspect
import zipfile
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from analysis.export import export_audio
from app.judging import judge_loader, reconstruct_verdicts, transfer_verdicts, traversal_strip
from codec.audio import load_audio
from tests.tiny_models import timbre_dataset

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def studio(tmp_path_factory: pytest.TempPathFactory) -> SimpleNamespace:
    base = tmp_path_factory.mktemp("japp")
    root = timbre_dataset(base / "gs", ("flute", "cello", "clarinet"), tuple(range(48, 73, 3)))
    config = SimpleNamespace(dataset_root=root, cache_dir=base / "cache" / "latents",
                             max_seconds=30.0)  # fmt: skip
    s = SimpleNamespace(config=config)
    judge_loader(s).start()  # as the tabs do at build time
    return s


def _note(studio: SimpleNamespace, instrument: str) -> Path:
    from analysis.metrics.judge import judge_split

    return next(it.path for it in judge_split(studio.config.dataset_root)[1]
                if it.instrument == instrument)  # fmt: skip


def test_reconstruct_and_transfer_verdicts(studio: SimpleNamespace) -> None:
    flute, cello = _note(studio, "flute"), _note(studio, "cello")
    calls = []
    caps = reconstruct_verdicts(studio, str(flute), None, {"path": str(cello)},
                                progress=lambda f, desc: calls.append(desc))  # fmt: skip
    assert caps[0].startswith("**recognised as: flute ") and caps[1] == ""
    assert caps[2].startswith("**recognised as: cello ")
    assert (studio.config.cache_dir.parent / "judge").is_dir()
    text = transfer_verdicts(studio, ["ALM", "EnCodec"], str(cello), str(flute), None, None)
    assert text.startswith("- **ALM**: sounds like: flute ") and "(before: cello " in text
    assert "pitch " in text and "EnCodec" not in text  # a codec without players is left out


def test_traversal_strip_reads_steps_and_glides(studio: SimpleNamespace, tmp_path: Path) -> None:
    cello = load_audio(_note(studio, "cello"))
    flute = load_audio(_note(studio, "flute"))
    exp = export_audio(
        {"alm_w6": {"step_00": cello, "step_01": flute, "glide": torch.cat([cello, flute], -1)},
         "encodec": {"glide": torch.cat([cello, flute], -1)}},
        tmp_path, "trav",
    )  # fmt: skip
    with zipfile.ZipFile(exp.zip_path, "a") as zf:  # members outside the pattern are ignored
        zf.writestr("../evil.wav", b"not audio")
    fig = traversal_strip(studio, str(exp.zip_path))
    heatmaps = [d for d in fig.data if d.type == "heatmap"]
    assert len(heatmaps) == 2
    steps, glide = heatmaps
    assert list(steps.x) == ["step 0", "step 1"] and len(glide.x) == 4  # 0.25 s slices
    ticks = fig.layout.xaxis.ticktext  # the winner under each column: cello, then flute
    assert "cello" in ticks[0] and "flute" in ticks[1]
    ticks = fig.layout.xaxis2.ticktext  # the glide: its first slice cello, its last flute
    assert "cello" in ticks[0] and "flute" in ticks[-1]
    assert traversal_strip(studio, None) is None


def _call(fn, *args, **kwargs):
    """A handler as Gradio calls it: heavy handlers are coroutines (they wait in the gate)."""
    out = fn(*args, **kwargs)
    return asyncio.run(out) if inspect.iscoroutine(out) else out


def _traces(fig) -> list[dict]:
    """The traces of a figure, a plotly Figure or its plain JSON (what the app sends)."""
    return list(fig["data"]) if isinstance(fig, dict) else [t.to_plotly_json() for t in fig.data]


def test_tabs_chain_the_judge_after_their_outputs(assets) -> None:
    """The page wires the judge as chained events after reconstruct / transfer / traverse,
    reading those events' own outputs; the tabs' API parameters stay as they were."""
    from app.cli import create_app
    from app.tabs.timbre import transfer
    from app.tabs.traversal import traverse_both

    studio, demo = create_app(assets.config(warmup=False))
    fns = {f.api_name: f for f in demo.fns.values()}
    pairs = [("reconstruct", "reconstruct_judge"), ("load_example", "load_example_judge"),
             ("transfer", "transfer_judge"), ("traverse", "traverse_judge")]  # fmt: skip
    for main, judged in [*pairs, ("set_window", "set_window_judge")]:
        assert judged in fns, sorted(fns)
        src = {b._id for b in fns[main].outputs}
        ins = {b._id for b in fns[judged].inputs}
        # it reads the tab's outputs (a setting event renews one codec's player, the judge
        # hears them all)
        assert ins <= src if (main, judged) in pairs else ins & src, judged
    # the chained handlers on real outputs of the tab functions
    out = transfer(studio, str(assets.clip), "cello", "A3", 1.0, 4)
    n = 2 * len(studio.codecs)
    text = _call(fns["transfer_judge"].fn, *out[:n], progress=None)
    assert text.count("sounds like: ") == len(studio.codecs) and "(before: " in text
    players, zip_path, _ = out[:n], out[n], out[n + 1]
    assert zip_path.endswith(".zip")
    trav = traverse_both(studio, ["bass A3", "clarinet A6"], None, "steps", 3, "linear", 4)
    fig = _call(fns["traverse_judge"].fn, trav[len(studio.codecs)], progress=None)
    assert len([d for d in _traces(fig) if d["type"] == "heatmap"]) == len(studio.codecs)
    caps = _call(fns["reconstruct_judge"].fn, *players[1::2], progress=None)
    assert len(caps) == len(studio.codecs) and all(c.startswith("**recognised as: ") for c in caps)
