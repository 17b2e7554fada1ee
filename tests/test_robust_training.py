"""Training under faults: SIGKILL at each point of a checkpoint write, disk-full while saving.

A `python -m codec.training` process is SIGKILLed from inside at three exact points of its second
checkpoint write (half-way through the training-state file; between the two renames of the
folder swap; after the swap, before the old folder is removed). Each time the previous (or the
new) checkpoint is loadable, `--resume` continues from its step, and the resumed run ends with
exactly the weights of an uninterrupted run. A disk-full error (ENOSPC) at each write of a
checkpoint (model weights, discriminator, training state, the swap) propagates with its errno
and leaves the previous checkpoint byte-identical (same hash); through the CLI it exits non-zero
with the reason on stderr.
"""

from __future__ import annotations

import errno
import hashlib
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
import yaml

import codec.checkpoint as ck
from codec.models.registry import load_codec
from codec.training import distributed as D
from codec.training import state as S
from codec.training.loop import Trainer, train
from tests.fixtures import make_goodsounds
from tests.train_configs import tiny_config, tiny_raw

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
STEPS = 4  # checkpoints (latest/) after steps 1, 2, 3 and at the end


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("gs") / "good-sounds"
    make_goodsounds(root, instruments=("flute", "cello"), midis=(57, 64), seconds=0.5)
    return root


def overrides() -> tuple[str, ...]:
    return (f"training.max_steps={STEPS}", "training.checkpoint_freq=1")


@pytest.fixture(scope="module")
def reference(data, tmp_path_factory) -> dict[str, torch.Tensor]:
    """Final weights of an uninterrupted run."""
    out = tmp_path_factory.mktemp("ref")
    res = train(tiny_config(data, out, *overrides()))
    return load_codec(res.final_dir).state_dict()


