"""Dataset tokenization: shards + index, resume, distributed = single process, exact decode,
codebook statistics and the command line."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

import codec.tokenizer.runner as runner
from codec.audio import load_audio
from codec.models.encodec import EnCodecCodec
from codec.models.registry import load_codec
from codec.tokenizer import (
    ShardError,
    codebook_stats,
    encode_dataset,
    iter_codes,
    iter_decoded,
    read_index,
    read_manifest,
    token_timeline,
)
from codec.tokenizer.cli import main
from codec.tokenizer.inputs import list_inputs
from codec.tokenizer.shards import shard_paths
from tests.fixtures import write_tone

TINY = {
    "n_filters": 4,
    "lstm": 1,
    "n_q": 4,
    "target_bandwidths": [1.5, 3.0],
    "bandwidth": 1.5,
    "train_bandwidths": [1.5, 3.0],
    "kmeans_iters": 2,
}
NUM_CLIPS = 11  # + 1 unreadable file


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Clips of varied lengths and rates, in sub-folders, plus one corrupt file."""
    root = tmp_path_factory.mktemp("clips")
    for i in range(NUM_CLIPS):
        sr = (24000, 16000, 44100)[i % 3]
        write_tone(root / f"g{i % 2}" / f"c{i:02d}.wav", 150.0 + 37 * i, 0.15 + 0.07 * i, sr)
    (root / "g0" / "broken.wav").write_bytes(b"RIFF....not audio")
    return root


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    model = EnCodecCodec.from_config(TINY)
    model.train()
    model(0.3 * torch.randn(4, 1, 9600))  # k-means-initialise the codebooks
    return model.eval().save_pretrained(tmp_path_factory.mktemp("ck") / "encodec_tiny")


def _encode(checkpoint: Path, folder: Path, out: Path, **kw) -> runner.EncodeSummary:
    args = dict(window=None, shard_size=4, batch_size=3, num_workers=0, progress=False)
    return encode_dataset(load_codec(checkpoint), list_inputs("folder", folder), out, **args | kw)


def _shard_codes(out: Path) -> dict[int, torch.Tensor]:
    return {r["clip"]: c for r, c in iter_codes(out, read_index(out))}


