"""Generation: seeded continuations that keep the prompt, named errors for bad inputs, and the
refusal of a codec (or shards) other than the tokenizer the LM was trained on."""

from __future__ import annotations

import math

import pytest
import torch

from codec.lm import (
    LMModelConfig,
    TokenizerMismatchError,
    TokenizerRecord,
    TokenShape,
    build_lm,
    generate,
    load_lm,
    save_lm,
)
from codec.models.encodec import EnCodecCodec

K, N_Q, CONTEXT = 16, 2, 20
RECORD = TokenizerRecord("encodec", "0123456789abcdef", None, 1.5, N_Q, K, 75.0)


@pytest.fixture(scope="module", params=["delay", "depth"])
def model(request):
    torch.manual_seed(0)
    cfg = LMModelConfig(
        scheme=request.param,
        dim=32,
        n_layers=1,
        n_heads=2,
        depth_dim=16,
        depth_layers=1,
        depth_heads=2,
    )
    lm = build_lm(cfg, TokenShape(N_Q, K, CONTEXT))
    lm.tokenizer = RECORD
    return lm.eval()


def prompt(t: int = 5) -> torch.Tensor:
    return torch.randint(0, K, (N_Q, t), generator=torch.Generator().manual_seed(4))


def test_generation_is_seeded_and_keeps_the_prompt(model):
    p = prompt()
    a = generate(model, p, 8, seed=3, temperature=0.9, top_k=4)
    b = generate(model, p, 8, seed=3, temperature=0.9, top_k=4)
    c = generate(model, p, 8, seed=4, temperature=0.9, top_k=4)
    assert a.shape == (N_Q, 13) and a.dtype == torch.long
    assert torch.equal(a[:, :5], p) and torch.equal(a, b) and not torch.equal(a, c)
    assert int(a.min()) >= 0 and int(a.max()) < K
    batch = generate(model, torch.stack([p, p]), 3, seed=0)
    assert batch.shape == (2, N_Q, 8)
    # top_k = 1 is greedy: the same codes whatever the seed
    assert torch.equal(
        generate(model, p, 6, seed=0, top_k=1), generate(model, p, 6, seed=9, top_k=1)
    )


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"prompt": torch.zeros(N_Q, 0, dtype=torch.long)}, "shorter than one frame"),
        ({"prompt": torch.zeros(N_Q, 3)}, "integer codes"),
        ({"prompt": torch.zeros(3, 3, dtype=torch.long)}, "3 codebooks; the LM models 2"),
        ({"prompt": torch.full((N_Q, 3), K)}, r"codes must lie in \[0, 16\)"),
        ({"prompt": torch.zeros(5, dtype=torch.long)}, r"\[n_q, T\]"),
        ({"prompt": [[0, 1], [1, 0]]}, "torch.Tensor"),
        ({"num_frames": 0}, "num_frames must be >= 1"),
        ({"num_frames": 2.5}, "num_frames must be an int"),
        ({"temperature": 0.0}, "temperature must be in"),
        ({"temperature": -1.0}, "temperature must be in"),
        ({"temperature": 1e6}, "temperature must be in"),
        ({"temperature": math.nan}, "temperature must be in"),
        ({"top_k": 0}, r"top_k must be in \[1, 16\]"),
        ({"top_k": K + 1}, r"top_k must be in \[1, 16\]"),
        ({"num_frames": 10_000}, "exceeds the limit of 20 frames"),
        ({"max_frames": 6}, "exceeds the limit of 6 frames"),
        ({"max_seconds": 0.08}, "exceeds the limit of 6 frames"),  # 0.08 s * 75 Hz
        ({"max_seconds": -1.0}, "max_seconds must be a positive number"),
        ({"seed": -1}, "seed must be >= 0"),
    ],
)
def test_bad_inputs_raise_named_errors(model, kwargs, message):
    args = {"prompt": prompt(), "num_frames": 4, **kwargs}
    with pytest.raises(ValueError, match=message):
        generate(model, args.pop("prompt"), args.pop("num_frames"), **args)


def _codec(seed: int, bandwidth: float = 1.5) -> EnCodecCodec:
    torch.manual_seed(seed)
    bws = [1.5, 3.0]
    return EnCodecCodec.from_config(
        {
            "n_filters": 4,
            "lstm": 1,
            "n_q": 4,
            "bandwidth": bandwidth,
            "target_bandwidths": bws,
            "train_bandwidths": bws,
        }
    )


def test_a_codec_other_than_the_tokenizer_is_refused_naming_both_hashes(model, tmp_path):
    codec = _codec(0)
    codec.checkpoint_hash = "feedfacefeedface"
    k = codec.codebook_size
    rec = TokenizerRecord(
        "encodec", "0123456789abcdef", None, 1.5, codec.num_codebooks, k, codec.frame_rate()
    )
    lm = build_lm(model.config, TokenShape(rec.n_q, k, CONTEXT))
    lm.tokenizer = rec
    folder = save_lm(lm, tmp_path / "lm")
    with pytest.raises(TokenizerMismatchError, match="feedfacefeedface.*0123456789abcdef"):
        load_lm(folder, codec=codec)
    codec.checkpoint_hash = "0123456789abcdef"
    assert load_lm(folder, codec=codec).tokenizer == rec  # the right codec loads
    codec.apply_setting(3.0)  # same weights, more codebooks: other codes
    with pytest.raises(TokenizerMismatchError, match="n_q"):
        load_lm(folder, codec=codec)
    other = TokenizerRecord("almtokenizer", "aaaabbbbccccdddd", 6, None, N_Q, K, 12.5)
    with pytest.raises(TokenizerMismatchError, match="aaaabbbbccccdddd vs 0123456789abcdef"):
        rec.check_same(other, "the shards in X")
