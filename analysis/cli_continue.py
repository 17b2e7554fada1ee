"""`python -m analysis continue CLIP ...` and `python -m analysis continue-eval ...`: the token
LM's continuations of a clip, and their held-out measures (`analysis.continuation`,
`analysis.continuation_eval`).

Each codec of the line-up is paired with its token LM (`analysis.continuation_lms`): `--lm
CODEC=CKPT`, else the first `<--lm-dir>/lm_<codec>_*` trained on that codec. A codec without
one is skipped with a one-line reason on stderr, or is an error when `--codecs`, `--codec` or
`--lm` named it. The codec runs at its LM's window or bandwidth, so there is no --window here.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import Any

from analysis import cli_types as t

log = logging.getLogger("analysis")


def _models(p: argparse.ArgumentParser, command: str) -> None:
    from analysis.continuation import DEFAULT_MAX_SECONDS
    from analysis.continuation_lms import DEFAULT_LM_DIR
    from analysis.models import DEFAULT_ALM_CHECKPOINT, DEFAULT_ENCODEC_CHECKPOINT

    g = p.add_argument_group("codecs and their token LMs")
    g.add_argument(
        "--alm-checkpoint",
        type=Path,
        default=DEFAULT_ALM_CHECKPOINT,
        help="ALMTokenizer checkpoint folder",
    )
    g.add_argument(
        "--encodec-checkpoint",
        type=Path,
        default=DEFAULT_ENCODEC_CHECKPOINT,
        help="EnCodec checkpoint folder (our same-data baseline)",
    )
    g.add_argument(
        "--encodec-weights",
        type=Path,
        default=None,
        help="official EnCodec 24 kHz weights file (default: the torch hub cache's, when present)",
    )
    g.add_argument(
        "--codecs",
        type=t.codec_names,
        default="all",
        help="'all' (default: every learned codec that has a token LM), or a comma "
        "list of almtokenizer, encodec, encodec_official (each must have an LM)",
    )
    g.add_argument(
        "--codec",
        dest="extra_codecs",
        type=t.codec_spec,
        action="append",
        default=[],
        metavar="NAME=PATH[@LABEL]",
        help="add a codec of any registered backend (repeatable)",
    )
    g.add_argument(
        "--lm",
        dest="lms",
        type=t.lm_spec,
        action="append",
        default=[],
        metavar="CODEC=CKPT",
        help="the token LM of a codec (its line-up key or backend), repeatable; an "
        "LM folder or a training folder with best/ final/ latest/",
    )
    g.add_argument(
        "--lm-dir",
        type=Path,
        default=DEFAULT_LM_DIR,
        help="default LMs: the first LM-DIR/lm_<codec>_* trained on the codec "
        f"(default {DEFAULT_LM_DIR})",
    )
    s = p.add_argument_group("sampling")
    s.add_argument("--temperature", type=t.temperature, default=1.0, help="in (0, 10] (default 1)")
    s.add_argument(
        "--top-k",
        type=t.positive_int,
        default=50,
        help="sample among the K most likely codes, 1 .. codebook size (default 50)",
    )
    s.add_argument("--seed", type=t.seed, default=0, help="sampling seed (default 0)")
    s.add_argument(
        "--max-seconds",
        type=t.positive_float,
        default=DEFAULT_MAX_SECONDS,
        help=f"refuse longer continuations (default {DEFAULT_MAX_SECONDS:g})",
    )
    o = p.add_argument_group("output")
    o.add_argument(
        "--dataset-root",
        type=Path,
        default=Path("data/demo"),
        help="the judge's dataset (default data/demo)",
    )
    o.add_argument(
        "--out",
        type=Path,
        default=Path("exports") / command,
        help=f"output folder (default exports/{command})",
    )
    o.add_argument(
        "--cache-dir",
        type=Path,
        default=Path("cache/latents"),
        help="the judge is cached next to it, in ../judge (default cache/latents)",
    )
    o.add_argument("--no-cache", action="store_true", help="do not read or write the judge cache")
    o.add_argument("-v", "--verbose", action="store_true", help="log progress at INFO level")
    p.set_defaults(encodec_bandwidth=None)  # each codec runs at its LM's setting


def add_continue_commands(sub: Any) -> None:
    """Add `continue` and `continue-eval` to the `python -m analysis` sub-parsers."""
    from analysis.metrics.f0 import DEFAULT_TRACKER

    p = sub.add_parser(
        "continue",
        help="continue a clip with each codec's token LM; wavs + table",
        description="Encode the first --prompt-seconds of CLIP with each codec, "
        "continue the codes by --seconds with the codec's token LM, decode; write "
        "one wav per codec (prompt + continuation) and continue.md/.json.",
    )
    p.add_argument("clip", type=Path, help="audio file (the prompt is its beginning)")
    p.add_argument("--prompt-seconds", type=t.positive_float, default=1.0, help="default 1")
    p.add_argument(
        "--seconds",
        type=t.positive_float,
        default=3.0,
        help="seconds to generate after the prompt (default 3)",
    )
    p.add_argument("--no-judge", action="store_true", help="skip what the judge hears")
    _models(p, "continue")

    p = sub.add_parser(
        "continue-eval",
        help="held-out continuations judged by the audio",
        description="Continue held-out clips (data/demo val + test sounds, and "
        "every clip of the independent set when present) with each codec's LM; "
        "measure pitch kept, instrument named and speech heard in the generated "
        "part beside the codec's own reconstruction (its ceiling); write "
        "continuation.md/.json.",
    )
    p.add_argument("--prompt-seconds", type=t.positive_float, default=0.5, help="default 0.5")
    p.add_argument(
        "--seconds",
        type=t.positive_float,
        default=1.0,
        help="seconds to generate after the prompt (default 1)",
    )
    p.add_argument(
        "--max-clips",
        type=t.positive_int,
        default=None,
        help="at most N clips per set (a fixed seeded subset)",
    )
    p.add_argument(
        "--heldout-root",
        type=Path,
        default=None,
        help="independent set (default data/heldout, when present)",
    )
    p.add_argument(
        "--tracker",
        choices=("crepe", "crepe-tiny", "fcpe"),
        default=DEFAULT_TRACKER,
        help=f"F0 tracker (default {DEFAULT_TRACKER}; fcpe is much faster on a CPU)",
    )
    _models(p, "continue_eval")


def _pairs(args: argparse.Namespace, lineup: list[Any]) -> tuple[list[Any], list[str]]:
    """The line-up's codecs with their LMs, and one line per codec skipped (also on stderr)."""
    from analysis.continuation_lms import pair_lms

    asked = {n for n in args.codecs if n != "all"} | {s.backend for s in args.extra_codecs}
    pairs, skipped = pair_lms(lineup, dict(args.lms), args.lm_dir, asked | set(dict(args.lms)))
    for line in skipped:
        print(line, file=sys.stderr)
    if not pairs:
        raise ValueError(
            f"no codec has a token LM (looked in {args.lm_dir}/lm_<codec>_*; "
            "give --lm CODEC=CHECKPOINT)"
        )
    return pairs, skipped


