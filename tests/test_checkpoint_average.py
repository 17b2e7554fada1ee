"""`python -m codec.training.average`: the mean of several snapshots' weights."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from codec.models.registry import load_codec
from codec.training.average import average_codecs, main
from tests.tiny_models import tiny_alm, tiny_encodec


def _snapshots(tmp_path: Path) -> list[Path]:
    """Three folders of one tiny EnCodec config with different weights (seeds 0, 1, 2)."""
    return [tiny_encodec(seed).save_pretrained(tmp_path / f"step_{seed}") for seed in range(3)]


def test_average_is_the_mean_with_the_quantizer_from_the_last(tmp_path: Path) -> None:
    folders = _snapshots(tmp_path)
    states = [load_codec(f).state_dict() for f in folders]
    codec, kept = average_codecs(folders)
    mean = codec.state_dict()
    weights = [k for k in mean if not k.startswith("quantizer.")]
    assert weights and all(
        torch.allclose(mean[k], sum(s[k] for s in states) / 3, atol=1e-6) for k in weights
    )
    assert any(not torch.equal(mean[k], states[-1][k]) for k in weights)
    assert kept and all(k.startswith("quantizer.") for k in kept)
    assert all(torch.equal(mean[k], states[-1][k]) for k in kept)


def test_cli_writes_a_strict_loading_folder_and_refuses_bad_inputs(tmp_path: Path, capsys) -> None:
    folders = [str(f) for f in _snapshots(tmp_path)]
    out = tmp_path / "avg"
    assert main(["--out", str(out), *folders]) == 0
    assert load_codec(out).state_dict().keys() == load_codec(folders[0]).state_dict().keys()
    before = (out / "model.safetensors").read_bytes()
    assert main(["--out", str(out), *folders]) == 1  # never overwrites
    assert "exists" in capsys.readouterr().err
    assert (out / "model.safetensors").read_bytes() == before
    alm = tiny_alm().save_pretrained(tmp_path / "alm")
    assert main(["--out", str(tmp_path / "mixed"), folders[0], str(alm)]) == 1
    assert "config differs" in capsys.readouterr().err
    assert main(["--out", str(tmp_path / "one"), folders[0]]) == 1
    assert "at least two" in capsys.readouterr().err
    assert not (tmp_path / "mixed").exists() and not (tmp_path / "one").exists()


def test_average_of_one_snapshot_twice_is_that_snapshot(tmp_path: Path) -> None:
    folder = tiny_encodec(0).save_pretrained(tmp_path / "a")
    codec, _ = average_codecs([folder, folder], keep_last=())
    own = load_codec(folder).state_dict()
    assert all(torch.allclose(v, own[k]) for k, v in codec.state_dict().items())
    with pytest.raises(ValueError, match="at least two"):
        average_codecs([folder])
