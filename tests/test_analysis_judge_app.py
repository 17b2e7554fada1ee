"""The app's judge wiring (app/judging.py): verdicts read from the files a tab produced."""

from __future__ import annotations

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
    from analysis.judge import judge_split

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