def folder_hash(folder: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(folder.iterdir()):
        h.update(p.name.encode() + p.read_bytes())
    return h.hexdigest()


def write_config(tmp: Path, data: Path) -> Path:
    raw = tiny_raw(data, tmp)
    raw["training"].update(max_steps=STEPS, checkpoint_freq=1)
    p = tmp / "run.yaml"
    p.write_text(yaml.safe_dump(raw))
    return p


# Runs codec.training.cli.main with one fault injected at the 2nd checkpoint write (step 2).
DRIVER = textwrap.dedent("""
    import errno, os, signal, sys
    from pathlib import Path
    import codec.training.state as S
    point = sys.argv[1]
    saves = []
    real_save = S.save_training_checkpoint
    def counting_save(*a, **k):
        saves.append(1)
        return real_save(*a, **k)
    S.save_training_checkpoint = counting_save
    import codec.training.cli
    import codec.training.loop
    codec.training.loop.save_training_checkpoint = counting_save
    def die():
        os.kill(os.getpid(), signal.SIGKILL)
    def enospc():
        raise OSError(errno.ENOSPC, "No space left on device")
    if point in ("kill_state_file", "enospc_state_file"):
        real_state = S.save_state_file
        def state(path, st):
            if len(saves) == 2:
                if point == "enospc_state_file":
                    enospc()
                Path(path).write_bytes(b"partial")
                die()
            return real_state(path, st)
        S.save_state_file = state
    elif point == "kill_between_renames":
        real_replace = os.replace
        def replace(src, dst):
            real_replace(src, dst)
            if Path(dst).name == ".latest.old" and len(saves) == 2:
                die()
        os.replace = replace
    elif point == "kill_after_swap":
        real_fsync_dir = S._fsync_dir
        def fsync_dir(path):
            real_fsync_dir(path)
            if Path(path).name == "ckpt" and len(saves) == 2:
                die()
        S._fsync_dir = fsync_dir
    sys.exit(codec.training.cli.main(sys.argv[2:]))
""")


def run_driver(point: str, cfg: Path, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", DRIVER, point, "--config", str(cfg), *extra],
        cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=180,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("point", "expected_step"),
    [("kill_state_file", 1), ("kill_between_renames", 1), ("kill_after_swap", 2)],
)
def test_sigkill_during_checkpoint_write_then_resume(
    data, tmp_path, reference, point, expected_step
) -> None:
    cfg_path = write_config(tmp_path, data)
    proc = run_driver(point, cfg_path)
    assert proc.returncode == -9, proc.stderr[-3000:]
    latest = tmp_path / "ckpt" / "latest"
    if point == "kill_between_renames":  # the name is empty; the old folder is complete
        assert not latest.exists() and S.is_complete(S._old_name(latest))
    else:
        S.recover(latest)  # what --resume does first
    if point != "kill_between_renames":
        assert S.is_complete(latest)
    else:
        latest = S._old_name(latest)
    state = S.load_state_file(latest / S.TRAIN_STATE_NAME)
    assert state["step"] == expected_step
    assert load_codec(latest).checkpoint_meta["step"] == expected_step
    assert not (tmp_path / "ckpt" / "final").exists()
    leftovers = [p.name for p in (tmp_path / "ckpt").iterdir() if p.name != "latest"]
    assert all(p.startswith((".latest.staging", ".latest.old")) for p in leftovers), leftovers

    if point == "kill_between_renames":  # the real CLI: --resume recovers .latest.old
        latest = tmp_path / "ckpt" / "latest"
        done = subprocess.run(
            [sys.executable, "-m", "codec.training", "--config", str(cfg_path), "--resume"],
            cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=180,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr[-3000:]
        assert f"resumed from {latest} at step {expected_step}" in done.stderr
        assert f"done: {STEPS} steps" in done.stdout
    else:
        trainer = Trainer(tiny_config(data, tmp_path, *overrides()), resume=True)
        assert trainer.step == expected_step
        try:
            assert trainer.run().step == STEPS
        finally:
            D.cleanup()
    final = load_codec(tmp_path / "ckpt" / "final")
    assert final.checkpoint_meta["step"] == STEPS
    got = final.state_dict()
    assert got.keys() == reference.keys()
    # equal up to float reduction order: the reference runs in this process, whose thread count
    # earlier tests may have changed; a lost RNG/optimizer state differs by orders more
    diff = [k for k in got if not torch.allclose(got[k].float(), reference[k].float(), 1e-4, 1e-6)]
    assert not diff, f"resumed run differs from an uninterrupted one in {diff[:5]}"
    left = [p.name for p in (tmp_path / "ckpt").glob(".*")]
    assert not left, f"a killed run's staging/old folders survived the resumed run: {left}"


def enospc(*a, **k):
    raise OSError(errno.ENOSPC, "No space left on device")


@pytest.mark.parametrize("fail_at", ["model_weights", "discriminator", "train_state", "swap"])
def test_disk_full_while_saving_keeps_previous_checkpoint(data, tmp_path, monkeypatch, fail_at):
    """ENOSPC during the step-2 checkpoint: OSError(ENOSPC) reaches the caller; the step-1
    checkpoint is byte-identical (after the `recover` that --resume runs) and resumable."""
    cfg = tiny_config(data, tmp_path, *overrides())
    latest = tmp_path / "ckpt" / "latest"
    hashes: dict[int, str] = {}

    def arm(step: int, scalars: dict) -> None:
        if step != 1:
            return
        hashes[1] = folder_hash(latest)
        if fail_at == "model_weights":
            monkeypatch.setattr(ck, "save_file", enospc)
        elif fail_at == "discriminator":
            monkeypatch.setattr(S, "save_file", enospc)
        elif fail_at == "train_state":
            monkeypatch.setattr(S, "save_state_file", enospc)
        else:
            real = os.replace

            def replace(src, dst):
                if Path(dst) == latest:  # the second rename of the swap
                    enospc()
                return real(src, dst)

            monkeypatch.setattr(os, "replace", replace)

    with pytest.raises(OSError) as e:
        train(cfg, on_step=arm)
    assert e.value.errno == errno.ENOSPC
    monkeypatch.undo()
    S.recover(latest)
    assert folder_hash(latest) == hashes[1], "previous checkpoint changed"
    assert S.load_state_file(latest / S.TRAIN_STATE_NAME)["step"] == 1
    assert sorted(p.name for p in (tmp_path / "ckpt").iterdir()) == ["latest"]
    assert Trainer(cfg, resume=True).step == 1
    D.cleanup()


def test_disk_full_through_the_cli(data, tmp_path) -> None:
    """The CLI fails with a non-zero status and says why; the step-1 checkpoint survives."""
    cfg_path = write_config(tmp_path, data)
    proc = run_driver("enospc_state_file", cfg_path)
    assert proc.returncode not in (0, -9), proc.stderr[-2000:]
    assert "No space left on device" in proc.stderr
    latest = tmp_path / "ckpt" / "latest"
    assert S.load_state_file(latest / S.TRAIN_STATE_NAME)["step"] == 1
    assert load_codec(latest).checkpoint_meta["step"] == 1
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error: ")]
    assert errors == [f"error: cannot write checkpoint {latest}: No space left on device"], errors
