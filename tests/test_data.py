"""codec.data: Good-sounds joins and filters, grouped splits, FSD50K, folders, crops, demo set."""

from __future__ import annotations

import logging
import sqlite3

import pytest
import soundfile as sf
import torch
from torch.utils.data import DataLoader

from codec.audio import load_audio
from codec.data import (
    DEMO_ROOT,
    GOODSOUNDS_INSTRUMENTS,
    CropDataset,
    FolderItem,
    FSD50KItem,
    GoodSoundsItem,
    build_dataset,
    crop_or_pad,
    list_audio_files,
    list_items,
    load_fsd50k,
    load_fsd50k_vocabulary,
    load_goodsounds,
    midi_to_note,
    note_to_midi,
    select_items,
    split_by_sound,
)
from tests.fixtures import make_audio_folder, make_fsd50k, make_goodsounds, write_tone


@pytest.fixture
def gs(tmp_path):
    return make_goodsounds(tmp_path / "good-sounds", missing=2)


# ---------------------------------------------------------------- Good-sounds


def test_join_takes_sounds_packs(gs):
    items = load_goodsounds(gs.root, single_notes=False, one_mic_per_sound=False)
    expected = {s["id"]: s for s in gs.sounds}
    assert len(items) == sum(len(s["mics"]) for s in gs.sounds) - len(gs.missing_files)
    for it in items:
        s = expected[it.sound_id]
        assert (it.instrument, it.midi, it.note, it.octave) == (
            s["instrument"], s["midi"], s["note"], s["octave"],
        )  # fmt: skip
        assert it.pack == s["pack"] and it.klass == s["klass"]
        assert it.path == gs.root / s["files"][it.microphone] and it.path.is_file()


def test_instrument_comes_from_the_database_not_folders(gs):
    bass = [it for it in load_goodsounds(gs.root) if it.instrument == "bass"]
    assert bass and all(it.pack.startswith("flute_") for it in bass)  # misleading folder name


def test_single_notes_filter(gs):
    items = load_goodsounds(gs.root, single_notes=True)
    assert {it.sound_id for it in items} == {s["id"] for s in gs.single_notes()}
    assert not any(it.klass.startswith("scale") for it in items)
    assert any(it.klass == "bad-pitch" for it in items)  # bad takes are single notes too
    everything = load_goodsounds(gs.root, single_notes=False)
    assert {it.sound_id for it in everything} == {s["id"] for s in gs.sounds}


def test_one_mic_per_sound_prefers_akg_and_skips_missing(gs, caplog):
    with caplog.at_level(logging.WARNING):
        items = load_goodsounds(gs.root, single_notes=False)
    assert f"skipped {len(gs.missing_files)} takes" in caplog.text
    ids = [it.sound_id for it in items]
    assert len(ids) == len(set(ids)) == len(gs.sounds)
    dropped = {s["id"] for s in gs.sounds[: len(gs.missing_files)]}
    for it in items:
        assert it.microphone == ("neumann" if it.sound_id in dropped else "akg")


def test_microphone_filter(gs):
    items = load_goodsounds(gs.root, microphone="iphone", one_mic_per_sound=False)
    assert items and {it.microphone for it in items} == {"iphone"}
    assert len(items) == len(gs.single_notes())


def test_missing_database_and_tables(tmp_path):
    with pytest.raises(FileNotFoundError, match="database.sqlite"):
        load_goodsounds(tmp_path)
    conn = sqlite3.connect(tmp_path / "database.sqlite")
    conn.execute("CREATE TABLE sounds (id INTEGER)")
    conn.close()
    with pytest.raises(ValueError, match="sounds.*lacks columns"):
        load_goodsounds(tmp_path)
    (tmp_path / "database.sqlite").unlink()
    sqlite3.connect(tmp_path / "database.sqlite").close()
    with pytest.raises(ValueError, match="table 'sounds' is missing"):
        load_goodsounds(tmp_path)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_split_by_sound_is_grouped_stratified_and_seeded(tmp_path, seed):
    fx = make_goodsounds(tmp_path, midis=list(range(60, 70)), n_scales=0, extra_klass=None)
    items = load_goodsounds(fx.root, one_mic_per_sound=False)
    split = split_by_sound(items, test_fraction=0.3, seed=seed)
    train_ids = {it.sound_id for it in split.train}
    test_ids = {it.sound_id for it in split.test}
    assert not train_ids & test_ids
    assert len(split.train) + len(split.test) == len(items)
    assert len(test_ids) == 3 * 3  # round(0.3 * 10) sounds of each of 3 instruments
    for inst in ("flute", "cello", "bass"):
        assert any(it.instrument == inst for it in split.test)
    again = split_by_sound(items, test_fraction=0.3, seed=seed)
    assert [it.take_id for it in again.test] == [it.take_id for it in split.test]
    other = split_by_sound(items, test_fraction=0.3, seed=seed + 10)
    assert {it.sound_id for it in other.test} != test_ids


