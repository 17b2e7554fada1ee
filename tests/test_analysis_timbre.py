"""Timbre transfer: the latent shift, before/after decoding, and the probe test."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from analysis.dataset import load_items
from analysis.latents import extract_latents
from analysis.probe import fit_probe, probe_proba
from analysis.timbre import shift_to_centroid, timbre_transfer
from codec.almtokenizer import ALMTokenizer
from codec.audio import load_audio
from tests.test_analysis_helpers import TINY_ALM, timbre_dataset, tiny_alm, tiny_encodec

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def items(tmp_path_factory: pytest.TempPathFactory) -> list:
    root = timbre_dataset(tmp_path_factory.mktemp("gs"))
    return load_items(root)


def test_shift_formula() -> None:
    rng = np.random.default_rng(0)
    z = rng.normal(size=(7, 4)).astype(np.float32)
    c = rng.normal(size=4).astype(np.float32)
    np.testing.assert_array_equal(shift_to_centroid(z, c, 0.0), z)
    one = shift_to_centroid(z, c, 1.0)
    np.testing.assert_allclose(one.mean(0), c, atol=1e-5)  # alpha = 1: mean on the centroid
    np.testing.assert_allclose(one - one.mean(0), z - z.mean(0), atol=1e-5)  # deviations kept
    half = shift_to_centroid(z, c, 1.5)
    np.testing.assert_allclose(half.mean(0), z.mean(0) + 1.5 * (c - z.mean(0)), atol=1e-5)
    for bad in (-0.1, 1.6):
        with pytest.raises(ValueError, match="alpha"):
            shift_to_centroid(z, c, bad)


@pytest.mark.parametrize("make", [tiny_alm, tiny_encodec], ids=["almtokenizer", "encodec"])
def test_moving_toward_an_instrument_raises_its_probe_probability(
    make, items: list, tmp_path: Path
) -> None:
    codec = make()
    lat = extract_latents(codec, items, 4, cache_dir=tmp_path, progress=False)
    probe = fit_probe(lat.pooled, lat.labels("instrument"))
    # the probe learned instruments (otherwise the test below would prove nothing)
    pred = probe.predict(lat.pooled)
    assert (pred == np.asarray(lat.labels("instrument"))).mean() > 0.9
    pairs = [("flute", "bass"), ("bass", "cello"), ("clarinet", "flute"), ("cello", "clarinet")]
    for source, target in pairs:
        clip = next(it for it in items if it.instrument == source and it.midi == 60)
        r = timbre_transfer(
            codec, clip.path, target, items, alpha=1.0, window=4, cache_dir=tmp_path
        )
        p_before = probe_proba(probe, r.latents_before.mean(0))[target][0]
        p_after = probe_proba(probe, r.latents_after.mean(0))[target][0]
        assert p_after > p_before + 0.2, (source, target, p_before, p_after)
        assert probe_proba(probe, r.latents_after.mean(0))[target][0] > 0.5
        assert r.before.shape == r.after.shape == (1, load_audio(clip.path).shape[-1])
        assert not torch.allclose(r.before, r.after, atol=1e-4)


def test_alpha_zero_changes_nothing_and_bad_inputs_fail(items: list, tmp_path: Path) -> None:
    codec = tiny_alm()
    clip = load_audio(items[0].path)
    r = timbre_transfer(codec, clip, "cello", items, alpha=0.0, window=4, cache_dir=tmp_path)
    torch.testing.assert_close(r.before, r.after)
    with torch.inference_mode():
        expect = codec.decode(codec.encode(clip[None], 4).latents, 4, clip.shape[-1])[0]
    torch.testing.assert_close(r.before, expect, atol=1e-5, rtol=1e-4)
    with pytest.raises(ValueError, match="alpha"):
        timbre_transfer(codec, clip, "cello", items, alpha=2.0, window=4)
    with pytest.raises(ValueError, match="unknown instrument 'kazoo'"):
        timbre_transfer(codec, clip, "kazoo", items, alpha=1.0, window=4)
    # both real codecs expose Codec.quantize: re-quantized transfer decodes codewords
    rq = timbre_transfer(codec, clip, "cello", items, 1.0, 4, quantize=True, cache_dir=tmp_path)
    r1 = timbre_transfer(codec, clip, "cello", items, 1.0, 4, cache_dir=tmp_path)
    assert rq.after.shape == r1.after.shape and torch.isfinite(rq.after).all()
    assert not torch.allclose(rq.after, r1.after)


class _QuantizingALM(ALMTokenizer):
    """Test double: an ALMTokenizer exposing the optional `quantize(latents, window)` hook."""

    def quantize(self, latents: torch.Tensor, window: int | None = None) -> torch.Tensor:
        return self.codes_to_latents(self.quantizer.encode(latents), window)


def test_requantized_transfer_decodes_codewords(items: list, tmp_path: Path) -> None:
    model = _QuantizingALM.from_config(TINY_ALM)
    model.load_state_dict(tiny_alm().state_dict())
    model.eval()
    clip = load_audio(items[5].path)
    r = timbre_transfer(model, clip, "flute", items, 0.0, 4, quantize=True, cache_dir=tmp_path)
    with torch.inference_mode():
        rec = model.reconstruct(clip[None], 4)[0]
    torch.testing.assert_close(r.before, rec, atol=1e-5, rtol=1e-4)  # alpha 0 + quantize = recon
    assert r.quantized
