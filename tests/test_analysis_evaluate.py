"""Evaluation: settings per codec, report files, held-out selection."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import pytest
import torch

from analysis.dataset import heldout_items, load_items, unseen_sound_ids
from analysis.evaluate import evaluate_codecs, settings_for
from codec.data import list_items
from tests.tiny_models import timbre_dataset, tiny_alm, tiny_encodec

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def items(tmp_path_factory: pytest.TempPathFactory) -> list:
    # 1.2 s notes: ViSQOL needs about 1 s
    root = timbre_dataset(
        tmp_path_factory.mktemp("gs"), ("flute", "cello", "bass"), (48, 57, 60, 64, 69), seconds=1.2
    )
    return load_items(root)


def test_settings_per_codec() -> None:
    assert [s.label for s in settings_for(tiny_alm())] == [f"w={w}" for w in range(2, 11)]
    assert [s.label for s in settings_for(tiny_encodec(), bandwidths=(1.5, 3.0))] == [
        "1.5 kbps",
        "3 kbps",
    ]


def test_bandwidths_follow_the_checkpoint_and_refuse_others(
    items: list, monkeypatch: pytest.MonkeyPatch
) -> None:
    """By default EnCodec runs at each bandwidth its checkpoint offers up to 6 kbps: 0.75 where
    its config lists it, the official model's 1.5 / 3 / 6 (not 12, 24); a requested bandwidth
    it does not offer is an error naming the value and the offered ones, before any work."""
    from codec.models.encodec import EnCodecCodec, EnCodecConfig
    from tests.tiny_models import TINY_ENCODEC

    torch.manual_seed(0)
    four = EnCodecCodec({**TINY_ENCODEC, "n_q": 8, "target_bandwidths": [0.75, 1.5, 3.0, 6.0],
                         "train_bandwidths": [0.75, 1.5, 3.0, 6.0]})  # fmt: skip
    assert [s.label for s in settings_for(four)] == ["0.75 kbps", "1.5 kbps", "3 kbps", "6 kbps"]
    assert [s.bandwidth for s in settings_for(tiny_encodec())] == [1.5, 3.0]
    official = EnCodecCodec(EnCodecConfig())
    assert [s.bandwidth for s in settings_for(official)] == [1.5, 3.0, 6.0]
    assert [s.bandwidth for s in settings_for(official, bandwidths=[24.0])] == [24.0]
    with pytest.raises(ValueError, match=r"^encodec does not offer 0\.75 kbps: its checkpoint "
                       r"offers 1\.5, 3 kbps$"):  # fmt: skip
        settings_for(tiny_encodec(), bandwidths=(0.75, 1.5))
    import analysis.evaluate as ev

    def no_work(*args: object, **kwargs: object) -> None:
        raise AssertionError("clips loaded before the bandwidths were checked")

    monkeypatch.setattr(ev, "load_clips", no_work)
    with pytest.raises(ValueError, match=r"^ours does not offer 0\.75, 6 kbps: its checkpoint"):
        evaluate_codecs([four, tiny_encodec()], items, None, split_seed=0, bandwidths=(0.75, 6.0),
                        probe=False, labels=["four", "ours"], progress=False)  # fmt: skip


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
        ("clean", "original"),
        ("almtokenizer", "w=2"),
        ("almtokenizer", "w=10"),
        ("encodec", "1.5 kbps"),
        ("encodec", "3 kbps"),
    ]
    by = {r.setting: r for r in rep.rows}
    assert by["w=2"].bitrate == pytest.approx(5 * by["w=10"].bitrate)
    assert by["w=2"].tokens_per_second == alm.frame_rate(2) == alm.frame_rate(1) / 2
    assert by["3 kbps"].bitrate == pytest.approx(3000)
    assert all(r.n_clips == 2 for r in rep.rows)
    only = evaluate_codecs([enc], items, None, [items[3].sound_id], bandwidths=(1.5,), probe=False)
    assert only.heldout_sound_ids == [items[3].sound_id] and only.probes == {} and only.files == {}
    clean, coded = rep.rows[0], rep.rows[1:]
    # the clean originals against themselves: every measure's ceiling
    assert clean.visqol >= 4.5 and clean.pitch_accuracy == 1.0 and clean.f0_rmse_cents < 1.0
    assert math.isnan(clean.bitrate) and clean.mel_distance == pytest.approx(0.0, abs=1e-6)
    for r in coded:
        assert r.mel_distance > 0 and r.si_sdr == r.si_sdr  # finite numbers, not NaN
        assert 1.0 <= r.visqol < clean.visqol and r.n_visqol == 2
        assert 0.0 <= r.pitch_accuracy <= 1.0 and math.isnan(r.dnsmos_ovrl)  # no speech clips
    assert set(rep.probes) == {"almtokenizer", "encodec"}
    assert set(rep.probes["encodec"]) == {"instrument", "note", "octave"}

    files = rep.files
    assert set(files) == {
        "csv", "json", "md", "png", "html", "rate_quality_png", "rate_quality_html",
    }  # fmt: skip
    rows = list(csv.DictReader(files["csv"].open()))
    assert len(rows) == 5 and float(rows[1]["bitrate"]) == pytest.approx(by["w=2"].bitrate)
    assert {"visqol", "dnsmos_ovrl", "f0_rmse_cents", "pitch_accuracy"} <= set(rows[0])
    data = json.loads(files["json"].read_text())
    assert data["rows"][4]["setting"] == "3 kbps" and "instrument" in data["probes"]["almtokenizer"]
    assert all(r["pesq"] is None for r in data["rows"])  # no speech clips: PESQ undefined
    md = files["md"].read_text()
    assert "| almtokenizer | w=10 |" in md and "Semantic probe: encodec" in md
    assert files["png"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "plotly" in files["html"].read_text()[:5000].lower()


def test_two_codecs_of_one_backend_keep_their_labels(items: list, tmp_path: Path) -> None:
    """Our EnCodec next to the official one: rows and probes are named by label, not by the
    backend name both share."""
    ours, other = tiny_encodec(), tiny_encodec()
    rep = evaluate_codecs(
        [ours, other], items, None, split_seed=0, bandwidths=(1.5,), probe_window=4,
        max_clips=1, cache_dir=tmp_path / "cache", progress=False,
        labels=["encodec", "encodec_official"],
    )  # fmt: skip
    assert [r.codec for r in rep.rows] == ["clean", "encodec", "encodec_official"]
    assert set(rep.probes) == {"encodec", "encodec_official"}
    with pytest.raises(ValueError, match="distinct label"):
        evaluate_codecs([ours, other], items, None, split_seed=0, probe=False)


def test_evaluate_with_the_audio_judge(items: list, tmp_path: Path) -> None:
    from analysis.metrics.judge import fit_judge, judge_label

    held = heldout_items(items, split_seed=0)
    held_ids = {it.sound_id for it in held}
    judge = fit_judge([it for it in items if it.sound_id not in held_ids], seed=0)
    alm, enc = tiny_alm(), tiny_encodec()
    rep = evaluate_codecs(
        [alm, enc], items, tmp_path, split_seed=0, windows=(4,), bandwidths=(1.5,),
        probe=False, max_clips=2, cache_dir=tmp_path / "cache", progress=False, judge=judge,
        transfer_clips=2, transfer_methods=("mean", "pitch_adain"), transfer_alphas=(1.0,),
    )  # fmt: skip
    for r in rep.rows:
        assert 0.0 <= r.recognised_as_source <= 1.0
    assert rep.judge["n_train"] == len(items) - len(held) and "cv_accuracy" in rep.judge
    sources = {t.source for t in rep.transfer_rows}
    assert len(sources) == 2
    # every other instrument, both methods, both codecs; the ALMTokenizer's tokens re-quantized
    assert len(rep.transfer_rows) == 2 * 2 * 2 * 2
    assert all(t.quantized == (t.codec == "almtokenizer") for t in rep.transfer_rows)
    assert all(t.target != t.source_label for t in rep.transfer_rows)
    assert {(s.codec, s.method) for s in rep.transfers} == {
        (c, m) for c in ("almtokenizer", "encodec") for m in ("mean", "pitch_adain")
    }
    for t in rep.transfer_rows:
        assert t.recognised == (t.heard == t.target) and 0.0 <= t.p_target <= 1.0
        assert math.isfinite(t.loudness_change_db)
    md = rep.files["md"].read_text()
    assert md.startswith("## Heard by the audio judge")
    assert md.index("Heard by the audio judge") < md.index("Reconstruction quality")
    assert "recognised as source" in md and "| encodec | continuous | pitch_adain | 1 |" in md
    rows = list(csv.DictReader(rep.files["transfers_csv"].open()))
    assert len(rows) == 16 and {"heard", "pitch_kept", "loudness_change_db"} <= set(rows[0])
    data = json.loads(rep.files["json"].read_text())
    assert len(data["transfers"]) == 4 and data["judge"]["classes"] == list(judge.classes)
    assert {judge_label(it) for it in items} == set(judge.classes)
