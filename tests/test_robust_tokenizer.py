"""Robustness of dataset tokenization against crashes and corrupt files.

A `python -m codec.tokenizer encode` process SIGKILLed at each point of a shard write (inside the
codes write, between the codes rename and the index-part rename, during fsync) never leaves a
shard that looks finished but is not, and a rerun completes with exactly the codes of a clean
run. A finished shard corrupted afterwards (truncated, bytes flipped at the same size, its index
part garbled or deleted) is detected on rerun and re-encoded; reading corrupt shards gives a
`ShardError` / exit status 1, never a raw exception.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from safetensors import safe_open

from codec.models.encodec import EnCodecCodec
from codec.models.registry import load_codec
from codec.tokenizer import ShardError, encode_dataset, iter_codes, read_index
from codec.tokenizer.cli import main
from codec.tokenizer.inputs import list_inputs
from codec.tokenizer.shards import read_part, shard_done, shard_paths
from tests.fixtures import write_tone

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
TINY = {
    "dimension": 16, "n_filters": 4, "lstm": 0, "n_q": 4, "bins": 16,
    "target_bandwidths": [0.6, 1.2], "bandwidth": 0.6, "train_bandwidths": [0.6],
    "kmeans_iters": 2,
}  # fmt: skip
N_CLIPS, SHARD = 9, 3


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("clips")
    for i in range(N_CLIPS):
        write_tone(root / f"c{i}.wav", 200.0 + 40 * i, 0.1 + 0.03 * i, (24000, 16000)[i % 2])
    return root


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    model = EnCodecCodec.from_config(TINY)
    model.train()
    model(0.3 * torch.randn(2, 1, 4800))
    return model.eval().save_pretrained(tmp_path_factory.mktemp("ck") / "enc")


def encode(checkpoint: Path, folder: Path, out: Path):
    return encode_dataset(
        load_codec(checkpoint), list_inputs("folder", folder), out, window=None,
        shard_size=SHARD, batch_size=2, num_workers=0, progress=False,
    )  # fmt: skip


def codes_of(out: Path) -> dict[int, torch.Tensor]:
    return {r["clip"]: c for r, c in iter_codes(out, read_index(out))}


@pytest.fixture(scope="module")
def reference(checkpoint, folder, tmp_path_factory) -> dict[int, torch.Tensor]:
    out = tmp_path_factory.mktemp("ref") / "codes"
    s = encode(checkpoint, folder, out)
    assert s.shards_written == N_CLIPS // SHARD
    codes = codes_of(out)
    assert sorted(codes) == list(range(N_CLIPS))
    return codes


def check_no_fake_finished(out: Path, reference: dict[int, torch.Tensor]) -> int:
    """Every shard that looks finished holds exactly the reference codes; files under final
    names are complete. Returns how many shards look finished."""
    done = 0
    for s in range(N_CLIPS // SHARD):
        codes_path, part_path = shard_paths(out, s)
        if codes_path.exists():  # a final name is only ever a whole file
            with safe_open(str(codes_path), framework="pt") as f:
                assert len(list(f.keys())) == SHARD
        if part_path.exists():
            rows, marker = read_part(part_path)
            assert marker is not None and len(rows) == SHARD, part_path.read_text()
        if shard_done(out, s):
            done += 1
            with safe_open(str(codes_path), framework="pt") as f:
                for clip in range(s * SHARD, (s + 1) * SHARD):
                    assert torch.equal(f.get_tensor(str(clip)).long(), reference[clip])
    return done


KILLER = textwrap.dedent("""
    import os, signal, sys
    import codec.tokenizer.shards as shards
    point, n = sys.argv[1], int(sys.argv[2])
    calls = []
    def killer(real):
        def f(*a, **k):
            calls.append(1)
            if len(calls) == n:
                os.kill(os.getpid(), signal.SIGKILL)
            return real(*a, **k)
        return f
    def half_then_kill(real):
        def f(tensors, path, metadata=None):
            calls.append(1)
            if len(calls) == n:
                real(tensors, path, metadata=metadata)
                with open(path, "r+b") as fh:  # a torn write: half the file reached the disk
                    fh.truncate(os.path.getsize(path) // 2)
                os.kill(os.getpid(), signal.SIGKILL)
            return real(tensors, path, metadata=metadata)
        return f
    if point == "replace":
        shards.os.replace = killer(os.replace)
    elif point == "fsync":
        shards.os.fsync = killer(os.fsync)
    elif point == "save_file":
        shards.save_file = half_then_kill(shards.save_file)
    from codec.tokenizer.cli import main
    sys.exit(main(sys.argv[3:]))
""")

# (point, n): os.replace calls go manifest, codes 0, part 0, codes 1, part 1, ...
KILL_POINTS = [("replace", 2), ("replace", 3), ("replace", 5), ("fsync", 4), ("save_file", 2)]


@pytest.mark.parametrize(("point", "n"), KILL_POINTS)
def test_sigkill_mid_shard_then_rerun(checkpoint, folder, reference, tmp_path, point, n):
    out = tmp_path / "codes"
    args = [
        "encode", "--checkpoint", str(checkpoint), "--input", str(folder), "--dataset", "folder",
        "--out", str(out), "--shard-size", str(SHARD), "--batch-size", "2", "--num-workers", "0",
        "--device", "cpu", "--bandwidth", "0.6", "--quiet",
    ]  # fmt: skip
    proc = subprocess.run(
        [sys.executable, "-c", KILLER, point, str(n), *args],
        cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == -9, proc.stderr[-2000:]
    done = check_no_fake_finished(out, reference)
    assert done < N_CLIPS // SHARD
    assert not (out / "index.jsonl").exists()
    s = encode(checkpoint, folder, out)  # the rerun
    assert s.shards_skipped == done and s.shards_written == N_CLIPS // SHARD - done
    assert check_no_fake_finished(out, reference) == N_CLIPS // SHARD
    got = codes_of(out)
    assert sorted(got) == sorted(reference)
    assert all(torch.equal(got[k], reference[k]) for k in reference)
    leftovers = [p.name for p in out.rglob(".*tmp-*")]
    assert not leftovers, leftovers


def corrupt_truncate(codes: Path, part: Path) -> None:
    codes.write_bytes(codes.read_bytes()[:-7])


def corrupt_flip_data(codes: Path, part: Path) -> None:
    """Same size, a few bytes of code data changed (bit rot, a bad copy)."""
    data = bytearray(codes.read_bytes())
    for i in range(1, 9):
        data[-i] ^= 0x5A
    codes.write_bytes(bytes(data))


def corrupt_flip_header(codes: Path, part: Path) -> None:
    data = bytearray(codes.read_bytes())
    data[12] ^= 0xFF
    codes.write_bytes(bytes(data))


def corrupt_swap_shard(codes: Path, part: Path) -> None:
    """Another shard's codes file copied over this one."""
    other = codes.with_name("00000.safetensors")
    codes.write_bytes(other.read_bytes())


def corrupt_part_garbage(codes: Path, part: Path) -> None:
    part.write_text(part.read_text()[:-30] + "\x00garbage")


def corrupt_part_deleted(codes: Path, part: Path) -> None:
    part.unlink()


CORRUPTIONS = [
    corrupt_truncate, corrupt_flip_data, corrupt_flip_header, corrupt_swap_shard,
    corrupt_part_garbage, corrupt_part_deleted,
]  # fmt: skip


@pytest.mark.parametrize("corrupt", CORRUPTIONS, ids=lambda f: f.__name__[8:])
def test_corrupt_shard_detected_on_rerun(checkpoint, folder, reference, tmp_path, corrupt):
    out = tmp_path / "codes"
    encode(checkpoint, folder, out)
    codes_path, part_path = shard_paths(out, 1)
    corrupt(codes_path, part_path)
    assert not shard_done(out, 1), "a corrupt shard still looks finished"
    s = encode(checkpoint, folder, out)
    assert (s.shards_written, s.shards_skipped) == (1, N_CLIPS // SHARD - 1)
    got = codes_of(out)
    assert all(torch.equal(got[k], reference[k]) for k in reference)


@pytest.mark.parametrize("corrupt", [corrupt_truncate, corrupt_flip_header], ids=["cut", "hdr"])
def test_reading_a_corrupt_shard_is_a_shard_error(checkpoint, folder, tmp_path, capsys, corrupt):
    """`stats` / `iter_codes` on a finished run whose shard was damaged afterwards."""
    out = tmp_path / "codes"
    encode(checkpoint, folder, out)
    corrupt(*shard_paths(out, 2))
    with pytest.raises(ShardError) as e:
        codes_of(out)
    assert "00002.safetensors" in str(e.value)
    assert main(["stats", "--shards", str(out)]) == 1
    assert "error:" in capsys.readouterr().err
