"""Training steps per second in float32 and in bf16 autocast on the CPU, in one run, for each
stage the campaign trains (`training.amp_cpu`).

    python -m bench.bench_precision [--batch 8] [--seconds 1.0] [--threads 1] [--repeats 3]

Each stage is the shipped checkpoint's model called as the trainer calls it
(`model(wav, window, stage)`), forward + waveform L1 + the model's own losses + backward, on
one seeded batch. Prints steps/s in float32 and bf16 and their ratio, and the CPU's bf16
features: bf16 autocast pays only where the CPU has native bf16 arithmetic (AVX512-BF16 or
AMX); on an AVX2-only CPU oneDNN emulates it and the convolutions run several times slower.
"""

from __future__ import annotations

import argparse
import contextlib
import platform
from pathlib import Path

import torch

from bench.timing import median_seconds
from codec.models.registry import load_codec

# (stage name, checkpoint, trainer stage, window)
STAGES: tuple[tuple[str, str, int, int | None], ...] = (
    ("autoencoder (stage 1, SEANet + LSTM)", "checkpoints/encodec_demo", 1, None),
    ("EnCodec decoder stage (Vocos)", "checkpoints/encodec_vocos_demo", 3, None),
    ("ALMTokenizer stage 2", "checkpoints/almtokenizer_demo", 2, 3),
    ("ALMTokenizer decoder stage", "checkpoints/almtokenizer_demo", 3, 3),
)


def cpu_bf16_features() -> str:
    """The CPU's model name and its native bf16 flags ("none" when it has neither)."""
    try:
        info = Path("/proc/cpuinfo").read_text()
    except OSError:
        return platform.processor() or "unknown CPU"
    flags = next((ln for ln in info.splitlines() if ln.startswith("flags")), "").split()
    name = next((ln.split(":", 1)[1].strip() for ln in info.splitlines()
                 if ln.startswith("model name")), "unknown CPU")  # fmt: skip
    have = [f for f in ("avx512_bf16", "amx_bf16", "amx_tile") if f in flags]
    return f"{name}; native bf16: {', '.join(have) or 'none (AVX2: bf16 is emulated)'}"


def step_seconds(ckpt: str, stage: int, window: int | None, wav: torch.Tensor,
                 bf16: bool, repeats: int) -> float:  # fmt: skip
    model = load_codec(ckpt)
    model.train()

    def step() -> None:
        model.zero_grad(set_to_none=True)
        ctx = torch.autocast("cpu", dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()
        with ctx:
            out = model(wav, window=window, stage=stage)
        loss = (out.recon.float() - wav).abs().mean()
        for v in out.losses.values():
            loss = loss + v.float()
        if loss.requires_grad:
            loss.backward()

    step()  # warm-up (oneDNN picks its kernels on the first call)
    return median_seconds(step, repeats)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.bench_precision",
                                description=__doc__.split("\n")[0])  # fmt: skip
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--seconds", type=float, default=1.0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--only", nargs="*", default=None, help="stage names containing these words")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    g = torch.Generator().manual_seed(0)
    wav = 0.1 * torch.randn(args.batch, 1, int(args.seconds * 24000), generator=g)
    print(cpu_bf16_features())
    print(f"batch {args.batch} x {args.seconds:g} s, {args.threads} thread(s), median of "
          f"{args.repeats}")  # fmt: skip
    print("| stage | float32 steps/s | bf16 steps/s | bf16 / float32 |\n|---|---|---|---|")
    for name, ckpt, stage, window in STAGES:
        if args.only and not any(w.lower() in name.lower() for w in args.only):
            continue
        f32 = step_seconds(ckpt, stage, window, wav, False, args.repeats)
        b16 = step_seconds(ckpt, stage, window, wav, True, args.repeats)
        print(f"| {name} | {1 / f32:.3f} | {1 / b16:.3f} | {f32 / b16:.2f}x |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
