"""Traversals: endpoints equal reconstructions, step/glide lengths, interpolation, export."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from analysis.dataset import load_items
from analysis.export import export_audio, safe_name
from analysis.interpolate import lerp, path_frames, resample_time, slerp
from analysis.traversal import export_traversal, traverse
from codec.audio import load_audio
from codec.models.registry import load_codec
from tests.tiny_models import timbre_dataset, tiny_encodec

REPO = Path(__file__).resolve().parents[1]

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def items(tmp_path_factory: pytest.TempPathFactory) -> list:
    root = timbre_dataset(tmp_path_factory.mktemp("gs"), ("bass", "clarinet"), (57, 69, 93))
    return load_items(root)


@pytest.fixture(scope="module")
def codecs() -> list:
    # the bundled (trained) ALMTokenizer: a random tiny one quantizes every clip to the same
    # codes, so "A and B decode differently", the precondition of the checks, cannot hold
    return [load_codec(REPO / "checkpoints" / "almtokenizer_demo").eval(), tiny_encodec()]


def _clip(items: list, instrument: str, midi: int):
    return next(it for it in items if it.instrument == instrument and it.midi == midi)


def test_first_and_last_steps_equal_reconstructions_of_a_and_b(items: list, codecs: list) -> None:
    a = _clip(items, "bass", 57).path
    b = _clip(items, "clarinet", 93).path
    wa, wb = load_audio(a)[None], load_audio(b)[None]
    for codec in codecs:
        r = traverse(codec, [a, b], items, window=4, steps=4, space="quantized", cache_dir=None)
        assert len(r.steps) == 4 and r.positions == pytest.approx([0, 1 / 3, 2 / 3, 1])
        rec_a, rec_b = codec.reconstruct(wa, 4)[0], codec.reconstruct(wb, 4)[0]
        # A and B must decode differently by more than the tolerance of the checks below
        assert rec_a.abs().max() > 1e-3 and (rec_a - rec_b).abs().max() > 1e-4
        torch.testing.assert_close(r.steps[0], rec_a, atol=1e-5, rtol=1e-4)
        torch.testing.assert_close(r.steps[-1], rec_b, atol=1e-5, rtol=1e-4)
        mid_gap = (r.steps[1] - rec_a).abs().max()
        assert mid_gap > 1e-4  # intermediate steps really move

        # continuous space: endpoints are the decodes of the continuous latents, snapped to the
        # codebooks for a codec whose decoder only saw quantized latents (ALMTokenizer)
        rc = traverse(codec, [a, b], items, 4, steps=3, render_glide=False, cache_dir=None)
        with torch.inference_mode():
            enc = codec.encode(wa, 4)
            lat = enc.quantized if codec.decodes_quantized_only else enc.latents
            dec_a = codec.decode(lat, 4, num_samples=wa.shape[-1])[0]
        torch.testing.assert_close(rc.steps[0], dec_a, atol=1e-5, rtol=1e-4)
        assert rc.glide is None


def test_three_waypoints_with_groups_steps_and_glide(
    items: list, codecs: list, tmp_path: Path
) -> None:
    clip = _clip(items, "bass", 69).path
    n = load_audio(clip).shape[-1]
    for codec in codecs:
        r = traverse(codec, ["bass A3", clip, "clarinet A6"], items, 4, steps=3,
                     mode="spherical", cache_dir=tmp_path)  # fmt: skip
        assert r.labels == ["bass A3", clip.stem, "clarinet A6"]
        assert len(r.steps) == 2 * (3 - 1) + 1
        assert all(s.shape == (1, n) for s in r.steps)
        assert r.glide.shape == (1, 2 * n) and torch.isfinite(r.glide).all()
        g = traverse(codec, ["bass A3", "clarinet A6"], items, 4, render_steps=False,
                     glide_seconds=0.8, cache_dir=tmp_path)  # fmt: skip
        assert g.glide.shape == (1, 19200) and g.steps == []


def test_bad_traversal_arguments(items: list, codecs: list) -> None:
    with pytest.raises(ValueError, match="two or more"):
        traverse(codecs[0], ["bass A3"], items)
    with pytest.raises(ValueError, match="steps"):
        traverse(codecs[0], ["bass A3", "clarinet A6"], items, steps=1)
    with pytest.raises(ValueError, match="interpolation"):
        traverse(codecs[0], ["bass A3", "clarinet A6"], items, mode="cubic")
    with pytest.raises(ValueError, match="no sounds for 'bass C7'; bass has: A3, A4, A6"):
        traverse(codecs[0], ["bass C7", "clarinet A6"], items, cache_dir=None)


def test_interpolation_paths() -> None:
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(5, 8)).astype(np.float32), rng.normal(size=(5, 8)).astype(np.float32)
    for f in (lerp, slerp):
        np.testing.assert_array_equal(f(a, b, 0.0), a)
        np.testing.assert_array_equal(f(a, b, 1.0), b)
    np.testing.assert_allclose(lerp(a, b, 0.25), 0.75 * a + 0.25 * b, rtol=1e-6)
    mid = slerp(a, b, 0.5)
    norms = (np.linalg.norm(a, axis=1) + np.linalg.norm(b, axis=1)) / 2
    np.testing.assert_allclose(np.linalg.norm(mid, axis=1), norms, rtol=1e-5)
    cos = lambda u, v: (u * v).sum(1) / np.linalg.norm(u, axis=1) / np.linalg.norm(v, axis=1)  # noqa: E731
    np.testing.assert_allclose(cos(mid, a), cos(mid, b), rtol=1e-4)  # halfway in angle
    np.testing.assert_allclose(slerp(a, 2 * a, 0.5), 1.5 * a, rtol=1e-5)  # parallel: lerp

    seq = np.arange(12, dtype=np.float32).reshape(6, 2)
    np.testing.assert_array_equal(resample_time(seq, 6), seq)
    up = resample_time(seq, 11)
    np.testing.assert_array_equal(up[[0, -1]], seq[[0, -1]])
    np.testing.assert_allclose(up[1], (seq[0] + seq[1]) / 2)

    w = [np.full((5, 2), v, np.float32) for v in (0.0, 10.0, 30.0)]
    glide = path_frames(w)
    np.testing.assert_allclose(glide[:, 0], [0, 5, 10, 20, 30])


def test_export_sanitises_names_and_zips_everything(tmp_path: Path) -> None:
    assert safe_name("../../etc/passwd") == "etc_passwd"
    assert safe_name("bass A3 -> clarinet A6") == "bass_A3_-_clarinet_A6"
    assert safe_name("...") == "export"
    wav = 0.1 * torch.ones(1, 2400)
    root = tmp_path / "exports"
    res = export_audio({"../../up": {"../x": wav, "step 1": wav}}, root, "../../evil name")
    for f in [*res.files, res.zip_path]:
        assert root.resolve() in f.resolve().parents
    assert res.folder == (root / "evil_name").resolve()
    with zipfile.ZipFile(res.zip_path) as zf:
        assert sorted(zf.namelist()) == ["up/step_1.wav", "up/x.wav"]
    assert not (tmp_path / "evil name").exists()


def test_export_traversal_layout(items: list, codecs: list, tmp_path: Path) -> None:
    rs = [
        traverse(c, ["bass A3", "clarinet A6"], items, 4, steps=3, cache_dir=tmp_path)
        for c in codecs
    ]
    res = export_traversal(rs, tmp_path / "out", "bass A3 -> clarinet A6")
    with zipfile.ZipFile(res.zip_path) as zf:
        names = sorted(zf.namelist())
    assert names == sorted(
        f"{tag}/{f}" for tag in ("almtokenizer_w4", "encodec")
        for f in ("step_00.wav", "step_01.wav", "step_02.wav", "glide.wav")
    )  # fmt: skip
    back = load_audio(res.folder / "encodec" / "step_02.wav")
    assert back.shape == rs[1].steps[2].shape
