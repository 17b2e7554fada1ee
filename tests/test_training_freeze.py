"""`training.freeze`: parameter-name prefixes kept frozen (fine-tune an autoencoder's decoder
while its encoder, hence its latents, stay exactly as they were)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from codec.models.registry import load_codec
from codec.training.config import ConfigError
from codec.training.loop import train
from codec.training.model_setup import build_model, trainable_parameters
from tests.fixtures import make_goodsounds
from tests.train_configs import tiny_config

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("gs") / "good-sounds"
    make_goodsounds(root, seconds=0.5)
    return root


def test_frozen_encoder_keeps_its_weights_while_the_decoder_trains(data: Path, tmp_path: Path):
    first = train(tiny_config(data, tmp_path / "a", "training.max_steps=1")).final_dir
    before = load_codec(first).state_dict()
    cfg = tiny_config(
        data, tmp_path / "b", "training.max_steps=3", f"training.start_checkpoint={first}",
        "training.freeze=[encoder]", "training.lr_generator=1e-2",
    )  # fmt: skip
    after = load_codec(train(cfg).final_dir).state_dict()
    enc = [k for k in before if k.startswith("encoder.")]
    dec = [k for k in before if k.startswith("decoder.") and "weight" in k]
    assert enc and dec
    assert all(torch.equal(before[k], after[k]) for k in enc)
    assert any(not torch.equal(before[k], after[k]) for k in dec)


def test_freeze_prefix_that_names_nothing_is_a_config_error(data: Path, tmp_path: Path):
    cfg = tiny_config(data, tmp_path, "training.freeze=[encodr]")
    with pytest.raises(ConfigError, match=r"training\.freeze\[0\]: 'encodr' names no parameter"):
        trainable_parameters(build_model(cfg), cfg)
    with pytest.raises(ConfigError, match=r"training\.freeze: entries must not be empty"):
        tiny_config(data, tmp_path, "training.freeze=['']")