@pytest.fixture(scope="module")
def single_run(checkpoint: Path, folder: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("single") / "codes"
    summary = _encode(checkpoint, folder, out)
    assert (summary.shards_written, summary.shards_skipped, summary.errors) == (3, 0, 1)
    return out


def test_shards_and_index(single_run: Path, checkpoint: Path, folder: Path) -> None:
    manifest = read_manifest(single_run)
    model = load_codec(checkpoint)
    assert manifest["codec"] == "encodec" and manifest["n_q"] == 2
    assert manifest["checkpoint_hash"] == model.checkpoint_hash
    assert manifest["num_clips"] == NUM_CLIPS + 1 and manifest["num_shards"] == 3
    rows = read_index(single_run)
    assert [r["clip"] for r in rows] == list(range(NUM_CLIPS + 1))
    bad = [r for r in rows if r.get("error")]
    assert len(bad) == 1 and bad[0]["name"] == "g0/broken.wav"
    codes = _shard_codes(single_run)
    assert len(codes) == NUM_CLIPS
    with torch.no_grad():
        for r in rows:
            if r.get("error"):
                continue
            wav = load_audio(r["path"])
            assert r["num_samples"] == wav.shape[-1]
            assert r["frames"] == math.ceil(r["num_samples"] * 75 / 24000)
            assert r["checkpoint_hash"] == model.checkpoint_hash and r["window"] is None
            stored = codes[r["clip"]]
            assert stored.shape == (2, r["frames"])
            # batched, zero-padded encoding gives each clip exactly its own codes
            assert torch.equal(stored, model.encode(wav[None]).codes[0])


def test_resume_skips_finished_shards(single_run: Path, checkpoint, folder, tmp_path) -> None:
    out = tmp_path / "codes"
    calls = {"n": 0}
    real_write = runner.write_shard

    def crash_on_second(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt("killed")
        return real_write(*args, **kwargs)

    runner.write_shard = crash_on_second
    try:
        with pytest.raises(KeyboardInterrupt):
            _encode(checkpoint, folder, out)
    finally:
        runner.write_shard = real_write
    assert not (out / "index.jsonl").exists()
    # a killed writer's leftovers: a temp file and a codes file without its index marker
    (out / "shards" / ".00001.safetensors.tmp-x").write_bytes(b"half")
    shard_paths(out, 1)[0].write_bytes(b"half-written")
    assert len(read_index(out)) == 4  # only shard 0 counts as finished
    summary = _encode(checkpoint, folder, out)
    assert (summary.shards_skipped, summary.shards_written) == (1, 2)
    assert not list((out / "shards").glob(".*tmp*"))
    assert read_index(out) == read_index(single_run)
    a, b = _shard_codes(out), _shard_codes(single_run)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    again = _encode(checkpoint, folder, out)
    assert (again.shards_skipped, again.shards_written, again.clips) == (3, 0, 0)
    with pytest.raises(ShardError, match="shard_size"):
        _encode(checkpoint, folder, out, shard_size=5)


def _dist_worker(rank: int, world: int, rendezvous: str, ckpt: str, folder: str, out: str):
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{rendezvous}", rank=rank, world_size=world)
    try:
        summary = _encode(Path(ckpt), Path(folder), Path(out))
        Path(f"{rendezvous}.rank{rank}").write_text(json.dumps(vars(summary)))
    finally:
        dist.destroy_process_group()


def test_two_gloo_ranks_equal_single_process(single_run: Path, checkpoint, folder, tmp_path):
    out = tmp_path / "codes"
    args = (2, str(tmp_path / "rdv"), str(checkpoint), str(folder), str(out))
    mp.spawn(_dist_worker, args=args, nprocs=2, join=True)
    done = [json.loads((tmp_path / f"rdv.rank{r}").read_text()) for r in (0, 1)]
    assert [(d["rank"], d["world_size"]) for d in done] == [(0, 2), (1, 2)]
    # rank 0 owns shards 0 and 2 (clips 0-3, 8-11), rank 1 owns shard 1 (clips 4-7)
    assert [(d["shards_written"], d["clips"]) for d in done] == [(2, 8), (1, 4)]
    assert read_index(out) == read_index(single_run)
    a, b = _shard_codes(out), _shard_codes(single_run)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_decode_reproduces_decode_codes(single_run: Path, checkpoint: Path, tmp_path) -> None:
    model = load_codec(checkpoint)
    n = 0
    with torch.no_grad():
        for row, wav in iter_decoded(single_run, model):
            clip = load_audio(row["path"])[None]
            direct = model.decode_codes(model.encode(clip).codes, None, clip.shape[-1])
            assert wav.shape == (1, 1, row["num_samples"])
            assert torch.equal(wav, direct)
            n += 1
    assert n == NUM_CLIPS
    # the CLI writes the same signal as 16-bit wav files named after the inputs
    argv = ["decode", "--shards", str(single_run), "--out", str(tmp_path / "wav"), "--quiet"]
    assert main(argv) == 2  # the library run recorded no checkpoint path
    assert main([*argv, "--checkpoint", str(checkpoint)]) == 0
    files = sorted(p.relative_to(tmp_path / "wav").as_posix() for p in tmp_path.rglob("*.wav"))
    assert len(files) == NUM_CLIPS and "g1/c01.wav" in files
    row, wav = next(iter_decoded(single_run, model))
    data, sr = sf.read(tmp_path / "wav" / row["name"], dtype="float32")
    assert sr == 24000
    np.testing.assert_allclose(data, wav[0, 0].clamp(-1, 1).numpy(), atol=1.5 / 32768)


def test_decode_refuses_another_checkpoint(single_run: Path, tmp_path, capsys) -> None:
    other = EnCodecCodec.from_config(TINY).save_pretrained(tmp_path / "other")
    argv = ["decode", "--shards", str(single_run), "--out", str(tmp_path / "w")]
    assert main([*argv, "--checkpoint", str(other)]) == 1
    assert "checkpoint hash" in capsys.readouterr().err


def test_codebook_stats_and_timeline() -> None:
    codes = torch.tensor([[0, 1, 2, 3, 0, 1, 2, 3], [5, 5, 5, 5, 5, 5, 5, 7]])
    st = codebook_stats(codes, codebook_size=8)
    assert st.num_tokens == 8 and len(st.layers) == 2
    l0, l1 = st.layers
    assert (l0.used, l0.utilisation) == (4, 0.5)
    assert l0.perplexity == pytest.approx(4.0) and l0.entropy_bits == pytest.approx(2.0)
    assert l0.top == [(0, 2), (1, 2), (2, 2), (3, 2)]
    assert l1.top == [(5, 7), (7, 1)] and 1.0 < l1.perplexity < 2.0
    both = codebook_stats([codes[:, :4], codes[:, 4:].numpy()], 8)
    assert both.to_dict() == st.to_dict()
    assert codebook_stats(codes[None], 8).layers[0].used == 4
    with pytest.raises(ValueError, match=r"\[0, 4\)"):
        codebook_stats(codes, 4)
    tl = token_timeline(codes, frame_rate=12.5)
    assert tl.codes.shape == (2, 8) and tl.times[1] == pytest.approx(0.08)
    np.testing.assert_array_equal(tl.codes[1], codes[1].numpy())


def test_cli_encode_stats_roundtrip(checkpoint: Path, folder: Path, tmp_path, capsys) -> None:
    out = tmp_path / "codes"
    argv = ["encode", "--checkpoint", str(checkpoint), "--input", str(folder), "--out", str(out)]
    assert main([*argv, "--shard-size", "5", "--batch-size", "2", "--num-workers", "1"]) == 0
    assert "12 clips" in capsys.readouterr().out
    assert main(["stats", "--shards", str(out), "--json"]) == 0
    stats = json.loads(capsys.readouterr().out)
    assert stats["clips"] == NUM_CLIPS and len(stats["layers"]) == 2
    assert stats["num_tokens"] == sum(r["frames"] for r in read_index(out))
    assert main(["stats", "--shards", str(out)]) == 0
    assert "perplexity" in capsys.readouterr().out
    # the manifest remembers the checkpoint, so decode needs no --checkpoint
    assert main(["decode", "--shards", str(out), "--out", str(tmp_path / "w"), "--limit", "2"]) == 0
    assert len(list((tmp_path / "w").rglob("*.wav"))) == 2


@pytest.mark.parametrize(
    ("extra", "code", "message"),
    [
        (["--shard-size", "0"], 2, "--shard-size"),
        (["--window", "0", "--codec", "almtokenizer"], 2, "holds a encodec"),
        (["--dataset", "fsd50k"], 1, "FSD50K"),
    ],
)
def test_cli_bad_args(checkpoint, folder, tmp_path, capsys, extra, code, message) -> None:
    argv = ["encode", "--checkpoint", str(checkpoint), "--input", str(folder)]
    assert main([*argv, "--out", str(tmp_path / "o"), *extra]) == code
    assert message in capsys.readouterr().err


def test_cli_missing_things(tmp_path, capsys) -> None:
    assert main(["encode", "--out", str(tmp_path / "o"), "--input", str(tmp_path)]) == 2
    assert "--checkpoint is required" in capsys.readouterr().err
    assert main(["stats", "--shards", str(tmp_path)]) == 1
    assert "manifest.json" in capsys.readouterr().err
    ck = ["--checkpoint", str(tmp_path / "none")]
    assert main(["encode", *ck, "--input", str(tmp_path), "--out", str(tmp_path / "o")]) == 1
    assert "does not exist" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:
        main(["encode", "--batch-size", "x", "--out", "o"])
    assert e.value.code == 2


def test_almtokenizer_window(tmp_path, folder, capsys) -> None:
    from codec.models.almtokenizer import ALMTokenizer, preset

    torch.manual_seed(0)
    ck = ALMTokenizer(preset("demo")).eval().save_pretrained(tmp_path / "alm")
    out = tmp_path / "codes"
    argv = ["encode", "--checkpoint", str(ck), "--input", str(folder), "--out", str(out)]
    assert main([*argv, "--quiet"]) == 2
    assert "--window is required" in capsys.readouterr().err
    assert main([*argv, "--window", "11", "--quiet"]) == 2
    assert "trained range" in capsys.readouterr().err
    assert main([*argv, "--window", "3", "--batch-size", "4", "--quiet", "--num-workers", "0"]) == 0
    model = load_codec(ck)
    rows = [r for r in read_index(out) if not r.get("error")]
    assert all(r["window"] == 3 for r in rows)
    with torch.no_grad():
        for row, codes in iter_codes(out, rows[:4]):
            assert codes.shape == (model.num_codebooks, model.num_frames(row["num_samples"], 3))
            wav = load_audio(row["path"])[None]
            assert torch.equal(codes, model.encode(wav, 3).codes[0])
        row, wav = next(iter_decoded(out, model))
        ((_, codes),) = iter_codes(out, [row])
        assert torch.equal(wav, model.decode_codes(codes[None], 3, row["num_samples"]))


def test_backend_defaults_come_from_the_registry(monkeypatch, tmp_path) -> None:
    """`--codec NAME` without paths loads that backend's default weights (codec/models/registry.py);
    the EnCodec family prefers the official file over our bundled checkpoint, as before."""
    from codec.models.registry import BACKENDS
    from codec.tokenizer.cli import load_tokenizer_codec

    alm = load_tokenizer_codec("almtokenizer", None, None)
    assert alm.name == "almtokenizer" and "almtokenizer_demo" in alm.weights_source
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))  # no official file in this hub cache
    enc = load_tokenizer_codec("encodec", None, None, bandwidth=3.0)
    assert isinstance(enc, EnCodecCodec) and enc.bandwidth == 3.0
    assert "encodec_vocos_demo" in enc.weights_source
    assert BACKENDS["encodec_official"].find_default() is None


