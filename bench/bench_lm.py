"""Token LM speed: generation (codes per second, x real time) and one training step (float32
and bf16 autocast), for every LM in the same run.

    OMP_NUM_THREADS=1 .venv/bin/python -m bench.bench_lm
    .venv/bin/python -m bench.bench_lm --checkpoints work_dirs/lm/alm_w3/best \
        work_dirs/lm/alm_w6/best work_dirs/lm/encodec_1p5/best
    .venv/bin/python -m bench.bench_lm --schemes delay depth --device cuda

Without --checkpoints, it builds randomly initialised LMs of the model section of
configs/lm_alm_w3.yaml (the three LM configs share it) for the three tokenizers of those configs
(ALMTokenizer 3 x 2048 codes at w = 3 and 6, EnCodec 1.5 kbps 2 x 1024 codes at 75 Hz): speed
does not depend on the weights' values. Generation continues a `--prompt-seconds` prompt by
`--seconds` of audio with the KV cache (top-k 250, seeded); a training step is forward, backward
and AdamW on a batch of random crops of the model's context. Timings: the median of --repeats
runs after a warm-up (bench.timing).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import platform
import sys
from pathlib import Path

# Runnable as `python bench/bench_lm.py` and as a module.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from bench.timing import median_seconds  # noqa: E402
from codec.lm import TokenLM, TokenShape, build_lm, generate, load_lm  # noqa: E402
from codec.lm.config import load_config  # noqa: E402
from codec.lm.model import token_nll  # noqa: E402
from codec.lm.record import TokenizerRecord  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
# the tokenizers of configs/lm_*.yaml: (label, record) with placeholder hashes
TOKENIZERS = (
    ("ALMTokenizer w=3", TokenizerRecord("almtokenizer", "random", 3, None, 3, 2048, 25.0)),
    ("ALMTokenizer w=6", TokenizerRecord("almtokenizer", "random", 6, None, 3, 2048, 12.5)),
    ("EnCodec 1.5 kbps", TokenizerRecord("encodec", "random", None, 1.5, 2, 1024, 75.0)),
)


def random_models(config: Path, schemes: list[str]) -> list[tuple[str, TokenLM]]:
    """Random-init LMs of `config`'s model section, one per tokenizer and scheme."""
    cfg = load_config(config, check_paths=False)
    out = []
    for scheme in schemes:
        cfg.model.scheme = scheme  # type: ignore[assignment]
        for label, rec in TOKENIZERS:
            torch.manual_seed(0)
            shape = TokenShape(rec.n_q, rec.codebook_size, cfg.data.context_frames(rec.frame_rate))
            model = build_lm(cfg.model, shape)
            model.tokenizer = rec
            out.append((f"{label}, {scheme} (random init)", model))
    return out


def generation(model: TokenLM, prompt_s: float, seconds: float, repeats: int, device) -> dict:
    rate = model.tokenizer.frame_rate
    t, n = max(1, round(prompt_s * rate)), max(1, round(seconds * rate))
    if t + n > model.context_frames:
        raise ValueError(
            f"prompt + continuation ({t + n} frames) exceed the context "
            f"({model.context_frames}); lower --seconds"
        )
    g = torch.Generator().manual_seed(0)
    prompt = torch.randint(0, model.codebook_size, (model.n_q, t), generator=g).to(device)
    model.eval()
    sec = median_seconds(lambda: generate(model, prompt, n, seed=0, top_k=250), repeats)
    return {
        "frames": n,
        "gen_s": sec,
        "codes_per_s": n * model.n_q / sec,
        "x_realtime": seconds / sec,
    }


def train_step_seconds(model: TokenLM, batch: int, bf16: bool, repeats: int, device) -> float:
    """Median seconds of forward + backward + AdamW on `[batch, n_q, context]` random codes."""
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    g = torch.Generator().manual_seed(1)
    shape = (batch, model.n_q, model.context_frames)
    codes = torch.randint(0, model.codebook_size, shape, generator=g).to(device)
    amp = torch.autocast(device.type, dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()

    def step() -> None:
        with amp:
            logits = model(codes)
        loss = token_nll(logits, codes, model.pad_id).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return median_seconds(step, repeats)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--checkpoints", nargs="*", default=[], help="LM folders (default: random)")
    p.add_argument(
        "--config",
        default=str(REPO / "configs" / "lm_alm_w3.yaml"),
        help="model section for the random-init LMs",
    )
    p.add_argument("--schemes", nargs="+", default=["delay"], choices=["delay", "depth"])
    p.add_argument("--prompt-seconds", type=float, default=1.0)
    p.add_argument("--seconds", type=float, default=3.0, help="audio to generate")
    p.add_argument("--batch-size", type=int, default=16, help="training-step batch")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    p.add_argument("--device", default="cpu")
    p.add_argument("--json", help="also write the results here")
    args = p.parse_args(argv)
    if min(args.batch_size, args.repeats, args.threads) < 1 or args.seconds <= 0:
        print("error: --batch-size, --repeats, --threads >= 1 and --seconds > 0", file=sys.stderr)
        return 2
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        print(f"error: --device {args.device}: CUDA is not available", file=sys.stderr)
        return 2
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    if args.checkpoints:
        models = [(str(c), load_lm(c)) for c in args.checkpoints]
    else:
        models = random_models(Path(args.config), args.schemes)
    rows = []
    for label, model in models:
        model.to(device)
        r = {"model": label, "params_m": sum(p.numel() for p in model.parameters()) / 1e6,
             "context": model.context_frames, "n_q": model.n_q}  # fmt: skip
        r.update(generation(model, args.prompt_seconds, args.seconds, args.repeats, device))
        r["step_fp32_s"] = train_step_seconds(model, args.batch_size, False, args.repeats, device)
        r["step_bf16_s"] = train_step_seconds(model, args.batch_size, True, args.repeats, device)
        rows.append(r)
        model.to("cpu")
    where = (
        torch.cuda.get_device_name(device)
        if device.type == "cuda"
        else (f"{platform.processor() or platform.machine()} CPU, {args.threads} thread(s)")
    )
    print(
        f"token LM speed on {where}; generation: {args.prompt_seconds:g} s prompt + "
        f"{args.seconds:g} s, top-k 250; training step: batch {args.batch_size} x context"
    )
    head = (
        f"{'model':<42} {'M par':>6} {'ctx':>4} {'gen s':>7} {'codes/s':>8} {'x rt':>6} "
        f"{'fp32 s':>7} {'bf16 s':>7} {'bf16 x':>6}"
    )
    print(head)
    print("-" * len(head))
    for r in rows:
        print(
            f"{r['model'][:42]:<42} {r['params_m']:>6.2f} {r['context']:>4} {r['gen_s']:>7.3f} "
            f"{r['codes_per_s']:>8.0f} {r['x_realtime']:>6.2f} {r['step_fp32_s']:>7.3f} "
            f"{r['step_bf16_s']:>7.3f} {r['step_fp32_s'] / r['step_bf16_s']:>6.2f}"
        )
    if args.json:
        Path(args.json).write_text(json.dumps({"device": where, "rows": rows}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
