"""Latent extraction and its on-disk cache (keyed by checkpoint, file, window)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch

from analysis.codec_ops import codec_identity, effective_window, state_dict_hash
from analysis.dataset import load_items
from analysis.latents import LatentCache, encode_waveform, extract_latents
from codec.audio import load_audio
from codec.models.registry import load_codec
from tests.tiny_models import timbre_dataset, tiny_alm, tiny_encodec

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def items(tmp_path_factory: pytest.TempPathFactory) -> list:
    root = timbre_dataset(tmp_path_factory.mktemp("gs"), ("flute", "cello"), (57, 60, 64))
    return load_items(root)


@pytest.fixture(scope="module")
def alm_ckpt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_alm().save_pretrained(tmp_path_factory.mktemp("ck") / "alm")


def test_shapes_and_pooled_is_time_mean(items: list, tmp_path: Path) -> None:
    alm = tiny_alm()
    lat = extract_latents(alm, items, window=4, cache_dir=tmp_path, progress=False)
    n = load_audio(items[0].path).shape[-1]
    assert len(lat) == len(items) and lat.pooled.shape == (len(items), alm.latent_dim)
    clip = lat.clips[0]
    assert clip.frames.shape == (alm.num_frames(n, 4), alm.latent_dim)
    np.testing.assert_allclose(clip.pooled, clip.frames.mean(0), rtol=1e-6)
    assert clip.item is items[0] and clip.num_samples == n
    assert lat.labels("instrument") == [it.instrument for it in items]


def test_cache_hit_on_second_run_and_miss_after_checkpoint_change(
    items: list, alm_ckpt: Path, tmp_path: Path
) -> None:
    model = load_codec(alm_ckpt)
    old_hash = model.checkpoint_hash
    assert codec_identity(model).endswith(old_hash)
    first = extract_latents(model, items, 4, cache_dir=tmp_path, progress=False)
    assert (first.hits, first.misses) == (0, len(items))
    files = list(tmp_path.rglob("*.npz"))
    assert len(files) == len(items)
    for f in files:  # plain arrays, readable without pickle
        with np.load(f, allow_pickle=False) as data:
            assert data["frames"].dtype == np.float32
    second = extract_latents(load_codec(alm_ckpt), items, 4, cache_dir=tmp_path, progress=False)
    assert (second.hits, second.misses) == (len(items), 0)
    np.testing.assert_array_equal(first.pooled, second.pooled)

    # same architecture, other weights, saved to the same folder: a new checkpoint hash
    with torch.no_grad():
        model.frame_proj.weight.add_(0.5)
    model.save_pretrained(alm_ckpt)
    changed = load_codec(alm_ckpt)
    assert changed.checkpoint_hash != old_hash
    third = extract_latents(changed, items, 4, cache_dir=tmp_path, progress=False)
    assert (third.hits, third.misses) == (0, len(items))
    assert not np.allclose(third.pooled, first.pooled)


def test_miss_after_file_window_or_settings_change(items: list, tmp_path: Path) -> None:
    alm = tiny_alm()
    extract_latents(alm, items, 4, cache_dir=tmp_path, progress=False)
    # window changes ALMTokenizer's latents: all misses
    other_w = extract_latents(alm, items, 6, cache_dir=tmp_path, progress=False)
    assert other_w.misses == len(items)
    # rewriting one file (new mtime/size) invalidates that file only
    target = items[0].path
    wav = load_audio(target)
    import soundfile as sf

    sf.write(target, (0.5 * wav[0]).numpy(), 24000, subtype="PCM_16")
    st = os.stat(target)
    os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    again = extract_latents(alm, items, 4, cache_dir=tmp_path, progress=False)
    assert (again.hits, again.misses) == (len(items) - 1, 1)
    # max_seconds is part of the key
    capped = extract_latents(alm, items[:2], 4, cache_dir=tmp_path, max_seconds=5, progress=False)
    assert capped.misses == 2


def test_encodec_window_and_bandwidth_do_not_change_the_key(items: list, tmp_path: Path) -> None:
    enc = tiny_encodec()
    assert effective_window(enc, 7) is None
    a = extract_latents(enc, items, 2, cache_dir=tmp_path, progress=False)
    b = extract_latents(enc, items, 9, cache_dir=tmp_path, progress=False)
    enc.set_bandwidth(3.0)
    c = extract_latents(enc, items, None, cache_dir=tmp_path, progress=False)
    assert a.misses == len(items) and b.hits == len(items) and c.hits == len(items)
    np.testing.assert_array_equal(a.pooled, c.pooled)


def test_unsaved_models_are_keyed_by_their_weights() -> None:
    a, b = tiny_encodec(seed=0), tiny_encodec(seed=1)
    # EnCodec sets the placeholder checkpoint_hash "random-init": it must not be trusted
    assert getattr(a, "checkpoint_hash", None) == "random-init"
    assert codec_identity(a) != codec_identity(b)
    assert codec_identity(a) == codec_identity(tiny_encodec(seed=0))
    h = state_dict_hash(a)
    with torch.no_grad():
        next(a.parameters()).add_(1e-3)
    assert state_dict_hash(a) != h


def test_corrupt_cache_file_is_a_miss_and_gets_rewritten(items: list, tmp_path: Path) -> None:
    alm = tiny_alm()
    extract_latents(alm, items[:1], 4, cache_dir=tmp_path, progress=False)
    (f,) = list(tmp_path.rglob("*.npz"))
    f.write_bytes(b"not an npz")
    again = extract_latents(alm, items[:1], 4, cache_dir=tmp_path, progress=False)
    assert again.misses == 1
    third = extract_latents(alm, items[:1], 4, cache_dir=tmp_path, progress=False)
    assert third.hits == 1


def test_batching_matches_one_clip_at_a_time(items: list) -> None:
    for codec in (tiny_alm(), tiny_encodec()):
        batched = extract_latents(codec, items, 4, cache_dir=None, batch_size=8, progress=False)
        single = extract_latents(codec, items, 4, cache_dir=None, batch_size=1, progress=False)
        # up to float reduction order: batched convolutions sum in another order (1e-4 seen
        # with the EnCodec front end); padding a clip differently would move it by far more
        np.testing.assert_allclose(batched.pooled, single.pooled, rtol=1e-3, atol=5e-4)
        one = encode_waveform(codec, load_audio(items[3].path), 4)
        np.testing.assert_allclose(one.frames, single.clips[3].frames, rtol=1e-4, atol=1e-5)


def test_cache_key_mismatch_inside_file_is_a_miss(tmp_path: Path) -> None:
    cache = LatentCache(tmp_path)
    key = {"codec": "x", "path": "/a.wav", "window": 4}
    cache.put(key, np.ones((3, 2), np.float32), 100)
    assert cache.get(key) is not None and cache.get(key).num_samples == 100
    assert cache.get({**key, "window": 5}) is None
