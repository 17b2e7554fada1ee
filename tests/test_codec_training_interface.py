"""What training asks of a codec is declared on `Codec` and answered by each backend:
trainable parameters per stage, the stage-1 state stage 2 takes over, the frame front end,
the window range. The training code holds no branch on the codec's name."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch

from codec.checkpoint import save_codec
from codec.models.base import Codec
from codec.models.registry import codec_class
from codec.schema import ConfigError
from codec.training.config import TrainConfig
from codec.training.model_setup import load_frontend, trainable_parameters
from tests.tiny_models import untrained_tiny_alm, untrained_tiny_encodec

ROOT = Path(__file__).resolve().parents[1]
# a branch on the codec's name, or attribute access the interface does not declare
BRANCH = re.compile(
    r"[\"']almtokenizer[\"']|\.name\s*[!=]=|type: ignore\[(union-attr|attr-defined)\]"
)


def test_alm_stage1_is_refused_with_the_reason() -> None:
    alm = untrained_tiny_alm()
    with pytest.raises(ConfigError, match=r"^stage 1 trains nothing of ALMTokenizer: .*frozen"):
        alm.trainable_parameters(1)
    cfg = TrainConfig.from_dict({"model": {"preset": "demo"}}, check_paths=False)
    with pytest.raises(ConfigError, match=r"^training\.stage: stage 1 trains nothing"):
        trainable_parameters(alm, cfg)
    with pytest.raises(ConfigError, match=r"stage must be one of \(1, 2, 3\), got 4"):
        alm.trainable_parameters(4)


def test_alm_stage2_trains_everything_but_the_frontend() -> None:
    alm = untrained_tiny_alm()
    alm.frontend.requires_grad_(True)  # stage 2 freezes it again
    params = alm.trainable_parameters(2)
    ids = {id(p) for p in params}
    front = {id(p) for p in alm.frontend.parameters()}
    assert front and not ids & front
    assert ids == {id(p) for n, p in alm.named_parameters() if not n.startswith("frontend.")}
    assert not any(p.requires_grad for p in alm.frontend.parameters())


def test_encodec_trains_every_parameter_in_both_stages() -> None:
    enc = untrained_tiny_encodec()
    everything = [id(p) for p in enc.parameters()]
    for stage in (1, 2):
        assert [id(p) for p in enc.trainable_parameters(stage)] == everything


def test_frontend_hooks() -> None:
    alm, enc = untrained_tiny_alm(), untrained_tiny_encodec()
    assert alm.frame_frontend() is alm.frontend and enc.frame_frontend() is None
    assert alm.training_windows() == (2, 10) and enc.training_windows() is None
    assert set(alm.stage1_state_keys()) == {
        k for k in alm.state_dict() if k.startswith("frontend.")
    }
    assert enc.stage1_state_keys() == list(enc.state_dict())
    assert alm.needs_frame_statistics() and not enc.needs_frame_statistics()
    alm.set_frame_statistics(torch.zeros(16), torch.ones(16))
    assert not alm.needs_frame_statistics()
    wav = torch.randn(2, 1, 2400)
    with torch.no_grad():
        assert alm.relative_frame_error(wav, 2).shape == (2,)
        assert enc.relative_frame_error(wav, None) is None


def test_stage1_state_is_taken_from_a_checkpoint(tmp_path: Path) -> None:
    ae = untrained_tiny_encodec(n_filters=2, dimension=16)
    folder = save_codec(ae, tmp_path / "ae")
    alm = untrained_tiny_alm()
    assert load_frontend(alm, folder) == len(alm.frontend.state_dict())
    for k, v in ae.encoder.state_dict().items():
        assert torch.equal(alm.frontend.encoder.state_dict()[k], v)
    other = untrained_tiny_alm(dim=64)
    assert load_frontend(other, save_codec(alm, tmp_path / "alm")) == len(other.stage1_state_keys())
    assert torch.equal(other.state_dict()["frontend.encoder.model.0.conv.conv.bias"],
                       alm.state_dict()["frontend.encoder.model.0.conv.conv.bias"])  # fmt: skip
    wrong = r"^training\.stage1_checkpoint: .* holds a 'almtokenizer' model, not 'encodec'"
    with pytest.raises(ConfigError, match=wrong):
        load_frontend(untrained_tiny_encodec(), tmp_path / "alm")


def test_no_name_branches_left_in_training_code() -> None:
    for rel in (
        "codec/training/loop.py",
        "codec/training/balancer.py",
        "codec/training/cli.py",
        "codec/training/model_setup.py",
        "codec/training/evaluation.py",
    ):
        text = (ROOT / rel).read_text()
        assert not BRANCH.search(text), rel
        assert "hasattr(" not in text, rel
    assert (
        issubclass(codec_class("encodec"), Codec)
        and codec_class("almtokenizer").name == "almtokenizer"
    )
    with pytest.raises(ValueError, match="unknown codec 'dac'"):
        codec_class("dac")
