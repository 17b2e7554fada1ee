"""`python -m codec.lm` as processes: 2-process gloo DDP under torchrun takes the same steps as
one process with the whole batch."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch
import yaml

from codec.lm.config import load_config
from codec.lm.loaders import build_lm, load_lm
from codec.lm.loop import train
from codec.lm.model import TokenShape
from codec.training import state as S
from tests.fixtures import CodeTokenizer, make_code_shards

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}


def raw_config(shards: Path, out: Path, batch_size: int) -> dict:
    # dropout 0: each rank draws its own dropout masks, so only a dropout-free run can match
    return {
        "model": {"dim": 32, "n_layers": 2, "n_heads": 2, "dropout": 0.0},
        "data": {"shards": [str(shards)], "context_seconds": 0.4, "eval_chunks": 4},
        "training": {
            "max_steps": 3,
            "batch_size": batch_size,
            "lr": 1.0e-4,
            "warmup_steps": 0,
            "eval_freq": 2,
            "checkpoint_freq": 2,
            "log_freq": 1,
            "threads": 1,
            "device": "cpu",
            "writer_dir": str(out / "tb"),
            "checkpoint_dir": str(out / "ckpt"),
        },
    }


def test_ddp_two_processes_gloo_matches_one_process(tmp_path):
    rng = np.random.default_rng(0)
    tok = CodeTokenizer(num_codebooks=2, codebook_size=32)
    # every clip longer than the context (10 frames): every crop has the same number of codes,
    # so the mean of the 2 ranks' losses is the loss of the whole batch
    make_code_shards(
        tmp_path / "tok" / "train",
        [rng.integers(0, 32, (2, 25)) for _ in range(8)],
        tok,
        split="train",
    )
    make_code_shards(
        tmp_path / "tok" / "val",
        [rng.integers(0, 32, (2, 12)) for _ in range(2)],
        tok,
        split="val",
        names=["v/0.wav", "v/1.wav"],
    )
    shards = tmp_path / "tok"
    cfg_path = tmp_path / "ddp.yaml"
    cfg_path.write_text(yaml.safe_dump(raw_config(shards, tmp_path / "ddp", batch_size=2)))
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nproc_per_node=2",
            "-m",
            "codec.lm",
            "--config",
            str(cfg_path),
        ],
        cwd=ROOT,
        env=ENV,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "done: 3 steps" in proc.stdout
    ckpt = tmp_path / "ddp" / "ckpt"
    state = S.load_state_file(ckpt / "latest" / S.TRAIN_STATE_NAME)
    assert state["step"] == 3 and state["world_size"] == 2 and len(state["rng"]) == 2
    assert len(list((tmp_path / "ddp" / "tb").glob("events.out.tfevents.*"))) == 1  # rank 0

    single_path = tmp_path / "single.yaml"
    single_path.write_text(yaml.safe_dump(raw_config(shards, tmp_path / "one", batch_size=4)))
    threads = torch.get_num_threads()
    try:
        ref = load_lm(train(load_config(single_path)).final_dir).state_dict()
    finally:
        torch.set_num_threads(threads)
    got = load_lm(ckpt / "final").state_dict()
    torch.manual_seed(0)  # the trainer's initial weights (training.seed 0), to see them move
    init = build_lm(load_config(single_path).model, TokenShape(2, 32, 10)).state_dict()
    assert ref.keys() == got.keys() == init.keys()
    for k in ref:
        # atol 1e-5 is a tenth of one Adam step (lr 1e-4): a rank's gradient that is not the
        # whole batch's mean would move weights by about a step
        assert torch.allclose(ref[k], got[k], rtol=1e-4, atol=1e-5), k
    moved = sum(int((got[k] - init[k]).abs().max() > 1e-4) for k in got)
    assert moved > len(got) // 2  # the comparison is not vacuous: the weights did train