def _with_new_decoder(checkpoint: Path, out: Path) -> Path:
    """The checkpoint with its decoder's weights changed (encoder and codebooks kept): what a
    decoder retrained on frozen codes leaves."""
    model = load_codec(checkpoint)
    with torch.no_grad():
        for p in model.decoder.parameters():
            p.add_(0.01)
    return model.save_pretrained(out)


def test_codes_hash_follows_the_codes_not_the_folder(checkpoint: Path, tmp_path) -> None:
    a = load_codec(checkpoint)
    b = load_codec(_with_new_decoder(checkpoint, tmp_path / "new_decoder"))
    assert a.checkpoint_hash != b.checkpoint_hash
    assert a.codes_hash() == b.codes_hash()  # the same encoder and codebooks
    wav = 0.3 * torch.randn(1, 1, 4800, generator=torch.Generator().manual_seed(3))
    assert torch.equal(a.encode(wav).codes, b.encode(wav).codes)
    with torch.no_grad():
        b.encoder.parameters().__next__().add_(0.01)
    assert a.codes_hash() != b.codes_hash()
    before = a.codes_hash()
    a.set_bandwidth(3.0)  # a bandwidth selects codebooks: n_q in the record, not this hash
    assert a.codes_hash() == before


def test_an_lm_record_takes_a_codec_by_its_codes(single_run: Path, checkpoint, tmp_path) -> None:
    from codec.lm.record import TokenizerMismatchError, TokenizerRecord

    record = TokenizerRecord.from_manifest(read_manifest(single_run))
    record.check_codec(load_codec(_with_new_decoder(checkpoint, tmp_path / "new_decoder")))
    other = EnCodecCodec.from_config(TINY).save_pretrained(tmp_path / "other")
    with pytest.raises(TokenizerMismatchError, match="codes_hash"):
        record.check_codec(load_codec(other))
    older = TokenizerRecord.from_manifest(
        {k: v for k, v in read_manifest(single_run).items() if k != "codes_hash"}
    )  # a folder from before the codes hash: the checkpoint hash decides
    older.check_codec(load_codec(checkpoint))
    with pytest.raises(TokenizerMismatchError, match="checkpoint_hash"):
        older.check_codec(load_codec(_with_new_decoder(checkpoint, tmp_path / "new2")))


def test_decode_takes_a_retrained_decoder_of_the_same_codes(single_run: Path, checkpoint, tmp_path):
    manifest = read_manifest(single_run)
    assert manifest["codes_hash"] == load_codec(checkpoint).codes_hash()
    other = _with_new_decoder(checkpoint, tmp_path / "new_decoder")
    argv = ["decode", "--shards", str(single_run), "--out", str(tmp_path / "w")]
    assert main([*argv, "--checkpoint", str(other)]) == 0


def test_a_rerun_adds_the_codes_hash_to_an_older_folder(checkpoint, folder, tmp_path) -> None:
    out = tmp_path / "codes"
    _encode(checkpoint, folder, out)
    path = out / "manifest.json"
    old = json.loads(path.read_text())
    path.write_text(json.dumps({k: v for k, v in old.items() if k != "codes_hash"}))
    summary = _encode(checkpoint, folder, out)
    assert summary.shards_written == 0 and summary.shards_skipped == 3
    assert json.loads(path.read_text()) == old
