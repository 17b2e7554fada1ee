"""One registry: a new backend is one `Codec` subclass plus one registry entry, and then
checkpoint loading, the training config and the app's line-up know it. Proven with a tiny
third backend that exists only in this test."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

from app.state import load_lineup
from codec.checkpoint import CheckpointError
from codec.models import registry
from codec.models.base import Codec, Encoded
from codec.models.registry import Backend, codec_class, load_codec, load_folder
from codec.schema import ConfigError
from codec.training.config import TrainConfig
from tests.app_assets import AppAssets

HOP = 240


class ToyCodec(Codec):
    """Block means of the waveform (100 Hz), scaled and rounded to 8-bit codes."""

    name = "toy"

    def __init__(self, scale: float = 1.0) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.tensor(float(scale)))

    @property
    def latent_dim(self) -> int:
        return 1

    @property
    def num_codebooks(self) -> int:
        return 1

    @property
    def codebook_size(self) -> int:
        return 256

    def frame_rate(self, window: int | None = None) -> float:
        return self.sample_rate / HOP

    def encode(self, wav: torch.Tensor, window: int | None = None) -> Encoded:
        n = wav.shape[-1]
        pad = (-n) % HOP
        z = nn.functional.pad(wav, (0, pad)).reshape(wav.shape[0], 1, -1, HOP).mean(-1)
        latents = z * self.scale
        codes = ((latents.clamp(-1, 1) + 1) * 127.5).round().long()
        return Encoded(latents, self.codes_to_latents(codes), codes, None, n)

    def codes_to_latents(self, codes: torch.Tensor, window: int | None = None) -> torch.Tensor:
        return codes.float() / 127.5 - 1

    def decode(
        self, latents: torch.Tensor, window: int | None = None, num_samples: int | None = None
    ) -> torch.Tensor:
        wav = (latents / self.scale).repeat_interleave(HOP, dim=-1)
        return wav if num_samples is None else wav[..., :num_samples]

    def config_dict(self) -> dict[str, Any]:
        return {"scale": float(self.scale)}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> ToyCodec:
        return cls(**config)


@pytest.fixture
def toy(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """The toy backend registered (for this test only) with a saved checkpoint."""
    folder = ToyCodec(scale=0.5).save_pretrained(tmp_path / "toy_ckpt")
    entry = Backend("toy", "Toy", lambda: ToyCodec, load_folder(lambda: ToyCodec), lambda: [folder])
    monkeypatch.setitem(registry.BACKENDS, "toy", entry)
    return folder


def test_checkpoints_of_a_new_backend_load_through_the_registry(toy: Path) -> None:
    model = load_codec(toy)
    assert type(model) is ToyCodec and float(model.scale) == 0.5
    assert codec_class("toy") is ToyCodec and registry.family("toy") == "toy"
    wav = torch.sin(torch.linspace(0, 60, 4800))[None, None] * 0.5
    assert model.reconstruct(wav).shape == wav.shape


def test_an_unregistered_codec_is_named_in_the_error(tmp_path: Path) -> None:
    folder = ToyCodec().save_pretrained(tmp_path / "toy_ckpt")
    with pytest.raises(CheckpointError, match=r"unknown codec 'toy'; known: almtokenizer, encodec"):
        load_codec(folder)


def test_the_training_config_accepts_a_registered_type(toy: Path) -> None:
    cfg = TrainConfig.from_dict({"model": {"type": "toy", "base_args": {"scale": 2.0}}}, False)
    assert cfg.model.codec_args() == {"scale": 2.0}
    with pytest.raises(ConfigError, match=r"model\.type: unknown codec 'toyy'; known: .*toy"):
        TrainConfig.from_dict({"model": {"type": "toyy"}}, False)


def test_the_app_lineup_shows_a_new_backend(toy: Path, assets: AppAssets) -> None:
    notices: list[str] = []
    lineup = load_lineup(assets.config(warmup=False), notices)
    assert [c.key for c in lineup] == ["almtokenizer", "encodec", "toy"]
    assert lineup[-1].label == "Toy" and type(lineup[-1].codec) is ToyCodec
