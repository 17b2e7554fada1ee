"""`python -m codec.training.swap_decoder`: a fine-tuned decoder goes under a trained codec only
when the encoder (hence every latent) is the same."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch

from codec.checkpoint import save_codec
from codec.models.encodec import EnCodecCodec
from codec.models.registry import load_codec
from codec.training.swap_decoder import main, swap_decoder
from tests.tiny_models import tiny_alm, tiny_encodec

torch.set_num_threads(1)


def _retuned(codec: EnCodecCodec) -> EnCodecCodec:
    """A copy whose decoder moved (as after fine-tuning) and whose encoder did not."""
    out = copy.deepcopy(codec)
    with torch.no_grad():
        for p in out.decoder.parameters():
            p.add_(0.01 * torch.randn_like(p))
    return out


def _equal(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_swap_into_encodec_changes_only_the_decoder() -> None:
    torch.manual_seed(0)
    codec, new = tiny_encodec(), _retuned(tiny_encodec())
    before = copy.deepcopy(codec)
    wav = 0.1 * torch.randn(1, 1, 4800)
    assert swap_decoder(codec, new) == len(new.decoder.state_dict())
    assert _equal(codec.decoder, new.decoder) and _equal(codec.encoder, before.encoder)
    assert _equal(codec.quantizer, before.quantizer)
    assert torch.equal(codec.encode(wav).codes, before.encode(wav).codes)  # same tokens
    assert not torch.allclose(codec.reconstruct(wav), before.reconstruct(wav))  # new sound


def test_another_encoder_is_refused() -> None:
    with pytest.raises(ValueError, match="encoder differs"):
        swap_decoder(tiny_encodec(0), tiny_encodec(1))


def test_swap_into_almtokenizer_front_end(tmp_path: Path) -> None:
    torch.manual_seed(0)
    alm = tiny_alm()
    fe = alm.frame_frontend()
    ae = EnCodecCodec.from_config({"dimension": 16, "n_filters": 2, "lstm": 0})
    ae.encoder.load_state_dict(fe.encoder.state_dict())
    a_dir = save_codec(alm, tmp_path / "alm")
    d_dir = save_codec(ae, tmp_path / "dec", meta={"step": 7})
    assert main(["--codec", str(a_dir), "--decoder", str(d_dir), "--out", str(tmp_path / "o")]) == 0
    out = load_codec(tmp_path / "o")
    assert _equal(out.frame_frontend().decoder, ae.decoder)
    assert _equal(out.frame_frontend().encoder, fe.encoder)
    assert out.checkpoint_meta["decoder_from"]["meta"] == {"step": 7}
    other = save_codec(tiny_encodec(), tmp_path / "other")  # another architecture entirely
    assert main(["--codec", str(a_dir), "--decoder", str(other), "--out", str(tmp_path / "x")]) == 1
    assert not (tmp_path / "x").exists()
