"""The grammar of `python -m analysis`: its commands, their options and the argument types
that validate them (a bad value is a usage error naming the option, exit status 2).
`analysis.cli` runs the commands."""

from __future__ import annotations

import argparse
from pathlib import Path

from analysis.cli_types import codec_names as _codec_names
from analysis.cli_types import codec_spec as _codec_spec
from analysis.cli_types import positive_int as _positive_int

COMMANDS = (
    "reconstruct", "map", "traverse", "transfer", "evaluate", "probe", "continue", "continue-eval",
)  # fmt: skip


def _window(text: str) -> int:
    try:
        w = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"window must be an integer in 2..10, got {text!r}"
        ) from None
    if not 2 <= w <= 10:
        raise argparse.ArgumentTypeError(f"window must be in 2..10, got {w}")
    return w


def _windows(text: str) -> list[int]:
    out: list[int] = []
    for part in text.split(","):
        if "-" in part.strip()[1:]:
            lo, hi = part.split("-", 1)
            out += list(range(_window(lo), _window(hi) + 1))
        elif part.strip():
            out.append(_window(part))
    if not out:
        raise argparse.ArgumentTypeError(f"no windows in {text!r} (e.g. '2-10' or '2,4,8')")
    return out


def _clip_budget(text: str) -> int | None:
    if text.strip().lower() == "all":
        return None
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected a number of clips or 'all', got {text!r}"
        ) from None
    if n < 0:
        raise argparse.ArgumentTypeError(f"expected 0 or more clips, got {n}")
    return n


def _floats(text: str) -> list[float]:
    try:
        vals = [float(p) for p in text.split(",") if p.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated numbers, got {text!r}"
        ) from None
    if not vals or any(v <= 0 for v in vals):
        raise argparse.ArgumentTypeError(f"expected positive numbers, got {text!r}")
    return vals


def _bandwidths(text: str) -> list[float] | None:
    """EnCodec kbps as a comma list, or "checkpoint" (None): every bandwidth the checkpoint
    offers up to 6 kbps (`analysis.codec_ops.bandwidths_for`)."""
    return None if text.strip().lower() == "checkpoint" else _floats(text)


def _ints(text: str) -> list[int]:
    try:
        return [int(p) for p in text.split(",") if p.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated integers, got {text!r}"
        ) from None


def _alpha(text: str) -> float:
    try:
        a = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"alpha must be a number in [0, 1.5], got {text!r}"
        ) from None
    if not 0.0 <= a <= 1.5:
        raise argparse.ArgumentTypeError(f"alpha must be in [0, 1.5], got {a}")
    return a