def test_note_names():
    assert note_to_midi("A3") == 57 and note_to_midi("A6") == 93 and note_to_midi("Bb6") == 94
    assert note_to_midi("C-1") == 0 and midi_to_note(61) == ("C#", 4)
    assert all(note_to_midi("".join(map(str, midi_to_note(m)))) == m for m in range(128))
    with pytest.raises(ValueError, match="note name"):
        note_to_midi("H2")


# ---------------------------------------------------------------- FSD50K


def test_fsd50k_splits_and_labels(tmp_path):
    fx = make_fsd50k(tmp_path, n_train=6, n_val=2, n_test=3)
    for split in ("train", "val", "test"):
        items = load_fsd50k(fx.root, split)
        assert [it.fname for it in items] == fx.fnames(split)
        assert all(it.split == split and it.path.is_file() for it in items)
    rows = {r["fname"]: r for r in fx.rows}
    for it in load_fsd50k(fx.root, "train"):
        assert list(it.labels) == rows[it.fname]["labels"]
        assert list(it.mids) == rows[it.fname]["mids"]
    assert any(len(it.labels) == 3 for it in load_fsd50k(fx.root, "train"))
    assert "FSD50K.eval_audio" in str(load_fsd50k(fx.root, "test")[0].path)
    assert load_fsd50k_vocabulary(fx.root) == fx.vocabulary


def test_fsd50k_subsets_are_seeded(tmp_path):
    fx = make_fsd50k(tmp_path, n_train=20, n_val=1, n_test=1)
    a = [it.fname for it in load_fsd50k(fx.root, "train", subset_size=5, seed=3)]
    b = [it.fname for it in load_fsd50k(fx.root, "train", subset_size=5, seed=3)]
    c = [it.fname for it in load_fsd50k(fx.root, "train", subset_size=5, seed=4)]
    assert a == b and a != c and len(a) == 5 and set(a) <= set(fx.fnames("train"))
    assert a == [f for f in fx.fnames("train") if f in a]  # csv order kept
    assert len(load_fsd50k(fx.root, "train", subset_size=100)) == 20


def test_fsd50k_errors_and_missing_files(tmp_path, caplog):
    fx = make_fsd50k(tmp_path, n_train=4, missing=1)
    with caplog.at_level(logging.WARNING):
        assert len(load_fsd50k(fx.root, "train")) == 3
    assert "skipped 1 train clips" in caplog.text
    with pytest.raises(ValueError, match="split"):
        load_fsd50k(fx.root, "dev")
    with pytest.raises(FileNotFoundError, match="dev.csv"):
        load_fsd50k(tmp_path / "elsewhere", "train")


# ---------------------------------------------------------------- folders and crops


def test_folder_listing_is_recursive_sorted_and_filtered(tmp_path):
    make_audio_folder(tmp_path, ["z.mp3", "b/x.flac", "a.wav", "b/c/y.ogg", "B.WAV"])
    (tmp_path / "notes.txt").write_text("not audio")
    write_tone(tmp_path / ".hidden" / "h.wav", seconds=0.1)
    rel = [p.relative_to(tmp_path).as_posix() for p in list_audio_files(tmp_path)]
    assert rel == ["B.WAV", "a.wav", "b/c/y.ogg", "b/x.flac", "z.mp3"]
    labels = {it.path.name: it.label for it in list_items("folder", tmp_path)}
    assert labels == {"B.WAV": "", "a.wav": "", "y.ogg": "b/c", "x.flac": "b", "z.mp3": ""}
    with pytest.raises(FileNotFoundError):
        list_audio_files(tmp_path / "absent")


def test_crop_or_pad():
    x = torch.arange(10.0)[None]
    assert crop_or_pad(x, 4, offset=3).tolist() == [[3.0, 4.0, 5.0, 6.0]]
    assert crop_or_pad(x, 4, offset=99).tolist() == [[6.0, 7.0, 8.0, 9.0]]
    assert crop_or_pad(x, 12).tolist() == [list(range(10)) + [0.0, 0.0]]
    g = torch.Generator().manual_seed(0)
    assert crop_or_pad(x, 10, generator=g).equal(x)


