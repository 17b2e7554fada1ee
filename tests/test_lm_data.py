"""The LM's data: shard folders written by the tokenizer's own functions, the held-out split by
manifest split or by source, refusals (another tokenizer, a clip on both sides), seeded crops."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from codec.lm.data import Clip, CropDataset, find_shard_folders, held_out_chunks, load_shards
from codec.lm.record import TokenizerMismatchError
from codec.tokenizer.shards import ShardError
from tests.fixtures import CodeTokenizer, make_code_shards

K = 16


def clips(n: int, frames: int = 30, seed: int = 0, n_q: int = 3) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.integers(0, K, (n_q, frames + i)) for i in range(n)]


def test_manifest_splits_are_kept_and_a_parent_folder_is_read(tmp_path):
    make_code_shards(
        tmp_path / "tok" / "train", clips(6), split="train", names=[f"a/{i}.wav" for i in range(6)]
    )
    make_code_shards(
        tmp_path / "tok" / "val",
        clips(3, seed=1),
        split="val",
        names=[f"b/{i}.wav" for i in range(3)],
    )
    assert [p.name for p in find_shard_folders(tmp_path / "tok")] == ["train", "val"]
    data = load_shards([str(tmp_path / "tok")], held_out_fraction=0.5)
    assert len(data.train) == 6 and len(data.held_out) == 3
    assert {c.name for c in data.held_out} == {"b/0.wav", "b/1.wav", "b/2.wav"}
    assert data.record.n_q == 3 and data.record.frame_rate == 25.0
    assert data.train[0].codes.dtype == torch.int16 and data.train[2].frames == 32
    with pytest.raises(ShardError, match="not tokenized"):
        find_shard_folders(tmp_path)


def test_split_all_holds_out_whole_sources_stably(tmp_path):
    names = [f"src{i // 3}/take{i}.wav" for i in range(30)]
    make_code_shards(tmp_path / "all", clips(30, frames=5), names=names)
    by_clip = load_shards([str(tmp_path / "all")], 0.3, "clip", split_seed=0)
    by_src = load_shards([str(tmp_path / "all")], 0.3, "folder", split_seed=0)
    for data in (by_clip, by_src):
        assert data.train and data.held_out
        assert len(data.train) + len(data.held_out) == 30
    held_src = {c.name.split("/")[0] for c in by_src.held_out}
    assert held_src.isdisjoint({c.name.split("/")[0] for c in by_src.train})  # whole sources
    # the draw depends on (split_seed, key) only: fewer clips, same side for the ones left
    make_code_shards(tmp_path / "fewer", clips(20, frames=5), names=names[:20])
    fewer = load_shards([str(tmp_path / "fewer")], 0.3, "folder", split_seed=0)
    assert {c.name for c in fewer.held_out} == {
        c.name for c in by_src.held_out if c.name in names[:20]
    }
    other_seed = load_shards([str(tmp_path / "all")], 0.3, "clip", split_seed=1)
    assert {c.name for c in other_seed.held_out} != {c.name for c in by_clip.held_out}


def test_refusals(tmp_path):
    make_code_shards(tmp_path / "a", clips(4), split="train")
    other = CodeTokenizer(checkpoint_hash="feedfacefeedface")
    make_code_shards(tmp_path / "b", clips(4), tokenizer=other, split="val")
    with pytest.raises(TokenizerMismatchError, match="feedfacefeedface vs 0123456789abcdef"):
        load_shards([str(tmp_path / "a"), str(tmp_path / "b")])
    # the same clips tokenized as "all" and as "val": some held-out clip is also trained on
    make_code_shards(tmp_path / "all", clips(8), names=[f"x/{i}.wav" for i in range(8)])
    make_code_shards(
        tmp_path / "val", clips(8), split="val", names=[f"x/{i}.wav" for i in range(8)]
    )
    with pytest.raises(ShardError, match="also training clips"):
        load_shards([str(tmp_path / "all"), str(tmp_path / "val")], 0.1)
    with pytest.raises(ShardError, match="no held-out clips"):
        load_shards([str(tmp_path / "a")])
    with pytest.raises(ShardError, match="does not exist"):
        load_shards([str(tmp_path / "missing")])


def test_crops_are_seeded_per_epoch_and_padded():
    train = [Clip("a", "a", "f", (torch.arange(45) % K)[None].to(torch.int16)),
             Clip("b", "b", "f", torch.ones(1, 3, dtype=torch.int16))]  # fmt: skip
    ds = CropDataset(train, context=10, pad_id=K, seed=5)
    assert len(ds) == 5 + 1  # ceil(45 / 10) + ceil(3 / 10)
    first = [ds[i] for i in range(len(ds))]
    again = CropDataset(train, context=10, pad_id=K, seed=5)
    assert all(torch.equal(a, again[i]) for i, a in enumerate(first))
    ds.set_epoch(1)
    assert any(not torch.equal(a, ds[i]) for i, a in enumerate(first[:5]))
    short = first[5]
    assert short.shape == (1, 10) and short[0, :3].tolist() == [1, 1, 1]
    assert (short[0, 3:] == K).all()
    # held-out chunks cover every frame exactly once
    chunks = held_out_chunks(train, 10, K)
    assert len(chunks) == 6 and int((torch.stack(chunks) != K).sum()) == 48


def test_train_fraction_keeps_a_nested_subset_and_the_held_out_whole(tmp_path):
    names = [f"c{i}.wav" for i in range(200)]
    make_code_shards(tmp_path / "tok" / "train", clips(200, frames=3), split="train", names=names)
    make_code_shards(tmp_path / "tok" / "val", clips(4, seed=1), split="val",
                     names=[f"v{i}.wav" for i in range(4)])  # fmt: skip
    kept = {
        f: {c.name for c in load_shards([str(tmp_path / "tok")], train_fraction=f).train}
        for f in (0.25, 0.5, 1.0)
    }
    assert len(kept[1.0]) == 200
    assert 30 <= len(kept[0.25]) <= 70 and 75 <= len(kept[0.5]) <= 125
    assert kept[0.25] < kept[0.5] < kept[1.0]
    half = load_shards([str(tmp_path / "tok")], train_fraction=0.5)
    assert len(half.held_out) == 4
