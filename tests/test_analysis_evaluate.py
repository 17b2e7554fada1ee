"""Evaluation: settings per codec, report files, held-out selection."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import torch

from analysis.dataset import heldout_items, load_items, unseen_sound_ids
from analysis.evaluate import evaluate_codecs, settings_for
from codec.data import list_items
from tests.test_analysis_helpers import timbre_dataset, tiny_alm, tiny_encodec

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def items(tmp_path_factory: pytest.TempPathFactory) -> list:
    root = timbre_dataset(
        tmp_path_factory.mktemp("gs"), ("flute", "cello", "bass"), (48, 57, 60, 64, 69)
    )
    return load_items(root)


def test_settings_per_codec() -> None:
    assert [s.label for s in settings_for(tiny_alm())] == [f"w={w}" for w in range(2, 11)]
    assert [s.label for s in settings_for(tiny_encodec(), bandwidths=(1.5, 3.0))] == [
        "1.5 kbps",
        "3 kbps",
    ]


def test_heldout_selection(items: list) -> None:
    ids = [items[0].sound_id, items[7].sound_id]
    assert [it.sound_id for it in heldout_items(items, ids)] == ids
    split = heldout_items(items, split_seed=3)
    assert 0 < len(split) < len(items)
    assert {it.instrument for it in split} == {"flute", "cello", "bass"}  # stratified
    assert heldout_items(items, split_seed=3) == split
    with pytest.raises(ValueError, match="none of"):
        heldout_items(items, [999])
    root = items[0].path.parents[3]
    unseen = unseen_sound_ids(root)
    trained = {it.sound_id for it in list_items("goodsounds", root, "train")}
    assert unseen and set(unseen) <= {it.sound_id for it in items}
    assert not set(unseen) & trained


def test_evaluate_writes_report(items: list, tmp_path: Path) -> None:
    alm, enc = tiny_alm(), tiny_encodec()
    rep = evaluate_codecs(
        [alm, enc], items, tmp_path, split_seed=0, windows=(2, 10), bandwidths=(1.5, 3.0),
        probe_window=4, max_clips=2, cache_dir=tmp_path / "cache", progress=False,
    )  # fmt: skip
    held = {it.sound_id for it in heldout_items(items, split_seed=0)}
    assert len(rep.heldout_sound_ids) == 2 and set(rep.heldout_sound_ids) <= held
    assert enc.bandwidth == 1.5  # restored after the 3 kbps pass
    assert [(r.codec, r.setting) for r in rep.rows] == [
        ("almtokenizer", "w=2"),
        ("almtokenizer", "w=10"),
        ("encodec", "1.5 kbps"),
        ("encodec", "3 kbps"),
    ]
    by = {r.setting: r for r in rep.rows}
    assert by["w=2"].bitrate == pytest.approx(5 * by["w=10"].bitrate)
    assert by["w=2"].tokens_per_second == 25 and by["3 kbps"].bitrate == pytest.approx(3000)
    assert all(r.n_clips == 2 for r in rep.rows)
    only = evaluate_codecs([enc], items, None, [items[3].sound_id], bandwidths=(1.5,), probe=False)
    assert only.heldout_sound_ids == [items[3].sound_id] and only.probes == {} and only.files == {}
    for r in rep.rows:
        assert r.mel_distance > 0 and r.si_sdr == r.si_sdr  # finite numbers, not NaN
    assert set(rep.probes) == {"almtokenizer", "encodec"}
    assert set(rep.probes["encodec"]) == {"instrument", "note", "octave"}

    files = rep.files
    assert set(files) == {"csv", "json", "md", "png", "html"}
    rows = list(csv.DictReader(files["csv"].open()))
    assert len(rows) == 4 and float(rows[0]["bitrate"]) == pytest.approx(by["w=2"].bitrate)
    data = json.loads(files["json"].read_text())
    assert data["rows"][3]["setting"] == "3 kbps" and "instrument" in data["probes"]["almtokenizer"]
    assert all(r["pesq"] is None for r in data["rows"])  # no speech clips: PESQ undefined
    md = files["md"].read_text()
    assert "| almtokenizer | w=10 |" in md and "Semantic probe: encodec" in md
    assert files["png"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "plotly" in files["html"].read_text()[:5000].lower()