def _judge(args: argparse.Namespace) -> Any:
    from analysis.metrics.judge import load_or_fit_judge

    cache = None if args.no_cache else Path(args.cache_dir).parent / "judge"
    return load_or_fit_judge(args.dataset_root, cache, 0)  # --seed is the sampling seed


def cmd_continue(args: argparse.Namespace, lineup: list[Any]) -> int:
    """`continue`: `lineup` is `analysis.cli`'s loaded codecs (`analysis.models.LoadedCodec`)."""
    from analysis.continuation_lms import continue_each
    from analysis.export import inside, safe_name
    from codec.audio import load_audio, save_audio

    pairs, skipped = _pairs(args, lineup)
    clip = load_audio(args.clip)[None]
    results = continue_each(
        pairs, clip, prompt_seconds=args.prompt_seconds, seconds=args.seconds,
        temperature=args.temperature, top_k=args.top_k, seed=args.seed,
        max_seconds=args.max_seconds,
    )  # fmt: skip
    judge = None if args.no_judge else _judge(args)
    args.out.mkdir(parents=True, exist_ok=True)
    rows: list[dict[str, Any]] = []
    for pair in pairs:
        r = results[pair.key]
        dest = inside(args.out, args.out / f"{safe_name(args.clip.stem)}_{pair.key}.wav")
        save_audio(dest, r.wav[0], r.sample_rate)
        st = r.settings
        rows.append({
            "codec": pair.key, "lm": str(pair.path), "wav": dest.name,
            "setting": f"w={st.window}" if st.window else f"{st.bandwidth:g} kbps"
            if st.bandwidth else "-",
            "prompt_seconds": r.boundary_sample / r.sample_rate, "prompt_frames": st.prompt_frames,
            "continuation_seconds": r.continuation.shape[-1] / r.sample_rate,
            "continuation_frames": st.generated_frames, "boundary_sample": r.boundary_sample,
            "heard": judge.hear(r.continuation[0, 0], r.sample_rate).text() if judge else "",
            "settings": st.to_dict(),
        })  # fmt: skip
    lines = [
        "| codec | LM | setting | prompt | continuation | boundary (sample) | judge hears "
        "(continuation) | wav |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['codec']} | {r['lm']} | {r['setting']} | {r['prompt_seconds']:.2f} s "
            f"({r['prompt_frames']} frames) | {r['continuation_seconds']:.2f} s "
            f"({r['continuation_frames']} frames) | {r['boundary_sample']} | "
            f"{r['heard'] or '-'} | {r['wav']} |"
        )
    table = "\n".join(lines) + "\n"
    (args.out / "continue.md").write_text(table)
    record = {"clip": str(args.clip), "rows": rows, "skipped": skipped}
    (args.out / "continue.json").write_text(json.dumps(record, indent=2))
    print(table, end="")
    return 0


def cmd_continue_eval(args: argparse.Namespace, lineup: list[Any]) -> int:
    """`continue-eval`: `lineup` as for `cmd_continue`."""
    from analysis.continuation_eval import evaluate_continuations, load_eval_clips

    pairs, skipped = _pairs(args, lineup)
    heldout = args.heldout_root
    if heldout is not None and not heldout.is_dir():
        raise FileNotFoundError(f"--heldout-root {heldout}: no such folder")
    if heldout is None and Path("data/heldout").is_dir():
        heldout = Path("data/heldout")
    clips = load_eval_clips(args.dataset_root, "demo held-out", False, args.max_clips)
    if heldout is not None:
        clips += load_eval_clips(heldout, "independent", True, args.max_clips)
    else:
        log.info("no independent set (data/heldout): the demo held-out clips only")
    if not clips:
        raise ValueError(f"{args.dataset_root}: no held-out clips to continue")
    report = evaluate_continuations(
        pairs, clips, _judge(args), args.prompt_seconds, args.seconds, args.temperature,
        args.top_k, args.seed, args.tracker, progress=lambda s: log.info("continue-eval %s", s),
    )  # fmt: skip
    report.skipped = skipped
    files = report.write(args.out)
    print(files["md"])
    return 0
