"""Front-end pilot: which patchify/unpatchify learns recognisable audio fastest on a 2-core CPU?

Trains the ALMTokenizer stage-1 autoencoder (patchify -> unpatchify; no quantizer, no GAN) for
a fixed time budget per arm on 1 s crops of the demo set's training notes, then measures
on held-out notes (split by sound id): multi-scale mel distance, SI-SDR and the share of notes
whose pitch is reproduced (`codec.metrics.pitch_matches`). Evaluation time is not counted in
the budget. On a machine shared with other jobs wall-clock time is noisy, so the budget clock is
by default the process CPU time divided by the thread count (the wall time the arm would take
on its own cores); `--clock wall` uses elapsed time. Prints a table; run e.g.

    nohup .venv/bin/python -m bench.pilot_frontend --minutes 6 --threads 1 \
        stft:1:1 seanet:0:1 stft:1:10 > bench/results/pilot_frontend.txt &

(--threads 1 on a shared machine: with two threads under a load of 4-6 the OpenMP threads spend
most of their CPU time waiting, and the CPU clock stops measuring work.)

Arms are `frontend:mel_weight:l1_weight` (default: "stft:1:1" and "seanet:0:1").
"""

from __future__ import annotations

import argparse
import math
import random
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from codec.almtokenizer import ALMConfig, ALMTokenizer, BaseArgs
from codec.audio import load_audio
from codec.data.crops import crop_or_pad
from codec.data.goodsounds import load_goodsounds, split_by_sound
from codec.metrics import estimate_f0, log_mel, mel_distance, pitch_matches, si_sdr

SR = 24000
MEL_SCALES = ((512, 128, 64), (1024, 256, 80), (2048, 512, 128))


@dataclass
class Arm:
    frontend: str
    mel_weight: float
    l1_weight: float

    @property
    def label(self) -> str:
        return f"{self.frontend} (mel {self.mel_weight:g} + L1 {self.l1_weight:g})"


@dataclass
class EvalResult:
    mel: float
    si_sdr: float
    pitch_ok: int
    n: int
    unpitched: int = 0  # reconstructions without a measurable pitch (noise, buzz, silence)


def parse_arm(text: str) -> Arm:
    parts = text.split(":")
    if len(parts) != 3:
        raise argparse.ArgumentTypeError(f"arm {text!r} must be frontend:mel_weight:l1_weight")
    return Arm(parts[0], float(parts[1]), float(parts[2]))


def recon_loss(recon: torch.Tensor, wav: torch.Tensor, arm: Arm) -> torch.Tensor:
    """mel_weight * multi-scale log-mel L1 + l1_weight * waveform L1."""
    loss = recon.new_zeros(())
    if arm.mel_weight:
        mel = torch.stack(
            [(log_mel(recon, *s) - log_mel(wav, *s)).abs().mean() for s in MEL_SCALES]
        )
        loss = loss + arm.mel_weight * mel.mean()
    if arm.l1_weight:
        loss = loss + arm.l1_weight * (recon - wav).abs().mean()
    return loss


@torch.no_grad()
def evaluate(model: ALMTokenizer, clips: list[torch.Tensor]) -> EvalResult:
    model.eval()
    mels, sdrs, ok, unpitched = [], [], 0, 0
    for i in range(0, len(clips), 8):
        batch = torch.stack(clips[i : i + 8])  # (b, 1, N)
        recon = model(batch, 1, stage=1).recon
        for r, x in zip(recon, batch):
            mels.append(float(mel_distance(r, x)))
            sdrs.append(float(si_sdr(r, x)))
            ok += int(pitch_matches(r, x))
            unpitched += int(math.isnan(estimate_f0(r)))
    model.train()
    return EvalResult(sum(mels) / len(mels), sum(sdrs) / len(sdrs), ok, len(clips), unpitched)


