"""EnCodec backend: shapes, bitrate table, codes/latents agreement, weights loading order."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

import codec.models.encodec as ce
from codec.checkpoint import CheckpointError
from codec.models.encodec import (
    OFFICIAL_NAME,
    EnCodecCodec,
    EnCodecConfig,
    EnCodecWeightsError,
    load_encodec,
)
from codec.models.registry import load_codec

# A CPU-sized model with the official hop (320 -> 75 Hz) and bandwidth mapping (1024 bins).
TINY = {
    "n_filters": 4,
    "lstm": 0,
    "n_q": 4,
    "target_bandwidths": [1.5, 3.0],
    "bandwidth": 1.5,
    "train_bandwidths": [1.5, 3.0],
    "kmeans_iters": 2,
}


def _wav(batch: int = 2, n: int = 4800, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    t = torch.arange(n) / 24000
    tone = torch.sin(2 * math.pi * 220 * t) * 0.3
    return tone + 0.05 * torch.randn(batch, 1, n, generator=g)


def _trained_codebooks(model: EnCodecCodec) -> EnCodecCodec:
    """One training forward k-means-initialises the lazily initialised codebooks."""
    model.train()
    model(_wav(4, 9600, seed=1))
    return model.eval()


@pytest.fixture(scope="module")
def tiny() -> EnCodecCodec:
    torch.manual_seed(0)
    return _trained_codebooks(EnCodecCodec.from_config(TINY))


@pytest.fixture(scope="module")
def official_file(tmp_path_factory: pytest.TempPathFactory) -> tuple[EnCodecCodec, object]:
    """A random model of the official architecture saved like the official file."""
    torch.manual_seed(0)
    model = EnCodecCodec(EnCodecConfig()).eval()
    path = tmp_path_factory.mktemp("hub") / OFFICIAL_NAME
    torch.save(model.state_dict(), path)
    return model, path


def test_shapes_and_trim(tiny: EnCodecCodec) -> None:
    wav = _wav(2, 5000)
    with torch.no_grad():
        enc = tiny.encode(wav)
        T = math.ceil(5000 * 75 / 24000)
        assert enc.latents.shape == (2, 128, T)
        assert enc.quantized.shape == (2, 128, T)
        assert enc.codes.shape == (2, 2, T) and enc.codes.dtype == torch.int64
        assert enc.window is None and enc.num_samples == 5000
        assert tiny.decode(enc.latents, num_samples=5000).shape == (2, 1, 5000)
        assert tiny.decode(enc.latents).shape == (2, 1, T * 320)
        # points no encoder produced decode too
        mid = 0.5 * enc.latents[:1] + 0.5 * enc.latents[1:]
        assert tiny.decode(mid, window=7, num_samples=4000).shape == (1, 1, 4000)
        assert tiny.reconstruct(wav).shape == wav.shape
    with pytest.raises(ValueError, match=r"\[B, 1, N\]"):
        tiny.encode(torch.zeros(1, 2, 100))
    with pytest.raises(ValueError, match="latents"):
        tiny.decode(torch.zeros(1, 64, 3))


@pytest.mark.parametrize("n", [1, 319, 320, 321, 4800, 24001])
def test_frame_count(tiny: EnCodecCodec, n: int) -> None:
    with torch.no_grad():
        T = tiny.encode(_wav(1, n)).latents.shape[-1]
    assert T == math.ceil(n * 75 / 24000) == tiny.num_frames(n, window=5)


def test_bitrate_table() -> None:
    model = EnCodecCodec(EnCodecConfig())
    table = {1.5: 2, 3.0: 4, 6.0: 8, 12.0: 16, 24.0: 32}
    for kbps, n_q in table.items():
        model.set_bandwidth(kbps)
        assert model.num_codebooks == n_q
        assert model.bitrate() == pytest.approx(kbps * 1000)
        for w in (None, 2, 10):
            assert model.frame_rate(w) == 75
            assert model.bitrate(w) == pytest.approx(75 * n_q * 10)
    with torch.no_grad():
        model.set_bandwidth(6.0)
        assert model.encode(_wav(1, 3200)).codes.shape == (1, 8, 10)
    with pytest.raises(ValueError, match="bandwidths"):
        model.set_bandwidth(2.0)


def test_one_codebook_is_0p75_kbps_where_the_config_lists_it() -> None:
    """0.75 kbps = 1 codebook of 1024 at 75 Hz = 750 bit/s, in the config, the codes, the
    bitrate, the rates analysis reports and the setting's label; the official model (no 0.75
    in its target_bandwidths) refuses it."""
    from analysis.metrics import codec_rates

    assert EnCodecConfig().codebooks_for(0.75) == 1
    assert 0.75 not in EnCodecCodec(EnCodecConfig()).setting().choices
    torch.manual_seed(0)
    four = {**TINY, "n_q": 8, "target_bandwidths": [0.75, 1.5, 3.0, 6.0]}
    model = EnCodecCodec.from_config(four).eval()
    spec = model.setting()
    assert spec.choices == (0.75, 1.5, 3.0, 6.0) and spec.label(0.75) == "0.75 kbps"
    with model.use_setting("0.75 kbps"):
        assert model.num_codebooks == 1 and model.bitrate() == 750.0
        with torch.no_grad():
            assert model.encode(_wav(1, 3200)).codes.shape == (1, 1, 10)
        rates = codec_rates(model, None)
        assert rates.bitrate == 750.0 and rates.tokens_per_second == 75.0
    assert model.bandwidth == 1.5  # restored
    with pytest.raises(ValueError, match=r"bandwidths \[1\.5, 3\.0\] kbps, got 0\.75"):
        EnCodecCodec.from_config(TINY).set_bandwidth(0.75)


def test_decode_codes_equals_decode_quantized(tiny: EnCodecCodec) -> None:
    wav = _wav(2, 4800, seed=3)
    with torch.no_grad():
        enc = tiny.encode(wav)
        assert enc.codes.unique().numel() > 1  # k-means initialised codebooks are in use
        lat = tiny.codes_to_latents(enc.codes)
        torch.testing.assert_close(lat, enc.quantized, rtol=0, atol=0)
        a = tiny.decode_codes(enc.codes, num_samples=4800)
        b = tiny.decode(enc.quantized, num_samples=4800)
    torch.testing.assert_close(a, b, rtol=0, atol=0)
    with pytest.raises(ValueError, match="codes"):
        tiny.codes_to_latents(torch.full((1, 2, 3), 1024))


def test_latents_depend_on_input(tiny: EnCodecCodec) -> None:
    with torch.no_grad():
        a = tiny.encode(_wav(1, 4800, seed=1)).latents
        b = tiny.encode(0.5 * torch.randn(1, 1, 4800)).latents
    assert (a - b).abs().mean() > 0.1 * a.abs().mean()


def test_save_load_identical(tiny: EnCodecCodec, tmp_path) -> None:
    tiny.set_bandwidth(3.0)
    try:
        tiny.save_pretrained(tmp_path / "ck")
        loaded = load_codec(tmp_path / "ck")
        assert isinstance(loaded, EnCodecCodec)
        assert tiny.weights_source == "random-init"
        assert loaded.weights_source == f"checkpoint (hash {loaded.checkpoint_hash})"
        assert loaded.config_dict() == tiny.config_dict()
        assert loaded.bandwidth == 3.0
        assert EnCodecCodec.from_config(tiny.config_dict()).config_dict() == tiny.config_dict()
        wav = _wav(1, 4000, seed=5)
        with torch.no_grad():
            a, b = tiny.encode(wav), loaded.encode(wav)
            assert torch.equal(a.codes, b.codes)
            assert torch.equal(tiny.reconstruct(wav), loaded.reconstruct(wav))
        via = load_encodec(checkpoint=tmp_path / "ck", bandwidth=1.5)
        assert via.weights_source == f"checkpoint:{tmp_path / 'ck'}"
        assert via.num_codebooks == 2
    finally:
        tiny.set_bandwidth(1.5)


def test_config_validation() -> None:
    with pytest.raises(ValueError, match="n_filterz"):
        EnCodecCodec.from_config({"n_filterz": 3})
    with pytest.raises(TypeError, match="ratios"):
        EnCodecCodec.from_config({"ratios": 4})
    with pytest.raises(ValueError, match="n_q"):
        EnCodecCodec.from_config({"n_q": 2})  # 24 kbps needs 32 codebooks
    with pytest.raises(ValueError, match="train_bandwidths"):
        EnCodecCodec.from_config({**TINY, "train_bandwidths": [6.0]})


def test_training_forward() -> None:
    torch.manual_seed(0)
    model = EnCodecCodec.from_config({**TINY, "train_bandwidths": [3.0]}).train()
    wav = _wav(2, 4800)
    out = model(wav, window=None, stage=2)
    assert out.recon.shape == wav.shape
    assert out.codes.shape == (2, 4, 15)
    commit = out.losses["loss/commit"]
    assert commit.ndim == 0 and torch.isfinite(commit) and commit.requires_grad
    (out.recon.abs().mean() + commit).backward()
    assert model.encoder.model[0].conv.conv.weight_v.grad is not None
    assert all(bool(model.quantizer.vq.layers[i]._codebook.inited) for i in range(4))
    assert out.stats["stats/n_q"] == 4 and 0 < out.stats["stats/codebook_usage_0"] <= 1
    one = model(wav, stage=1)
    assert one.codes is None and one.recon.shape == wav.shape
    with pytest.raises(ValueError, match="stage"):
        model(wav, stage=4)


def test_official_file_loads(official_file) -> None:
    source, path = official_file
    model = load_encodec(weights=path, bandwidth=3.0, check_hash=False)
    assert model.weights_source == f"official:{path}"
    assert model.num_codebooks == 4 and not model.training
    wav = _wav(1, 3200)
    with torch.no_grad():
        assert torch.equal(model.encode(wav).latents, source.encode(wav).latents)


def test_official_wrong_hash_refused(official_file) -> None:
    _, path = official_file
    with pytest.raises(EnCodecWeightsError, match="sha256"):
        load_encodec(weights=path)


def test_official_found_in_hub_cache(official_file, tmp_path, monkeypatch) -> None:
    _, path = official_file
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "th"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    hub = tmp_path / "th" / "hub" / "checkpoints"
    hub.mkdir(parents=True)
    (hub / OFFICIAL_NAME).write_bytes(path.read_bytes())
    model = load_encodec(check_hash=False)
    assert model.weights_source == f"official:{hub / OFFICIAL_NAME}"


def test_bad_official_files(tmp_path) -> None:
    bad = tmp_path / OFFICIAL_NAME
    bad.write_bytes(b"not a torch file")
    with pytest.raises(EnCodecWeightsError, match="not a readable"):
        load_encodec(weights=bad, check_hash=False)
    torch.save({"encoder.x": torch.zeros(1)}, bad)
    with pytest.raises(CheckpointError, match="does not match"):
        load_encodec(weights=bad, check_hash=False)
    with pytest.raises(EnCodecWeightsError, match="does not exist"):
        load_encodec(weights=tmp_path / "nope.th")


def test_missing_weights_message(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "th"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setattr(ce, "REPO_ROOT", tmp_path / "repo")
    with pytest.raises(EnCodecWeightsError) as err:
        load_encodec()
    msg = str(err.value)
    assert ce.OFFICIAL_URL in msg and "--checkpoint" in msg and "--encodec-weights" in msg


def test_bundled_checkpoint_fallback(tiny: EnCodecCodec, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "th"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setattr(ce, "REPO_ROOT", tmp_path)
    tiny.save_pretrained(tmp_path / "checkpoints" / "encodec")
    model = load_encodec()
    assert model.weights_source.startswith("checkpoint:")
    assert model.weights_source.endswith("encodec")


def test_padding_in_a_batch_keeps_codes(tiny: EnCodecCodec) -> None:
    """Whole-frame zero padding + causal convs: a clip's codes do not depend on batch padding."""
    clip = _wav(1, 5001, seed=7)
    with torch.no_grad():
        alone = tiny.encode(clip)
        batch = tiny.encode(torch.cat([F.pad(clip, (0, 3000)), _wav(1, 8001, seed=8)]))
    T = alone.codes.shape[-1]
    assert torch.equal(batch.codes[:1, :, :T], alone.codes)
    torch.testing.assert_close(batch.latents[:1, :, :T], alone.latents)


def test_training_bandwidths_sampled_identically_across_instances() -> None:
    """Ranks of a distributed run must pick the same codebook count at every step."""
    cfg = {**TINY, "kmeans_iters": 1}
    a, b = EnCodecCodec.from_config(cfg).train(), EnCodecCodec.from_config(cfg).train()
    wav = _wav(1, 1600)
    with torch.no_grad():
        na = [a(wav).stats["stats/n_q"] for _ in range(8)]
        nb = [b(wav).stats["stats/n_q"] for _ in range(8)]
    assert na == nb and set(na) == {2.0, 4.0}
