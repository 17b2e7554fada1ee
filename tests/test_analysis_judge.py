"""The audio judge: it recognises instruments of held-out clean notes (also at unseen pitches),
hears pitch, and is cached per dataset content without pickle."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

import analysis.metrics.judge as J
from analysis.metrics.judge import (
    AUGMENT_COPIES,
    Judge,
    clip_features,
    fit_judge,
    hz_to_note,
    judge_split,
    load_or_fit_judge,
)
from analysis.metrics.judge_augment import clip_rng, degrade
from analysis.metrics.judge_features import FEATURE_NAMES, audio_features
from codec.audio import load_audio
from tests.tiny_models import timbre_dataset, timbre_tone

torch.set_num_threads(1)
INSTRUMENTS = ("flute", "cello", "clarinet", "bass")
MIDIS = tuple(range(45, 77, 2))  # 16 notes per instrument


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return timbre_dataset(tmp_path_factory.mktemp("gs"), INSTRUMENTS, MIDIS, seconds=0.4)


@pytest.fixture(scope="module")
def judge(root: Path) -> Judge:
    train, held = judge_split(root)
    return fit_judge(train, held, seed=0)


def test_features_are_finite_and_gain_invariant() -> None:
    x = timbre_tone("clarinet", 60, 0.4, seed=1)
    f = audio_features(x)
    assert f.shape == (len(FEATURE_NAMES),) and np.isfinite(f).all()
    np.testing.assert_allclose(audio_features(0.25 * x), f, rtol=1e-6, atol=1e-6)
    silent = audio_features(np.zeros(4800))
    assert np.isfinite(silent).all() and silent[FEATURE_NAMES.index("pitched")] == 0
    assert f[FEATURE_NAMES.index("pitched")] == 1
    # clarinet recipe has odd harmonics only: the odd/even ratio says so
    assert f[FEATURE_NAMES.index("odd_even_db")] > 15


def test_degradations_are_seeded_mild_and_keep_the_pitch() -> None:
    x = torch.from_numpy(timbre_tone("clarinet", 60, 0.4, seed=1)).float()
    a, b = degrade(x, clip_rng(0, 3)), degrade(x, clip_rng(0, 3))
    others = [degrade(x, clip_rng(0, i)) for i in range(4, 10)]
    assert torch.equal(a, b) and a.shape == x.shape and torch.isfinite(a).all()
    assert all(not torch.equal(a, o) for o in others)
    f0 = J.estimate_f0(x, 24000)
    for y in [a, *others]:
        assert torch.corrcoef(torch.stack([x, y]))[0, 1] > 0.5  # the same sound, degraded
        assert abs(12 * math.log2(J.estimate_f0(y, 24000) / f0)) < 0.5


def test_training_rows_follow_their_clip(root: Path) -> None:
    train = judge_split(root)[0][:3]
    x, src = clip_features(train, copies=2, seed=0)
    assert x.shape == (9, len(FEATURE_NAMES)) and src.tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 2]
    clean, _ = clip_features(train)
    np.testing.assert_allclose(x[::3], clean)  # the first row of each clip is the clean one
    assert not np.allclose(x[1], x[0])


def test_judge_recognises_held_out_notes(root: Path, judge: Judge) -> None:
    train, held = judge_split(root)
    assert {it.sound_id for it in train}.isdisjoint({it.sound_id for it in held})
    assert judge.classes == tuple(sorted(INSTRUMENTS))
    chance = 1 / len(INSTRUMENTS)
    assert judge.meta["cv_accuracy"] > chance + 0.5, judge.meta
    assert judge.meta["heldout_accuracy"] > chance + 0.5, judge.meta
    assert judge.meta["octave_holdout_accuracy"] > chance + 0.3, judge.meta
    assert judge.meta["augment_copies"] == AUGMENT_COPIES
    assert judge.meta["degraded_heldout_accuracy"] > chance + 0.5, judge.meta
    for it in held:
        v = judge.hear_file(it.path)
        assert set(v.probs) == set(INSTRUMENTS)
        assert math.isclose(sum(v.probs.values()), 1.0, rel_tol=1e-6)
        ref = 440 * 2 ** ((it.midi - 69) / 12)
        assert abs(1200 * math.log2(v.f0 / ref)) < 50, (it, v.f0)
        assert v.note == f"{it.note}{it.octave}" and v.text().startswith(v.label)


def test_judge_hears_unseen_pitches(root: Path) -> None:
    """Trained on low notes only, it still names the instrument of high notes."""
    train, held = judge_split(root)
    everything = train + held
    low = [it for it in everything if it.midi < 61]
    high = [it for it in everything if it.midi >= 61]
    j = fit_judge(low, high, seed=0)
    assert j.meta["heldout_accuracy"] >= 0.7, j.meta


def test_wrong_labels_make_a_bad_judge(root: Path) -> None:
    """The accuracy checks above can fail: a judge fitted on shuffled labels is near chance."""
    train, held = judge_split(root)
    rng = np.random.default_rng(0)
    perm = rng.permutation(len(train))
    shuffled = [
        type(it)(**{**it.__dict__, "instrument": train[p].instrument}) for it, p in zip(train, perm)
    ]
    j = fit_judge(shuffled, held, seed=0)
    assert j.meta["heldout_accuracy"] < 0.6, j.meta


def test_cache_roundtrip_without_pickle(
    root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    J._MEMO.clear()
    calls = []
    real_fit = J.fit_judge

    def counting_fit(*a, **k):
        calls.append(1)
        return real_fit(*a, **k)

    monkeypatch.setattr(J, "fit_judge", counting_fit)
    cache = tmp_path / "judge"
    j1 = load_or_fit_judge(root, cache)
    files = list(cache.glob("judge_*.npz"))
    assert len(files) == 1 and len(calls) == 1
    with np.load(files[0], allow_pickle=False) as d:  # plain arrays + JSON, no objects
        assert {"coef", "mean", "scale", "intercept", "meta"} <= set(d.files)
    J._MEMO.clear()
    j2 = load_or_fit_judge(root, cache)
    assert len(calls) == 1  # read from the file
    x = load_audio(judge_split(root)[1][0].path)
    assert j1.proba(x) == pytest.approx(j2.proba(x), abs=1e-9)
    assert j2.meta["cv_accuracy"] == pytest.approx(j1.meta["cv_accuracy"])
    # a corrupt file is refitted, not trusted
    J._MEMO.clear()
    files[0].write_bytes(b"not a judge")
    load_or_fit_judge(root, cache)
    assert len(calls) == 2 and Judge.load(files[0]).classes == j1.classes


def test_cache_key_follows_content(root: Path, tmp_path: Path) -> None:
    train, _ = judge_split(root)
    h = J.items_hash(train)
    assert J.items_hash(train) == h
    x, sr = sf.read(train[0].path, dtype="float32")
    sf.write(train[0].path, x * 0.5, sr, subtype="FLOAT")
    try:
        assert J.items_hash(train) != h
    finally:
        sf.write(train[0].path, x, sr, subtype="FLOAT")
    with pytest.raises(ValueError, match="two or more classes"):
        fit_judge([it for it in train if it.instrument == "flute"])
    bad = tmp_path / "other.npz"
    np.savez(bad, meta=np.array("{}"), mean=np.zeros(1), scale=np.ones(1), coef=np.zeros((1, 1)),
             intercept=np.zeros(1))  # fmt: skip
    with pytest.raises(ValueError, match="version"):
        Judge.load(bad)


def test_note_names() -> None:
    assert hz_to_note(440.0) == "A4" and hz_to_note(220.0) == "A3"
    assert hz_to_note(float("nan")) == ""


def test_view_helpers(root: Path, judge: Judge, tmp_path: Path) -> None:
    from analysis.metrics.judge_view import (
        JudgeLoader,
        glide_slices,
        path_probabilities,
        probability_strip,
        recognised_caption,
        transfer_caption,
    )

    train, held = judge_split(root)
    flute = next(it for it in held if it.instrument == "flute")
    bass = next(it for it in held if it.instrument == "bass")
    vb, va = judge.hear_file(bass.path), judge.hear_file(flute.path)
    cap = transfer_caption(vb, va)
    assert cap.startswith(f"sounds like: flute {va.probability:.2f} (before: bass ")
    assert cap.endswith(f"pitch {vb.note} -> {va.note}")
    assert recognised_caption(va).startswith("recognised as: flute ")
    # a path from bass to flute: the strip shows bass first and flute last
    wavs = [load_audio(bass.path)[0], load_audio(flute.path)[0]]
    probs = path_probabilities(judge, wavs)
    assert probs.shape == (2, len(judge.classes))
    np.testing.assert_allclose(probs.sum(1), 1.0, rtol=1e-6)
    fig = probability_strip(judge, probs, ["step 0", "step 1"], top=3)
    hm = fig.data[0]
    assert len(hm.y) == 3 and {"bass", "flute"} <= set(hm.y) and list(hm.x) == ["step 0", "step 1"]
    texts = [a.text for a in fig.layout.annotations]
    assert texts[0].startswith("bass") and texts[1].startswith("flute")
    glide = torch.cat(wavs)
    parts = glide_slices(glide, 4)
    assert len(parts) == 4 and sum(p.numel() for p in parts) == glide.numel()
    # the background loader: status while fitting, then the same judge as a direct fit
    J._MEMO.clear()
    loader = JudgeLoader(root, tmp_path / "jl")
    assert "audio judge" in loader.status()
    seen = []
    j = loader.start().get(lambda f, desc: seen.append(f))
    assert loader.ready and j is not None and j.classes == judge.classes
    assert "grouped CV accuracy" in loader.status()
    bad = JudgeLoader(tmp_path / "nowhere", None)
    assert bad.get() is None and "unavailable" in bad.status()
