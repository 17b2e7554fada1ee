"""Config and model-size bounds: every bound names its key; a config asking for a bigger model
than its weights is refused before anything is built; the EnCodec front end checks the official
file's hash; training-config edge cases (recursive YAML aliases, seed and device values)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from codec.checkpoint import CONFIG_NAME, CheckpointError, save_codec
from codec.models.registry import load_codec
from codec.training.config import ConfigError, load_config
from tests.tiny_models import untrained_tiny_alm as tiny_alm

ROOT = Path(__file__).resolve().parents[1]


def test_encodec_frontend_checks_the_official_hash(tmp_path: Path) -> None:
    from codec.models.almtokenizer import BaseArgs
    from codec.models.almtokenizer.frontend_encodec import EncodecFrontend, load_frontend_checkpoint
    from codec.models.encodec import EnCodecCodec, EnCodecConfig, EnCodecWeightsError

    f = tmp_path / "encodec_24khz-d7cc33bc.th"
    torch.save(EnCodecCodec(EnCodecConfig()).state_dict(), f)  # right layout, wrong file
    with pytest.raises(EnCodecWeightsError, match="sha256") as e:
        load_frontend_checkpoint(EncodecFrontend(BaseArgs()), str(f))
    assert str(f) in str(e.value)


@pytest.mark.parametrize(
    ("section", "key", "value"),
    [("base_args", "n_layers", 10**9), ("base_args", "decoder_n_layers", 65),
     ("base_args", "dim", 2**20), ("base_args", "ffn_dim", 10**9),
     ("base_args", "n_codebooks", 10**9), ("base_args", "codebook_size", 2**20),
     ("base_args", "encodec_lstm", 10**9), ("base_args", "encodec_residual_layers", -1),
     ("base_args", "ar_n_heads", 0), ("mae_args", "n_layers", 10**9), ("mae_args", "n_heads", 0)],
)  # fmt: skip
def test_alm_config_bounds_name_the_key(section: str, key: str, value: int) -> None:
    from codec.models.almtokenizer import ALMConfig, preset

    raw = preset("demo").to_dict()
    raw[section][key] = value
    with pytest.raises(ValueError, match=rf"^{section}\.{key}:"):
        ALMConfig.from_dict(raw)


@pytest.mark.parametrize(
    ("key", "value"),
    [("lstm", 10**9), ("n_residual_layers", 10**9), ("n_q", 65), ("bins", 2**20),
     ("dimension", 2**14), ("n_filters", 2**11), ("ratios", [10**9]), ("ratios", [2] * 17),
     ("decay", float("nan"))],
)  # fmt: skip
def test_encodec_config_bounds_name_the_key(key: str, value) -> None:
    from codec.models.encodec import EnCodecConfig

    with pytest.raises(ValueError, match=key):
        EnCodecConfig.from_dict({key: value})


def test_config_asking_for_a_bigger_model_is_refused_before_building(tmp_path, monkeypatch):
    """Within the bounds but not what the weights hold (64 layers of width 8192 would allocate
    ~200 GB): load_codec refuses while building, before any large tensor exists or is
    initialised (the build may allocate about what the weights file holds)."""
    folder = save_codec(tiny_alm(), tmp_path / "alm")
    cfg = json.loads((folder / CONFIG_NAME).read_text())
    cfg["model"]["base_args"].update(dim=8192, n_heads=64, ffn_dim=32768, n_layers=64)
    (folder / CONFIG_NAME).write_text(json.dumps(cfg))
    largest = [0]
    real_empty = torch.empty

    def spy_empty(*args, **kwargs):
        out = real_empty(*args, **kwargs)
        largest[0] = max(largest[0], out.numel())
        return out

    monkeypatch.setattr(torch, "empty", spy_empty)
    with pytest.raises(CheckpointError, match="asks for a model larger than .*model.safetensors"):
        load_codec(folder)
    assert largest[0] < 2**24, largest  # no tensor of the huge model was ever made


def test_allocation_budget_counts_before_allocating() -> None:
    from codec.alloc_budget import AllocationBudget, AllocationBudgetError

    with AllocationBudget(1000) as budget:
        torch.zeros(10, 10)
        torch.empty((20, 5))
        torch.full((100,), 1.0)
        torch.arange(50)  # counted from its result
        assert budget.total == 350
        with pytest.raises(AllocationBudgetError, match="more than 1,000"):
            torch.empty(2**40)  # refused from its size: 4 TB is never requested
        assert budget.total == 350
    with AllocationBudget(10**6), pytest.raises(AllocationBudgetError):
        torch.nn.Linear(2000, 2000)  # 4 M weights: refused before the init writes them


def test_recursive_yaml_alias_is_a_config_error(tmp_path: Path) -> None:
    p = tmp_path / "loop.yaml"
    p.write_text("training: &t\n  eval_windows: [*t]\n")
    with pytest.raises(ConfigError, match="loop.yaml"):
        load_config(p, check_paths=False)


def test_valid_seed_and_device_values_pass() -> None:
    for over in (["training.seed=4294967295", "training.device=cuda:1"], ["training.seed=0"]):
        load_config(ROOT / "configs" / "demo.yaml", over, check_paths=False)
    with pytest.raises(ConfigError, match=r"^training\.seed"):
        load_config(ROOT / "configs" / "demo.yaml", ["training.seed=-1"], check_paths=False)
