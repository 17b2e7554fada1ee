"""`python -m codec.training` as a process: 2-process gloo DDP under torchrun, and a real SIGKILL
followed by `--resume`."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml

from codec.models.registry import load_codec
from codec.training import state as S
from codec.training.loop import seed_everything, train
from codec.training.model_setup import build_model
from tests.fixtures import make_goodsounds
from tests.train_configs import tiny_config, tiny_raw

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("gs") / "good-sounds"
    make_goodsounds(root, seconds=0.5)
    return root


def write_config(path: Path, raw: dict) -> Path:
    path.write_text(yaml.safe_dump(raw))
    return path


def test_ddp_two_processes_gloo_matches_one_process(data, tmp_path):
    """torchrun with 2 CPU processes x batch 2 takes the same steps as 1 process x batch 4."""
    raw = tiny_raw(data, tmp_path / "ddp")
    # one intra-op thread in every process (torchrun's default): with 2 threads the single
    # process sums in another order and Adam amplifies that on near-zero gradients
    raw["training"].update(max_steps=3, checkpoint_freq=2, eval_freq=2, threads=1)
    cfg_path = write_config(tmp_path / "ddp.yaml", raw)
    proc = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
         "-m", "codec.training", "--config", str(cfg_path)],
        cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "done: 3 steps" in proc.stdout
    ckpt = tmp_path / "ddp" / "ckpt"
    state = S.load_state_file(ckpt / "latest" / S.TRAIN_STATE_NAME)
    assert state["step"] == 3 and state["world_size"] == 2 and len(state["rng"]) == 2
    assert len(list((tmp_path / "ddp" / "tb").glob("events.out.tfevents.*"))) == 1  # rank 0 only

    single = tiny_config(
        data, tmp_path / "single", "dataloader.batch_size=4", "training.max_steps=3",
        "training.checkpoint_freq=2", "training.eval_freq=2", "training.threads=1",
    )  # fmt: skip
    threads = torch.get_num_threads()
    try:
        ref = load_codec(train(single).final_dir).state_dict()
    finally:
        torch.set_num_threads(threads)
    got = load_codec(ckpt / "final").state_dict()
    seed_everything(single.training.seed)  # the weights both runs started from
    init = build_model(single).state_dict()
    assert ref.keys() == got.keys() == init.keys()
    # atol 1e-5 is a tenth of one Adam step (lr 1e-4): a gradient that is not the full
    # batch's average moves weights by about a step; float summation order (2 ranks vs 1
    # process) moved one weight of 32,768 by 1.5e-6 in a measured run
    moved = 0
    for k in ref:
        assert torch.allclose(ref[k], got[k], rtol=1e-4, atol=1e-5), k
        if k.startswith("encoder.") and (ref[k] - init[k]).abs().max() > 1e-4:
            moved += 1
    assert moved > 0  # the comparison is not vacuous: the encoder did train


def _latest_step(latest: Path) -> int:
    try:
        return int(S.load_state_file(latest / S.TRAIN_STATE_NAME)["step"])
    except Exception:  # not written yet, or being swapped right now
        return -1


def test_sigkill_then_resume(data, tmp_path):
    """Killed with SIGKILL at an arbitrary moment (checkpointing every step), the run leaves a
    complete checkpoint and `--resume` continues from it."""
    raw = tiny_raw(data, tmp_path)
    raw["training"].update(max_steps=10_000, num_epochs=10_000, checkpoint_freq=1)
    cfg_path = write_config(tmp_path / "run.yaml", raw)
    cmd = [sys.executable, "-m", "codec.training", "--config", str(cfg_path)]
    proc = subprocess.Popen(
        cmd, cwd=ROOT, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    latest = tmp_path / "ckpt" / "latest"
    try:
        deadline = time.time() + 120
        while _latest_step(latest) < 3:
            assert proc.poll() is None, "training exited early"
            assert time.time() < deadline, "no checkpoint within 120 s"
            time.sleep(0.05)
        time.sleep(0.13)  # land somewhere inside a later step or checkpoint write
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    S.recover(latest)
    assert S.is_complete(latest)
    step = S.load_state_file(latest / S.TRAIN_STATE_NAME)["step"]
    assert step >= 3 and load_codec(latest).checkpoint_meta["step"] == step
    target = step + 2
    done = subprocess.run(
        [*cmd, "--resume", f"training.max_steps={target}"],
        cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert f"done: {target} steps" in done.stdout
    assert f"resumed from {latest} at step {step}" in done.stderr
    assert load_codec(tmp_path / "ckpt" / "final").checkpoint_meta["step"] == target
