"""`python -m codec.lm.export`: a float16 LM folder that loads as the source does, checked on
held-out clips before it is kept; an existing folder is never replaced unasked, nor after a
failed check."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors import safe_open

from codec.lm import export as E
from codec.lm.config import load_config
from codec.lm.loaders import load_lm
from codec.lm.loop import train
from tests.fixtures import CodeTokenizer, make_code_shards

TOKENIZER = CodeTokenizer(num_codebooks=2, codebook_size=16, rate=25.0)


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> tuple[Path, Path]:
    """(shards root, a trained LM folder) on a seeded random-walk code pattern."""
    import yaml

    root = tmp_path_factory.mktemp("lm_export")
    rng = np.random.default_rng(0)

    def clip(frames: int) -> np.ndarray:
        c0 = np.cumsum(rng.integers(-1, 2, frames)) % 16
        return np.stack([c0, (5 * c0 + 3) % 16])

    make_code_shards(root / "tok" / "train", [clip(60) for _ in range(8)], TOKENIZER,
                     split="train", names=[f"t/{i}.wav" for i in range(8)])  # fmt: skip
    make_code_shards(root / "tok" / "test", [clip(60) for _ in range(3)], TOKENIZER,
                     split="test", names=[f"x/{i}.wav" for i in range(3)])  # fmt: skip
    raw = {
        "model": {"scheme": "delay", "dim": 32, "n_layers": 2, "n_heads": 2, "dropout": 0.0},
        "data": {"shards": [str(root / "tok")], "context_seconds": 0.8, "eval_chunks": 8},
        "training": {"max_steps": 30, "batch_size": 4, "lr": 3e-3, "warmup_steps": 2,
                     "log_freq": 10, "eval_freq": 30, "checkpoint_freq": 30, "threads": 1,
                     "device": "cpu", "writer_dir": str(root / "tb"),
                     "checkpoint_dir": str(root / "ckpt")},
    }  # fmt: skip
    (root / "lm.yaml").write_text(yaml.safe_dump(raw))
    result = train(load_config(root / "lm.yaml"))
    return root / "tok", result.final_dir


def test_float16_export_loads_as_the_source_and_records_its_check(trained, tmp_path, capsys):
    tok, src = trained
    out = tmp_path / "lm_export"
    assert E.main(["--checkpoint", str(src), "--out", str(out)]) == 0
    assert "float16" in capsys.readouterr().out
    with safe_open(str(out / "model.safetensors"), framework="pt") as f:
        dtypes = {f.get_tensor(k).dtype for k in f.keys()}  # noqa: SIM118
    assert dtypes == {torch.float16}
    size = (out / "model.safetensors").stat().st_size
    assert size < 0.6 * (src / "model.safetensors").stat().st_size
    a, b = load_lm(src), load_lm(out)
    for (k, va), vb in zip(a.state_dict().items(), b.state_dict().values()):
        assert vb.dtype == torch.float32, k  # loaded back into the float32 model
        assert torch.allclose(va, vb, rtol=2e-3, atol=1e-4), k
    export = json.loads((out / "config.json").read_text())["meta"]["export"]
    assert export["dtype"] == "float16" and export["held_out_clips"] == 3
    assert abs(export["bits_per_second_export"] - export["bits_per_second_source"]) < 0.5
    assert export["check_shards"] == [str(tok)]


def test_an_existing_folder_is_kept_without_force_and_after_a_failed_check(
    trained, tmp_path, capsys, monkeypatch
):
    _, src = trained
    out = tmp_path / "shipped"
    out.mkdir()
    (out / "MODEL_CARD.md").write_text("keep me")
    assert E.main(["--checkpoint", str(src), "--out", str(out)]) == 2
    assert "exists; pass --force" in capsys.readouterr().err
    real = E.evaluate_checkpoint
    calls = []

    def worse_second(checkpoint, *args, **kwargs):  # the export scores 10 bit/s worse
        report = real(checkpoint, *args, **kwargs)
        calls.append(checkpoint)
        if len(calls) == 2:
            report.lm.bits_per_token[0] += 10.0 / report.lm.frame_rate
        return report

    monkeypatch.setattr(E, "evaluate_checkpoint", worse_second)
    assert E.main(["--checkpoint", str(src), "--out", str(out), "--force"]) == 1
    assert "costs 10.000 bit/s over the source" in capsys.readouterr().err
    assert [p.name for p in out.iterdir()] == ["MODEL_CARD.md"]  # untouched
    assert not list(tmp_path.glob(".shipped*"))  # no staging left behind
    assert E.main(["--checkpoint", str(src), "--out", str(src)]) == 2
