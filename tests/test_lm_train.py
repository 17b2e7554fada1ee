"""LM training end to end on synthetic shards: config errors name the key, a tiny model learns a
repeating code pattern far below the unigram's bits, the evaluation command, and a resumed run
that takes exactly the steps of an uninterrupted one."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from codec.lm.cli import main as train_main
from codec.lm.config import ConfigError, load_config
from codec.lm.evaluate import main as evaluate_main
from codec.lm.loaders import load_lm
from codec.lm.loop import train
from codec.training import state as S
from tests.fixtures import CodeTokenizer, make_code_shards

ROOT = Path(__file__).resolve().parents[1]
CYCLE = [3, 7, 1, 12, 9]  # codebook 0 repeats these; codebook 1 is a function of codebook 0
TOKENIZER = CodeTokenizer(num_codebooks=2, codebook_size=16, rate=25.0)


def pattern(frames: int, phase: int) -> np.ndarray:
    c0 = np.array([CYCLE[(phase + t) % len(CYCLE)] for t in range(frames)])
    return np.stack([c0, (3 * c0 + 1) % 16])


@pytest.fixture(scope="module")
def shards(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("tokens") / "pattern"
    make_code_shards(
        root / "train",
        [pattern(40 + 3 * i, i) for i in range(8)],
        TOKENIZER,
        split="train",
        names=[f"t/{i}.wav" for i in range(8)],
    )
    make_code_shards(
        root / "val",
        [pattern(45, i + 2) for i in range(3)],
        TOKENIZER,
        split="val",
        names=[f"v/{i}.wav" for i in range(3)],
    )
    return root


def raw_config(shards: Path, out: Path, **training) -> dict:
    return {
        "model": {"scheme": "delay", "dim": 32, "n_layers": 2, "n_heads": 2, "dropout": 0.1},
        "data": {"shards": [str(shards)], "context_seconds": 0.8, "eval_chunks": 8},
        "training": {
            "max_steps": 6,
            "batch_size": 4,
            "lr": 3.0e-3,
            "warmup_steps": 2,
            "log_freq": 2,
            "eval_freq": 2,
            "checkpoint_freq": 3,
            "threads": 1,
            "device": "cpu",
            "writer_dir": str(out / "tb"),
            "checkpoint_dir": str(out / "ckpt"),
            **training,
        },
    }


def write(path: Path, raw: dict) -> Path:
    path.write_text(yaml.safe_dump(raw))
    return path


def test_config_errors_name_the_key(shards, tmp_path, capsys):
    raw = raw_config(shards, tmp_path)
    cases = [
        (
            {"model": {**raw["model"], "dropuot": 0.2}},
            "model.dropuot: unknown key (did you mean 'dropout'?)",
        ),
        (
            {"training": {**raw["training"], "batch_size": "big"}},
            "training.batch_size: expected int",
        ),
        (
            {"data": {**raw["data"], "shards": ["no/such/folder"]}},
            "data.shards[0]: no/such/folder does not exist",
        ),
        (
            {"model": {**raw["model"], "scheme": "parallel"}},
            "model.scheme: expected one of 'delay', 'depth'",
        ),
        ({"data": {**raw["data"], "context_seconds": 0}}, "data.context_seconds: must be in"),
    ]
    for change, message in cases:
        path = write(tmp_path / "bad.yaml", {**raw, **change})
        with pytest.raises(ConfigError) as err:
            load_config(path)
        assert str(err.value).startswith(message), str(err.value)
    path = write(tmp_path / "ok.yaml", raw)
    with pytest.raises(ConfigError, match="training.max_stpes: unknown key"):
        load_config(path, ["training.max_stpes=3"])
    assert load_config(path, ["training.max_steps=3"]).training.max_steps == 3
    # the command line: exit 2 and one error line, before any work
    assert train_main(["--config", str(path), "model.n_layer=3"]) == 2
    assert "error: model.n_layer: unknown key" in capsys.readouterr().err
    assert not (tmp_path / "ckpt").exists()


def test_the_shipped_configs_validate_and_match():
    cfgs = {n: load_config(ROOT / "configs" / f"lm_{n}.yaml", check_paths=False)
            for n in ("alm_w3", "alm_w6", "encodec_1p5")}  # fmt: skip
    first = next(iter(cfgs.values()))
    for cfg in cfgs.values():
        assert cfg.model == first.model and cfg.data.context_seconds == first.data.context_seconds
        assert cfg.training.max_steps == first.training.max_steps
        assert cfg.training.batch_size == first.training.batch_size
    assert len({c.training.checkpoint_dir for c in cfgs.values()}) == 3


def test_tiny_model_learns_the_pattern_far_below_the_unigram(shards, tmp_path, capsys):
    raw = raw_config(
        shards,
        tmp_path,
        max_steps=120,
        eval_freq=60,
        checkpoint_freq=60,
        log_freq=20,
        warmup_steps=10,
    )
    result = train(load_config(write(tmp_path / "fit.yaml", raw)))
    assert result.step == 120 and result.final_dir is not None
    assert (tmp_path / "ckpt" / "best" / "model.safetensors").is_file()
    assert list((tmp_path / "tb").glob("events.out.tfevents.*"))
    lm = load_lm(result.final_dir)
    assert lm.tokenizer.checkpoint_hash == TOKENIZER.checkpoint_hash and lm.context_frames == 20

    out = tmp_path / "eval.json"
    assert evaluate_main(["--checkpoint", str(result.final_dir), "--json", str(out)]) == 0
    table = capsys.readouterr().out
    assert "lm (delay)" in table and "unigram (add-one)" in table
    report = json.loads(out.read_text())
    uni = next(b for b in report["baselines"] if b["name"].startswith("unigram"))
    assert report["held_out_clips"] == 3 and report["raw_bits_per_second"] == 200.0
    assert uni["mean_bits_per_token"] > 2.0  # 5 codes in turn: about log2(5) bits each
    # one chunk start per 20 frames costs ~log2(5) bits; every other code is predictable
    assert report["lm"]["bits_per_second"] < 0.3 * uni["bits_per_second"], report["lm"]


class KilledError(Exception):
    pass


def test_resume_takes_the_steps_of_an_uninterrupted_run(shards, tmp_path):
    """Dropout on, a checkpoint at step 3, killed after step 5: resumed, it ends bit-identical
    to the run that never stopped (weights, optimiser moments, schedule)."""
    full = train(load_config(write(tmp_path / "a.yaml", raw_config(shards, tmp_path / "a"))))
    cfg_b = load_config(write(tmp_path / "b.yaml", raw_config(shards, tmp_path / "b")))

    def kill_at_5(step: int, scalars: dict) -> None:
        if step == 5:
            raise KilledError

    with pytest.raises(KilledError):
        train(cfg_b, on_step=kill_at_5)
    latest = tmp_path / "b" / "ckpt" / "latest"
    assert S.load_state_file(latest / S.TRAIN_STATE_NAME)["step"] == 3
    resumed = train(cfg_b, resume=True)
    assert full.step == resumed.step == 6
    a, b = load_lm(full.final_dir).state_dict(), load_lm(resumed.final_dir).state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    sa = S.load_state_file(tmp_path / "a" / "ckpt" / "latest" / S.TRAIN_STATE_NAME)
    sb = S.load_state_file(latest / S.TRAIN_STATE_NAME)
    assert sa["scheduler"]["last_epoch"] == sb["scheduler"]["last_epoch"] == 6
    for k, v in sa["optimizer"]["state"].items():
        assert torch.equal(v["exp_avg_sq"], sb["optimizer"]["state"][k]["exp_avg_sq"])
    # a resume against other shards is refused, naming the key
    other = raw_config(shards, tmp_path / "b")
    other["model"]["dim"] = 64
    with pytest.raises(ConfigError, match="training.checkpoint_dir: .* another model config"):
        train(load_config(write(tmp_path / "c.yaml", other)), resume=True)
