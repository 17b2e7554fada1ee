"""The token LM's model: the delay pattern, causality of both schemes, cached generation equal to
the full pass, save -> load -> identical logits, strict loading."""

from __future__ import annotations

import json

import pytest
import torch

from codec.checkpoint import CheckpointError
from codec.lm import LMModelConfig, TokenizerRecord, TokenShape, build_lm, load_lm, save_lm
from codec.lm.patterns import delay, num_steps, undelay

K, N_Q = 16, 3
RECORD = TokenizerRecord("almtokenizer", "0123456789abcdef", 3, None, N_Q, K, 25.0)


def tiny(scheme: str, context: int = 12, dropout: float = 0.0, seed: int = 0):
    torch.manual_seed(seed)
    cfg = LMModelConfig(
        scheme=scheme,
        dim=32,
        n_layers=2,
        n_heads=2,
        dropout=dropout,
        depth_dim=16,
        depth_layers=1,
        depth_heads=2,
    )
    model = build_lm(cfg, TokenShape(N_Q, K, context))
    model.tokenizer = RECORD
    return model.eval()


def test_delay_then_undelay_is_identity():
    g = torch.Generator().manual_seed(0)
    for n_q, t in ((1, 5), (3, 1), (4, 9)):
        codes = torch.randint(0, K, (2, n_q, t), generator=g)
        d = delay(codes, K)
        assert d.shape == (2, n_q, num_steps(t, n_q))
        assert torch.equal(undelay(d), codes)
        for k in range(n_q):  # codebook k starts k steps late and pads the rest
            assert (d[:, k, :k] == K).all() and (d[:, k, k + t :] == K).all()
            assert torch.equal(d[:, k, k : k + t], codes[:, k])
    # per-step values (logits [B, n_q, S, V]) undelay along their time axis
    logits = torch.randn(2, 3, num_steps(5, 3), 7, generator=g)
    out = undelay(logits, time_dim=2)
    assert out.shape == (2, 3, 5, 7) and torch.equal(out[:, 2, 1], logits[:, 2, 3])


def _may_depend(scheme: str, target: tuple[int, int], source: tuple[int, int]) -> bool:
    """Whether the prediction of code (k, t) may see code (k', t') in the scheme's order."""
    (k, t), (k2, t2) = target, source
    if scheme == "delay":  # step t + k sees every code of the steps before it
        return t2 + k2 < t + k
    return t2 < t or (t2 == t and k2 < k)  # depth: earlier frames, coarser codes of its frame


@pytest.mark.parametrize("scheme", ["delay", "depth"])
def test_future_codes_never_change_past_logits(scheme: str):
    """Changing one code changes only the logits of codes after it in the scheme's order; and
    some of those do change (the check is not vacuous)."""
    model = tiny(scheme)
    g = torch.Generator().manual_seed(1)
    t = 6
    codes = torch.randint(0, K, (1, N_Q, t), generator=g)
    with torch.no_grad():
        base = model(codes)
        changed_any = 0
        for k2 in range(N_Q):
            for t2 in range(t):
                x = codes.clone()
                x[0, k2, t2] = (x[0, k2, t2] + 5) % K
                diff = (model(x) - base).abs().amax(-1)[0]  # [n_q, T]
                for k in range(N_Q):
                    for tt in range(t):
                        if not _may_depend(scheme, (k, tt), (k2, t2)):
                            assert diff[k, tt] == 0, ((k, tt), (k2, t2))
                        else:
                            changed_any += int(diff[k, tt] > 0)
    assert changed_any > 20


@pytest.mark.parametrize("scheme", ["delay", "depth"])
def test_cached_generation_sees_the_logits_of_the_full_pass(scheme: str):
    """The KV-cached step-by-step continuation draws every code from the same logits that one
    full forward pass over the result gives (streaming equivalence)."""
    model = tiny(scheme)
    prompt = torch.randint(0, K, (1, N_Q, 4), generator=torch.Generator().manual_seed(2))
    seen: list[torch.Tensor] = []

    def greedy(logits: torch.Tensor) -> torch.Tensor:
        seen.append(logits.clone())
        return logits.argmax(-1)

    out = model.continue_codes(prompt, 6, greedy)
    assert out.shape == (1, N_Q, 10) and torch.equal(out[..., :4], prompt)
    if scheme == "delay":  # step-major: every codebook of step s, then step s + 1
        order = [(k, s - k) for s in range(4, 12) for k in range(N_Q) if 4 <= s - k < 10]
    else:  # frame-major, coarse to fine
        order = [(k, f) for f in range(4, 10) for k in range(N_Q)]
    assert len(seen) == len(order)
    with torch.no_grad():
        full = model(out)[0]
    for logits, (k, f) in zip(seen, order):
        assert torch.allclose(logits[0], full[k, f], atol=1e-5), (k, f)


@pytest.mark.parametrize("scheme", ["delay", "depth"])
def test_save_load_gives_identical_logits(scheme: str, tmp_path):
    model = tiny(scheme, dropout=0.1)
    codes = torch.randint(0, K, (2, N_Q, 9), generator=torch.Generator().manual_seed(3))
    folder = save_lm(model, tmp_path / "lm", meta={"step": 7})
    loaded = load_lm(folder)
    assert not loaded.training and loaded.tokenizer == RECORD
    assert loaded.checkpoint_meta["step"] == 7
    with torch.no_grad():
        assert torch.equal(model(codes), loaded(codes))
    cfg = json.loads((folder / "config.json").read_text())
    assert cfg["format_version"] == 1 and cfg["tokenizer"]["checkpoint_hash"] == "0123456789abcdef"


def test_loading_is_strict_and_names_the_file(tmp_path):
    folder = save_lm(tiny("delay"), tmp_path / "lm")
    cfg_path = folder / "config.json"
    cfg = json.loads(cfg_path.read_text())
    bad = {**cfg, "model": {**cfg["model"], "n_layers": 3}}  # one block more than the weights
    cfg_path.write_text(json.dumps(bad))
    with pytest.raises(CheckpointError, match="model.safetensors.*missing"):
        load_lm(folder)
    cfg_path.write_text(json.dumps({**cfg, "format_version": 2}))
    with pytest.raises(CheckpointError, match="format_version 2"):
        load_lm(folder)
    cfg_path.write_text(json.dumps({**cfg, "model": {**cfg["model"], "dropuot": 0.1}}))
    with pytest.raises(CheckpointError, match="model.dropuot: unknown key"):
        load_lm(folder)
    with pytest.raises(CheckpointError, match="does not exist"):
        load_lm(tmp_path / "nowhere")