def test_crop_dataset_shapes_seeding_and_epochs(tmp_path):
    long = write_tone(tmp_path / "long.wav", freq=220.0, seconds=3.0, sr=44100)
    short = write_tone(tmp_path / "short.wav", freq=220.0, seconds=0.2, sr=16000)
    ds = CropDataset([long, short], nsecs=0.5, seed=1)
    crops = [ds[0], ds[1]]
    assert all(c.shape == (1, 12000) and c.dtype == torch.float32 for c in crops)
    assert crops[1][0, 4800:].abs().max() == 0 and crops[1][0, :4700].abs().max() > 0.1
    assert torch.equal(CropDataset([long, short], nsecs=0.5, seed=1)[0], crops[0])
    offsets = set()
    for epoch in range(4):
        ds.set_epoch(epoch)
        offsets.add(ds[0][0, :64].sum().item())
    assert len(offsets) > 1  # new offsets each epoch
    fixed = CropDataset([long], nsecs=0.5, random_crop=False)[0]
    # the segment is resampled on its own: compare away from its end
    assert torch.allclose(fixed[:, :11000], load_audio(long)[:, :11000], atol=1e-3)
    batch = next(iter(DataLoader(ds, batch_size=2)))
    assert batch.shape == (2, 1, 12000)


# ---------------------------------------------------------------- factory


def test_build_dataset_goodsounds_splits_are_disjoint(tmp_path):
    fx = make_goodsounds(tmp_path, midis=list(range(55, 75)), microphones=("akg",))
    parts = {s: list_items("goodsounds", fx.root, s) for s in ("train", "val", "test", "all")}
    ids = {s: {it.sound_id for it in items} for s, items in parts.items()}
    assert not ids["train"] & ids["val"] and not ids["train"] & ids["test"]
    assert not ids["val"] & ids["test"]
    assert ids["train"] | ids["val"] | ids["test"] == ids["all"] == {s["id"] for s in fx.sounds}
    assert all(isinstance(it, GoodSoundsItem) for it in parts["all"])
    ds = build_dataset("goodsounds", fx.root, "train", nsecs=0.25, subset_size=5, seed=0)
    assert len(ds) == 5 and ds[0].shape == (1, 6000)
    assert {it.sound_id for it in ds.items} <= ids["train"]


def test_build_dataset_fsd50k_and_folder(tmp_path):
    fx = make_fsd50k(tmp_path / "fsd", n_train=5, n_val=2, n_test=2)
    ds = build_dataset("fsd50k", fx.root, "val", nsecs=1.0)
    assert len(ds) == 2 and ds[1].shape == (1, 24000)
    assert all(isinstance(it, FSD50KItem) for it in ds.items)
    make_audio_folder(tmp_path / "mine", [f"{i}.wav" for i in range(10)])
    ds = build_dataset("folder", tmp_path / "mine", "all", nsecs=0.1, subset_size=3)
    assert len(ds) == 3 and isinstance(ds.items[0], FolderItem) and ds[2].shape == (1, 2400)
    with pytest.raises(ValueError, match="unknown dataset"):
        build_dataset("librispeech", tmp_path, "train", nsecs=1.0)
    with pytest.raises(ValueError, match="needs a path"):
        build_dataset("fsd50k", None, "train", nsecs=1.0)


# ---------------------------------------------------------------- the bundled demo set


def test_demo_set_has_every_instrument_and_the_traversal_notes():
    items = load_goodsounds(DEMO_ROOT)
    assert {it.instrument for it in items} == set(GOODSOUNDS_INSTRUMENTS)
    per_instrument = [sum(it.instrument == i for it in items) for i in GOODSOUNDS_INSTRUMENTS]
    assert min(per_instrument) >= 20
    assert select_items(items, "bass", "A3") and select_items(items, "clarinet", "A6")
    assert all(it.pitch == f"{it.note}{it.octave}" for it in items)
    speech = load_goodsounds(DEMO_ROOT, single_notes=False, instruments=["speech_female"])
    assert len(speech) >= 3 and {it.klass for it in speech} == {"speech"}
    assert not {it.instrument for it in items} & {"speech_female", "speech_male"}


def test_demo_set_files_are_24k_mono_pcm16():
    items = load_goodsounds(DEMO_ROOT, single_notes=False)
    assert len(items) >= 300
    for it in items:
        info = sf.info(it.path)
        assert (info.samplerate, info.channels, info.subtype) == (24000, 1, "PCM_16"), it.path
        assert 1.0 < info.duration < 4.5
    size = sum(p.stat().st_size for p in DEMO_ROOT.rglob("*") if p.is_file())
    assert size < 25e6