def _common(p: argparse.ArgumentParser, command: str) -> None:
    g = p.add_argument_group("models and data")
    g.add_argument(
        "--alm-checkpoint",
        type=Path,
        default=Path("checkpoints/almtokenizer_demo"),
        help="ALMTokenizer checkpoint folder (model.safetensors + config.json)",
    )
    g.add_argument(
        "--encodec-checkpoint",
        type=Path,
        default=Path("checkpoints/encodec_vocos_demo"),
        help="EnCodec checkpoint folder (our same-data baseline)",
    )
    g.add_argument(
        "--encodec-weights",
        type=Path,
        default=None,
        help="official EnCodec 24 kHz weights file (encodec_24khz-d7cc33bc.th): adds the "
        "official EnCodec next to ours (default: the torch hub cache's, when present)",
    )
    g.add_argument(
        "--encodec-bandwidth",
        type=float,
        default=1.5,
        help="EnCodec bandwidth in kbps for map/traverse/transfer/probe (default 1.5)",
    )
    g.add_argument(
        "--codecs",
        type=_codec_names,
        default="all",
        help="which codecs to run: 'all' (default: the learned codecs; 'both' is the same), "
        "or a comma list of almtokenizer, encodec (our EnCodec and the official one), "
        "encodec_official and the reference codecs opus (libopus, 6 and 12 kbps) and codec2 "
        "(8 kHz speech codec, 700C/1200/3200 bit/s; they reconstruct but have no latents, so "
        "map/traverse/transfer/probe leave them out), or 'none' (only --codec ones)",
    )
    g.add_argument(
        "--codec",
        dest="extra_codecs",
        type=_codec_spec,
        action="append",
        default=[],
        metavar="NAME=PATH[@LABEL]",
        help="add a codec of any registered backend (repeatable), e.g. "
        "'encodec=checkpoints/encodec_small@EnCodec small'",
    )
    g.add_argument(
        "--dataset-root",
        type=Path,
        default=Path("data/demo"),
        help="Good-sounds-layout dataset: database.sqlite + sound_files/ (default data/demo)",
    )
    g.add_argument(
        "--window",
        type=_window,
        default=6,
        help="ALMTokenizer window size 2..10 (EnCodec ignores it; default 6)",
    )
    g.add_argument(
        "--out",
        type=Path,
        default=Path("exports") / command,
        help=f"output folder (default exports/{command})",
    )
    g.add_argument(
        "--cache-dir",
        type=Path,
        default=Path("cache/latents"),
        help="latent cache folder (default cache/latents)",
    )
    g.add_argument("--no-cache", action="store_true", help="do not read or write the latent cache")
    g.add_argument("--seed", type=int, default=0, help="random seed (projections, splits, probes)")
    g.add_argument("-v", "--verbose", action="store_true", help="log progress at INFO level")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with one sub-command per analysis."""
    parser = argparse.ArgumentParser(
        prog="python -m analysis",
        description="Inference-only analysis of ALMTokenizer next to EnCodec: latent maps, "
        "traversals, timbre transfer, evaluation and semantic probes.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("map", help="2-D map (UMAP/PCA/t-SNE/LDA) of both codecs' latents as HTML",
                       description="Project the pooled latents of every dataset clip to 2-D, one "
                       "panel per codec, and write an interactive plotly HTML file plus the "
                       "embeddings (.npz).")  # fmt: skip
    _common(p, "map")
    p.add_argument(
        "--method",
        choices=("umap", "pca", "tsne", "lda"),
        default="umap",
        help="projection (default umap; lda separates the --color-by classes)",
    )
    p.add_argument(
        "--color-by",
        choices=("instrument", "note", "octave", "pitch", "klass"),
        default="instrument",
        help="colour attribute (default instrument)",
    )
    p.add_argument(
        "--upload",
        type=Path,
        action="append",
        default=[],
        help="audio file to project into the map as a star (repeatable)",
    )
    p.add_argument("--with-probe", action="store_true", help="show probe scores under each panel")

    p = sub.add_parser("traverse", help="interpolate between clips / groups; wavs + zip",
                       description="Render a latent traversal through two or more waypoints with "
                       "each codec: N steps per segment (step_00.wav ...) and one continuous "
                       "glide (glide.wav), plus a zip of everything.")  # fmt: skip
    _common(p, "traverse")
    p.add_argument(
        "waypoints",
        nargs="+",
        help="two or more waypoints: an audio file path or a group such as "
        "'bass A3', 'clarinet A6', 'cello' (quote groups with spaces)",
    )
    p.add_argument(
        "--steps",
        type=_positive_int,
        default=5,
        help="steps per segment including both ends, >= 2 (default 5)",
    )
    p.add_argument(
        "--mode",
        choices=("linear", "spherical"),
        default="linear",
        help="interpolation path (default linear)",
    )
    p.add_argument(
        "--space",
        choices=("continuous", "quantized"),
        default="continuous",
        help="latent space of clip waypoints (default continuous)",
    )
    p.add_argument(
        "--glide-seconds",
        type=float,
        default=None,
        help="glide length in seconds (default: (waypoints-1) x clip length)",
    )
    p.add_argument("--no-glide", action="store_true", help="skip the glide")
    p.add_argument("--no-steps", action="store_true", help="skip the steps")
    p.add_argument("--name", default=None, help="export folder name (default from waypoints)")

    p = sub.add_parser("reconstruct", help="encode + decode clips at several windows / kbps",
                       description="Reconstruct audio files with ALMTokenizer at each --windows "
                       "value and EnCodec at each --bandwidths value; write original.wav and "
                       "one wav per setting per clip, a metrics.csv and a zip.")  # fmt: skip
    _common(p, "reconstruct")
    p.add_argument("clips", nargs="+", type=Path, help="audio files")
    p.add_argument("--windows", type=_windows, default=[3, 6, 10], help="default 3,6,10")
    p.add_argument("--bandwidths", type=_bandwidths, default=[1.5],
                   help="EnCodec kbps, each one its checkpoint offers, or 'checkpoint': every "
                   "one it offers up to 6 kbps (default 1.5)")  # fmt: skip

    p = sub.add_parser("transfer", help="centroid timbre transfer; before/after wavs + zip",
                       description="Shift a clip's latents toward an instrument group's centroid: "
                       "z'_t = z_t + alpha (c - mean_t z_t), decode with each codec, write "
                       "before.wav / after.wav per codec and a zip.")  # fmt: skip
    _common(p, "transfer")
    p.add_argument("--clip", type=Path, required=True, help="source audio file")
    p.add_argument("--target", required=True, help="target group, e.g. 'cello' or 'bass A3'")
    p.add_argument("--alpha", type=_alpha, default=1.0, help="strength in [0, 1.5] (default 1)")
    p.add_argument(
        "--quantize",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="re-quantize the shifted latents before decoding (default: for codecs whose "
        "decoder only saw quantized latents, i.e. ALMTokenizer)",
    )
    p.add_argument(
        "--method",
        type=_transfer_method,
        default="pitch_adain",
        help="transfer method: pitch_adain (default: per-channel mean and std matched to the "
        "target's notes around the clip's pitch), mean (the paper's centroid shift), adain, "
        "pitch_mean, channels, knn (see analysis/timbre.py)",
    )
    p.add_argument("--no-judge", action="store_true", help="do not print what the judge hears")

    p = sub.add_parser("evaluate", help="quality vs bitrate on held-out clips + probes",
                       description="Reconstruct held-out clips with ALMTokenizer at every window "
                       "and EnCodec at several bandwidths; write results.csv/.json/.md and "
                       "quality_vs_bitrate.png/.html. Held-out: --heldout-ids, else "
                       "--split-seed, else the training split's test sounds.")  # fmt: skip
    _common(p, "evaluate")
    p.add_argument("--heldout-ids", type=_ints, default=None, help="comma-separated sound ids")
    p.add_argument(
        "--split-seed",
        type=int,
        default=None,
        help="held-out = 20%% of sounds drawn with this seed (grouped by sound)",
    )
    p.add_argument(
        "--windows",
        type=_windows,
        default=list(range(2, 11)),
        help="ALMTokenizer windows, e.g. '2-10' or '2,6,10' (default 2-10)",
    )
    p.add_argument(
        "--bandwidths",
        type=_bandwidths,
        default=None,
        help="EnCodec bandwidths in kbps, each one its checkpoint offers (default, or "
        "'checkpoint': every one it offers up to 6 kbps, e.g. 1.5,3,6, or 0.75,1.5,3,6 when its "
        "config lists 0.75)",
    )
    p.add_argument("--max-clips", type=_positive_int, default=None, help="evaluate at most N clips")
    p.add_argument(
        "--visqol-clips",
        type=_clip_budget,
        default=48,
        help="ViSQOL scores the first N held-out clips (it costs most CPU: about 0.1-0.5 s per "
        "audio second); 'all' scores every clip (default 48)",
    )
    p.add_argument(
        "--tracker",
        choices=("crepe", "crepe-tiny", "fcpe"),
        default=None,
        help="neural F0 tracker for pitch kept / F0 RMSE / voicing (default: "
        "analysis.metrics.f0.DEFAULT_TRACKER, chosen by python -m bench.f0_pilot)",
    )
    p.add_argument("--no-f0", action="store_true", help="skip the neural F0 measures")
    p.add_argument("--no-probe", action="store_true", help="skip the semantic probe")
    p.add_argument(
        "--no-judge",
        action="store_true",
        help="skip the audio judge (recognised as source, the transfer grid)",
    )
    p.add_argument(
        "--transfer-clips",
        type=int,
        default=12,
        help="held-out clips in the judged timbre-transfer grid (0: none; default 12)",
    )
    p.add_argument(
        "--transfer-methods",
        type=_transfer_methods,
        default=["mean", "pitch_adain"],
        help="transfer methods of the grid (default mean,pitch_adain)",
    )
    p.add_argument(
        "--transfer-alphas",
        type=_floats,
        default=[0.5, 1.0],
        help="strengths of the grid (default 0.5,1)",
    )

    p = sub.add_parser("probe", help="semantic structure scores (instrument, note, octave)",
                       description="Linear and non-linear probe accuracy (grouped by sound id), "
                       "GMM clustering agreement and silhouette of each codec's pooled latents; "
                       "writes probe.json and probe.md.")  # fmt: skip
    _common(p, "probe")
    p.add_argument(
        "--attributes",
        default="instrument,note,octave",
        help="comma-separated attributes (default instrument,note,octave)",
    )
    from analysis.cli_continue import add_continue_commands  # continue, continue-eval

    add_continue_commands(sub)
    return parser


def _transfer_method(text: str) -> str:
    from analysis.timbre import METHODS

    if text not in METHODS:
        raise argparse.ArgumentTypeError(
            f"unknown transfer method {text!r}; choose from {', '.join(METHODS)}"
        )
    return text


def _transfer_methods(text: str) -> list[str]:
    return [_transfer_method(m.strip()) for m in text.split(",") if m.strip()]
