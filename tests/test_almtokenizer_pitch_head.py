"""The auxiliary pitch head on ALMTokenizer's quantized tokens (`base_args.pitch_head`)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from codec.models.almtokenizer import ALMConfig, ALMTokenizer
from codec.models.almtokenizer.pitch_head import (
    IGNORE,
    MIDI_LOW,
    N_CLASSES,
    PitchHead,
    semitone_targets,
)
from codec.training.loop import train
from codec.training.model_setup import build_model
from tests.fixtures import make_goodsounds
from tests.tiny_models import TINY_ALM
from tests.train_configs import alm_stage2, tiny_config

torch.set_num_threads(1)
SR = 24000


def _tone(midi: int, seconds: float = 0.5) -> torch.Tensor:
    t = torch.arange(int(SR * seconds)) / SR
    f0 = 440.0 * 2 ** ((midi - 69) / 12)
    return sum(0.3 / k * torch.sin(2 * math.pi * k * f0 * t) for k in range(1, 5))


def test_targets_name_the_semitone_and_leave_out_unpitched_clips() -> None:
    g = torch.Generator().manual_seed(0)
    noise = 0.3 * torch.randn(int(SR * 0.5), generator=g)
    wav = torch.stack([_tone(45), _tone(57), _tone(81), noise, torch.zeros_like(noise)])[:, None]
    targets = semitone_targets(wav, SR)
    assert targets.tolist() == [45 - MIDI_LOW, 57 - MIDI_LOW, 81 - MIDI_LOW, IGNORE, IGNORE]


def test_the_head_learns_what_the_tokens_say_and_ignores_unpitched_clips() -> None:
    torch.manual_seed(0)
    head = PitchHead(8)
    tokens = torch.randn(4, 8, 5)
    targets = torch.tensor([3, 40, IGNORE, 3])
    opt = torch.optim.Adam(head.parameters(), lr=0.05)
    first = head.loss(tokens, targets).item()
    assert first == pytest.approx(math.log(N_CLASSES), rel=0.2)
    for _ in range(30):
        opt.zero_grad()
        head.loss(tokens, targets).backward()
        opt.step()
    assert head.loss(tokens, targets).item() < 0.3 * first
    none = head.loss(tokens, torch.full((4,), IGNORE))
    assert none.item() == 0.0 and none.requires_grad


def test_stage2_reports_the_pitch_loss_and_its_gradient_reaches_the_encoder() -> None:
    torch.manual_seed(0)
    cfg = ALMConfig.from_dict(
        {**TINY_ALM, "base_args": {**TINY_ALM["base_args"], "pitch_head": True}}
    )
    model = ALMTokenizer(cfg)
    model.train()
    wav = torch.stack([_tone(57, 0.4), _tone(64, 0.4)])[:, None]
    out = model(wav, window=4, stage=2)
    loss = out.losses["loss/pitch"]
    assert torch.isfinite(loss) and loss.item() > 0
    loss.backward()
    grads = [p.grad for n, p in model.named_parameters() if n.startswith("encoder.")]
    assert any(g is not None and g.abs().sum() > 0 for g in grads)


def test_a_pitch_run_starts_its_head_fresh_and_a_zero_lambda_drops_it(tmp_path: Path) -> None:
    data = tmp_path / "good-sounds"
    make_goodsounds(data, seconds=0.5)
    ae = train(tiny_config(data, tmp_path / "ae", "training.max_steps=1")).final_dir
    plain = train(tiny_config(data, tmp_path / "plain", *alm_stage2(ae))).final_dir
    stage2 = alm_stage2(ae)
    base = next(o for o in stage2 if o.startswith("model.base_args="))
    with_head = base[:-1] + ", 'pitch_head': True}"
    over = [with_head if o == base else o for o in stage2]
    cfg = tiny_config(data, tmp_path / "pitch", *over, "training.lambdas.pitch=1.0",
                      f"training.start_checkpoint={plain}")  # fmt: skip
    model = build_model(cfg)
    assert model.pitch_head is not None
    final = train(cfg).final_dir
    from codec.models.registry import load_codec

    assert load_codec(final).pitch_head is not None
    off = tiny_config(data, tmp_path / "off", *over, "training.lambdas.pitch=0")
    assert build_model(off).pitch_head is None