def run_arm(
    arm: Arm, train: list[torch.Tensor], test: list[torch.Tensor], args: argparse.Namespace
) -> list[tuple[float, int, EvalResult]]:
    torch.manual_seed(args.seed)
    random.seed(args.seed)
    model = ALMTokenizer(ALMConfig(BaseArgs(frontend=arm.frontend)))
    params = model.frontend_parameters()
    opt = torch.optim.Adam(params, lr=args.lr)
    n_params = sum(p.numel() for p in params)
    print(f"\n== {arm.label}: {n_params / 1e6:.2f} M front-end parameters", flush=True)
    gen = torch.Generator().manual_seed(args.seed)
    budget = args.minutes * 60.0
    checkpoints = sorted({budget * f for f in (1 / 3, 2 / 3, 1.0)})
    history: list[tuple[float, int, EvalResult]] = []
    wall, cpu, step = 0.0, 0.0, 0
    model.train()
    while checkpoints:
        t0, c0 = time.perf_counter(), time.process_time()
        idx = torch.randint(0, len(train), (args.batch,), generator=gen)
        wav = torch.stack([crop_or_pad(train[i], SR, generator=gen) for i in idx])
        recon = model(wav, 1, stage=1).recon
        loss = recon_loss(recon, wav, arm)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        step += 1
        wall += time.perf_counter() - t0
        cpu += (time.process_time() - c0) / args.threads
        spent = cpu if args.clock == "cpu" else wall
        if step % 50 == 0:
            print(f"  step {step:5d}  {spent:6.0f} s  loss {loss.detach().item():.4f}", flush=True)
        if spent >= checkpoints[0]:
            checkpoints.pop(0)
            res = evaluate(model, test)  # not counted in the budget
            history.append((spent, step, res))
            print(
                f"  eval @ {spent / 60:4.1f} min ({args.clock}; wall {wall / 60:.1f} min), "
                f"{step} steps ({spent / step:.2f} s/step): "
                f"mel {res.mel:.3f}  SI-SDR {res.si_sdr:6.2f} dB  pitch {res.pitch_ok}/{res.n} "
                f"({res.unpitched} unpitched)",
                flush=True,
            )
    if args.save:
        args.save.mkdir(parents=True, exist_ok=True)
        torch.save(
            model.frontend.state_dict(),
            args.save / f"{arm.frontend}_{arm.mel_weight:g}_{arm.l1_weight:g}.pt",
        )
    return history


def load_notes(
    root: Path, seed: int, max_test: int
) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    items = load_goodsounds(root)
    split = split_by_sound(items, test_fraction=0.2, seed=seed)
    train = [load_audio(it.path) for it in split.train]
    test = []
    for it in split.test:
        clip = crop_or_pad(load_audio(it.path), int(1.5 * SR))
        if not math.isnan(estimate_f0(clip)):
            test.append(clip)
    print(
        f"demo set: {len(split.train)} training notes, {len(split.test)} held-out notes "
        f"({len(test)} with a measurable pitch; using {min(len(test), max_test)})",
        flush=True,
    )
    return train, test[:max_test]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--root", type=Path, default=Path("data/demo"))
    p.add_argument("--minutes", type=float, default=6.0, help="training wall clock per arm")
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument(
        "--clock",
        choices=("cpu", "wall"),
        default="cpu",
        help="budget clock: 'cpu' = process CPU seconds / threads (robust to other jobs on a "
        "shared machine), 'wall' = elapsed time",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--max-test", type=int, default=40)
    p.add_argument("--save", type=Path, default=None, help="save each arm's front-end weights here")
    p.add_argument("--wait", type=float, default=0.0, help="poll this long for database.sqlite")
    p.add_argument("arms", nargs="*", type=parse_arm, default=None)
    args = p.parse_args(argv)
    arms = args.arms or [Arm("stft", 1.0, 1.0), Arm("seanet", 0.0, 1.0)]
    deadline = time.time() + args.wait
    while not (args.root / "database.sqlite").is_file():
        if time.time() > deadline:
            print(f"error: {args.root}/database.sqlite not found", file=sys.stderr)
            return 2
        time.sleep(10)
    torch.set_num_threads(args.threads)
    print(f"pilot: {args.minutes} min ({args.clock} clock) per arm, batch {args.batch} x 1 s, "
          f"Adam lr {args.lr}, {args.threads} threads, seed {args.seed}", flush=True)  # fmt: skip
    train, test = load_notes(args.root, args.seed, args.max_test)
    results = {arm.label: run_arm(arm, train, test, args) for arm in arms}
    print("\n| arm | steps | s/step | mel distance | SI-SDR (dB) | pitch reproduced |")
    print("|---|---|---|---|---|---|")
    for label, history in results.items():
        t, step, r = history[-1]
        print(f"| {label} | {step} | {t / step:.2f} | {r.mel:.3f} | {r.si_sdr:.2f} | "
              f"{r.pitch_ok}/{r.n} |")  # fmt: skip
    print("\nby time (min: mel / SI-SDR / pitch):")
    for label, history in results.items():
        row = "  ".join(
            f"{t / 60:.1f}: {r.mel:.2f}/{r.si_sdr:.1f}/{r.pitch_ok}" for t, _, r in history
        )
        print(f"  {label}: {row}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
