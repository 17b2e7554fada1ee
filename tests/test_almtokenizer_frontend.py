"""The `encodec` front end: a frozen EnCodec-architecture autoencoder of any size under
ALMTokenizer, loaded from our checkpoint folders or the official weights file."""

from __future__ import annotations

import json

import pytest
import torch

from codec.checkpoint import CheckpointError
from codec.models.almtokenizer import ALMConfig, ALMTokenizer, BaseArgs, MAEArgs, preset
from codec.models.almtokenizer.frontend_encodec import (
    load_frontend_checkpoint,
    resolve_frontend_args,
    source_architecture,
)
from codec.models.encodec import EnCodecCodec, EnCodecConfig

TINY_AE = {
    "dimension": 16, "n_filters": 2, "lstm": 1, "n_q": 2, "bins": 16,
    "target_bandwidths": [0.3], "bandwidth": 0.3, "train_bandwidths": [0.3],
}  # fmt: skip


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


def tiny_alm_args(**kw: object) -> dict:
    args = dict(
        dim=32, n_heads=2, n_layers=1, decoder_n_layers=1, ffn_dim=64, codebook_size=16,
        codebook_dim=8, ar_layers=0,
    )  # fmt: skip
    args.update(kw)
    return args


def build(base: dict) -> ALMTokenizer:
    return ALMTokenizer(ALMConfig.from_dict({"base_args": base, "mae_args": {"n_layers": 0}}))


@pytest.fixture
def autoencoder(tmp_path) -> tuple[EnCodecCodec, str]:
    """A tiny trained-looking EnCodec checkpoint folder of ours (ratios [4, 4, 4, 5]: hop 320)."""
    ae = EnCodecCodec(EnCodecConfig.from_dict({**TINY_AE, "ratios": [4, 4, 4, 5]})).eval()
    return ae, str(ae.save_pretrained(tmp_path / "ae"))


def test_architecture_comes_from_the_checkpoint(autoencoder) -> None:
    ae, folder = autoencoder
    arch = source_architecture(folder)
    assert arch["encodec_n_filters"] == 2 and arch["encodec_lstm"] == 1
    assert arch["encodec_ratios"] == [4, 4, 4, 5] and arch["patch_dim"] == 16
    assert arch["frame_rate"] == 75
    # the source wins over what the config said
    base = resolve_frontend_args(tiny_alm_args(frontend_checkpoint=folder, encodec_n_filters=32))
    assert base["encodec_n_filters"] == 2 and base["patch_dim"] == 16
    assert resolve_frontend_args({"dim": 8}) == {"dim": 8}  # nothing to resolve


def test_any_size_loads_strictly_and_is_frozen(autoencoder) -> None:
    ae, folder = autoencoder
    m = build(resolve_frontend_args(tiny_alm_args(frontend_checkpoint=folder)))
    where = load_frontend_checkpoint(m.frontend, folder)
    assert folder in where
    for part in ("encoder", "decoder"):
        own, src = getattr(m.frontend, part).state_dict(), getattr(ae, part).state_dict()
        assert all(torch.equal(own[k], src[k]) for k in src)
    assert m.frontend_frozen and not m.frontend.training
    wav = torch.randn(1, 1, 4000) * 0.1
    with torch.no_grad():
        assert torch.equal(m.frontend.patchify(wav), ae.encode(wav).latents)
        e = ae.encode(wav).latents
        assert torch.equal(m.frontend.unpatchify(e), ae.decode(e))


def test_mismatched_architecture_is_a_clear_error(autoencoder) -> None:
    _, folder = autoencoder
    m = build(tiny_alm_args(patch_dim=16, encodec_n_filters=4, encodec_lstm=1))
    with pytest.raises(ValueError, match="does not match"):
        load_frontend_checkpoint(m.frontend, folder)


def test_missing_or_foreign_source_is_named(tmp_path, autoencoder) -> None:
    with pytest.raises(FileNotFoundError, match="nowhere"):
        source_architecture(str(tmp_path / "nowhere"))
    alm = build(tiny_alm_args(patch_dim=16, encodec_n_filters=2, encodec_lstm=0))
    folder = alm.save_pretrained(tmp_path / "alm")
    with pytest.raises(ValueError, match="not an EnCodec"):
        source_architecture(str(folder))
    with pytest.raises(FileNotFoundError, match="official EnCodec weights"):
        load_frontend_checkpoint(alm.frontend, str(tmp_path / "encodec_24khz-d7cc33bc.th"))


def test_checkpoint_folder_loads_on_its_own(tmp_path, autoencoder) -> None:
    """The ALMTokenizer folder carries the front-end weights and the frame statistics: it
    rebuilds with the source autoencoder gone."""
    ae, folder = autoencoder
    m = build(resolve_frontend_args(tiny_alm_args(frontend_checkpoint=folder)))
    load_frontend_checkpoint(m.frontend, folder)
    m.standardizer.set_stats(torch.randn(16), torch.rand(16) + 0.5)
    wav = torch.randn(1, 1, 6400) * 0.1
    with torch.no_grad():
        ref = m.eval().reconstruct(wav, 4)
    saved = m.save_pretrained(tmp_path / "alm")
    cfg = json.loads((saved / "config.json").read_text())["model"]["base_args"]
    assert cfg["encodec_n_filters"] == 2 and cfg["encodec_ratios"] == [4, 4, 4, 5]
    for f in (tmp_path / "ae").iterdir():
        f.unlink()
    loaded = ALMTokenizer.from_pretrained(saved)
    with torch.no_grad():
        assert torch.equal(loaded.reconstruct(wav, 4), ref)


def test_official_layout_loads_through_the_hash_checked_reader(tmp_path, monkeypatch) -> None:
    """A state dict in the official layout loads via `codec.models.encodec.load_official`; the
    expected sha256 prefix is set to this file's."""
    import codec.models.encodec as E

    state = E.EnCodecCodec(E.EnCodecConfig()).state_dict()
    path = tmp_path / "encodec_24khz-d7cc33bc.th"
    torch.save(state, path)
    monkeypatch.setattr(E, "OFFICIAL_SHA256_PREFIX", E.sha256_file(path)[:8])
    assert source_architecture(str(path))["encodec_n_filters"] == 32
    m = build(resolve_frontend_args(tiny_alm_args(frontend_checkpoint=str(path))))
    load_frontend_checkpoint(m.frontend, str(path))
    for k, v in m.frontend.encoder.state_dict().items():
        assert torch.equal(v, state[f"encoder.{k}"]), k
    monkeypatch.setattr(E, "OFFICIAL_SHA256_PREFIX", "00000000")
    with pytest.raises(CheckpointError, match="sha256"):
        load_frontend_checkpoint(m.frontend, str(path))


def test_presets_stand_on_an_encodec_autoencoder() -> None:
    demo, paper = preset("demo").base_args, preset("paper").base_args
    assert demo.frontend == paper.frontend == "encodec"
    assert demo.frontend_checkpoint == "checkpoints/encodec_demo"
    assert (demo.encodec_n_filters, demo.encodec_lstm) == (16, 1)
    assert (paper.encodec_n_filters, paper.encodec_lstm) == (32, 2)
    assert demo.frame_rate == paper.frame_rate == 75
    assert source_architecture(demo.frontend_checkpoint)["encodec_n_filters"] == 16
    ALMConfig(BaseArgs(**resolve_frontend_args(vars(demo))), MAEArgs())
