"""Tokenization throughput: ALMTokenizer (demo preset, w = 3) and EnCodec (1.5 kbps), same run.

Runs the real pipeline (`codec.tokenizer.encode_dataset`: DataLoader, length-sorted batches,
shards written to a temporary folder) over the first N clips of the bundled demo set (synthetic
tones when it is missing) and prints clips per second and audio hours tokenized per hour.
Weights: bundled checkpoints under checkpoints/ (EnCodec: also the official file in the torch
hub cache) when present, else randomly initialised models of the same architecture; which one
was used is printed (speed does not depend on the weights' values).

    OMP_NUM_THREADS=1 .venv/bin/python bench/bench_tokenize.py --clips 40
    OMP_NUM_THREADS=1 .venv/bin/python -m bench.bench_tokenize --clips 40   # the same
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

# Runnable as `python bench/bench_tokenize.py` (as the README writes it) and as a module.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from codec.models.base import Codec  # noqa: E402
from codec.models.registry import load_codec
from codec.tokenizer import encode_dataset  # noqa: E402
from codec.tokenizer.inputs import ClipInput, list_inputs  # noqa: E402

REPO = Path(__file__).resolve().parent.parent


def _bundled(codec_name: str) -> Path | None:
    for cfg in sorted((REPO / "checkpoints").glob("*/config.json")):
        try:
            if json.loads(cfg.read_text()).get("codec") == codec_name:
                return cfg.parent
        except (OSError, ValueError):
            continue
    return None


def almtokenizer() -> tuple[Codec, str]:
    from codec.models.almtokenizer import ALMTokenizer, preset

    path = _bundled("almtokenizer")
    if path is not None:
        return load_codec(path), f"checkpoint {path.relative_to(REPO)}"
    return ALMTokenizer(preset("demo")), "random init (no bundled checkpoint)"


def encodec() -> tuple[Codec, str]:
    from codec.models.encodec import EnCodecCodec, EnCodecWeightsError, load_encodec

    try:
        model = load_encodec(bandwidth=1.5)
        return model, model.weights_source
    except EnCodecWeightsError:
        model = EnCodecCodec()
        model.set_bandwidth(1.5)
        return model, "random init, official architecture (no weights found)"


def clips(n: int, tmp: Path) -> tuple[list[ClipInput], str]:
    try:
        found = list_inputs("demo", None)
    except (FileNotFoundError, ValueError):
        found = []
    if len(found) >= n:
        step = len(found) // n  # spread over instruments and speech
        return found[::step][:n], "bundled demo set"
    import numpy as np
    import soundfile as sf

    out = []
    for i in range(n):
        t = np.arange(int(24000 * (1.0 + 0.5 * (i % 4)))) / 24000
        path = tmp / f"tone{i:03d}.wav"
        sf.write(path, (0.3 * np.sin(2 * np.pi * (110 + 20 * i) * t)).astype("float32"), 24000)
        out.append(ClipInput(path, path.name))
    return out, "synthetic tones (demo set missing)"


def run(model: Codec, window: int | None, inputs: list[ClipInput], args, tmp: Path) -> dict:
    model.eval()
    with torch.inference_mode():  # warm-up (allocator, lazy init) outside the timing
        model.encode(torch.zeros(1, 1, 24000), window)
    out = Path(tempfile.mkdtemp(dir=tmp))
    s = encode_dataset(
        model,
        inputs,
        out,
        window=window,
        shard_size=args.shard_size,
        batch_size=args.batch_size,
        num_workers=args.num_workers,
        device="cpu",
        progress=False,
    )
    return {
        "clips": s.clips,
        "audio_s": s.audio_seconds,
        "wall_s": s.seconds,
        "clips_per_s": s.clips / s.seconds,
        "audio_h_per_h": s.audio_seconds / s.seconds,
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--clips", type=int, default=40)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--num-workers", type=int, default=1)
    p.add_argument("--shard-size", type=int, default=2000)
    p.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    args = p.parse_args(argv)
    if args.clips < 1 or args.batch_size < 1 or args.num_workers < 0 or args.threads < 1:
        print(
            "error: --clips, --batch-size, --threads >= 1 and --num-workers >= 0", file=sys.stderr
        )
        return 2
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        inputs, origin = clips(args.clips, tmp)
        results = []
        for label, build, window in (
            ("ALMTokenizer demo, w=3", almtokenizer, 3),
            ("EnCodec 1.5 kbps", encodec, None),
        ):
            model, weights = build()
            t0 = time.perf_counter()
            r = run(model, window, inputs, args, tmp)
            r.update(codec=label, weights=weights, bitrate=model.bitrate(window))
            r["total_s"] = time.perf_counter() - t0
            results.append(r)
    print(
        f"tokenize throughput on {platform.processor() or platform.machine()}, CPU, "
        f"{args.threads} torch thread(s), batch {args.batch_size}, {args.num_workers} worker(s); "
        f"{len(inputs)} clips from the {origin}, {results[0]['audio_s']:.1f} s of audio"
    )
    head = f"{'codec':<24} {'bit/s':>6} {'clips':>5} {'wall s':>7} {'clips/s':>8} {'audio h/h':>9}"
    print(head)
    print("-" * len(head))
    for r in results:
        print(
            f"{r['codec']:<24} {r['bitrate']:>6.0f} {r['clips']:>5} {r['wall_s']:>7.2f} "
            f"{r['clips_per_s']:>8.1f} {r['audio_h_per_h']:>9.1f}"
        )
    print("weights:")
    for r in results:
        print(f"  {r['codec']}: {r['weights']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
