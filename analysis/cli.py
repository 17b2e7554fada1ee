"""`python -m analysis map|traverse|transfer|evaluate|probe ...`.

Every command loads a line-up of codecs: ALMTokenizer (--alm-checkpoint), our EnCodec
(--encodec-checkpoint) and the official EnCodec when its weights file is given (--encodec-weights)
or in the torch hub cache; --codecs picks from these, --codec NAME=PATH adds any registered backend
(`codec.models.registry`). It reads the Good-sounds-layout dataset at --dataset-root and writes its
outputs under --out, one file or folder per codec (named by the codec's key). Bad arguments or
unusable inputs give one clear line on stderr and a non-zero exit status (2 for usage errors, 1
for inputs that fail).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

log = logging.getLogger("analysis")

COMMANDS = ("reconstruct", "map", "traverse", "transfer", "evaluate", "probe")


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


def _codec_names(text: str) -> tuple[str, ...]:
    from codec.models.registry import BACKENDS

    names = tuple(p.strip() for p in text.split(",") if p.strip())
    if names in (("all",), ("both",)):
        return ("all",)
    if names == ("none",):
        return ()
    bad = [n for n in names if n not in BACKENDS]
    if bad or not names:
        raise argparse.ArgumentTypeError(
            f"unknown codec(s) {bad or text!r}; choose 'all', 'none' or from {', '.join(BACKENDS)}"
        )
    return names


def _codec_spec(text: str) -> Any:
    from analysis.models import CodecSpec

    try:
        return CodecSpec.parse(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def _positive_int(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if v < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {v}")
    return v


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
        default=Path("checkpoints/encodec_demo"),
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
        help="which of the default codecs to run: 'all' (default; 'both' is the same), or a "
        "comma list of almtokenizer, encodec (our EnCodec and the official one), "
        "encodec_official, or 'none' (only --codec ones)",
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
    p.add_argument("--bandwidths", type=_floats, default=[1.5], help="EnCodec kbps (default 1.5)")

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
        type=_floats,
        default=[1.5, 3.0, 6.0],
        help="EnCodec bandwidths in kbps (default 1.5,3,6)",
    )
    p.add_argument("--max-clips", type=_positive_int, default=None, help="evaluate at most N clips")
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
    return parser


def _cache(args: argparse.Namespace) -> Path | None:
    return None if args.no_cache else args.cache_dir


def _lineup(args: argparse.Namespace) -> list[Any]:
    """The loaded codecs (`analysis.models.LoadedCodec`), in line-up order."""
    from analysis.models import default_specs, load_codec_list
    from codec.models.registry import family

    specs = default_specs(args.alm_checkpoint, args.encodec_checkpoint, args.encodec_weights)
    names = args.codecs
    if names != ("all",):
        # "encodec" names the EnCodec family: ours and, when present, the official one
        specs = [s for s in specs if s.backend in names or family(s.backend) in names]
    specs += args.extra_codecs
    if not specs:
        raise ValueError("no codecs selected (--codecs none and no --codec)")
    codecs = load_codec_list(specs)
    for c in codecs:
        if c.setting.kind == "bandwidth" and args.encodec_bandwidth in c.setting.choices:
            c.codec.apply_setting(args.encodec_bandwidth)
    return codecs


def _transfer_method(text: str) -> str:
    from analysis.timbre import METHODS

    if text not in METHODS:
        raise argparse.ArgumentTypeError(
            f"unknown transfer method {text!r}; choose from {', '.join(METHODS)}"
        )
    return text


def _transfer_methods(text: str) -> list[str]:
    return [_transfer_method(m.strip()) for m in text.split(",") if m.strip()]


def _judge(args: argparse.Namespace) -> Any:
    """The audio judge of --dataset-root (fitted once, cached next to the latent cache)."""
    from analysis.judge import load_or_fit_judge

    cache = None if args.no_cache else Path(args.cache_dir).parent / "judge"
    judge = load_or_fit_judge(args.dataset_root, cache, args.seed)
    log.info("%s", judge.summary())
    return judge


def _items(args: argparse.Namespace) -> list[Any]:
    from analysis.dataset import load_items

    return load_items(args.dataset_root)


def cmd_map(args: argparse.Namespace) -> int:
    from analysis.maps import build_latent_map
    from analysis.probe import probe_latents
    from analysis.projection import save_embedding
    from codec.audio import load_audio

    lineup, items = _lineup(args), _items(args)
    uploads = [(p.stem, load_audio(p)) for p in args.upload]
    scores = None
    if args.with_probe:
        from analysis.latents import extract_latents

        scores = {}
        for c in lineup:
            lat = extract_latents(c.codec, items, args.window, cache_dir=_cache(args))
            scores[c.label] = probe_latents(lat.pooled, lat.items, c.key, seed=args.seed)
    m = build_latent_map(
        [c.codec for c in lineup], items, args.window, args.method, args.color_by, uploads,
        scores, cache_dir=_cache(args), random_state=args.seed,
        labels=[c.label for c in lineup],
    )  # fmt: skip
    args.out.mkdir(parents=True, exist_ok=True)
    html = args.out / f"map_{args.method}_{args.color_by}.html"
    m.figure.write_html(str(html), include_plotlyjs=True)
    for c, lat, panel in zip(lineup, m.latents, m.panels):
        save_embedding(args.out / f"embedding_{c.key}_{args.method}.npz", panel.embedding,
                       [str(clip.path) for clip in lat.clips])  # fmt: skip
    print(html)
    return 0


def cmd_traverse(args: argparse.Namespace) -> int:
    from analysis.export import safe_name
    from analysis.traversal import export_traversal, traverse

    if len(args.waypoints) < 2:
        raise ValueError("traverse needs two or more waypoints")
    if args.steps < 2:
        raise ValueError("--steps must be >= 2 (both ends are included)")
    if args.no_glide and args.no_steps:
        raise ValueError("--no-glide and --no-steps leave nothing to render")
    lineup, items = _lineup(args), _items(args)
    results = [
        dataclasses.replace(traverse(
            c.codec, args.waypoints, items, args.window, args.steps, args.mode, args.space,
            render_steps=not args.no_steps, render_glide=not args.no_glide,
            glide_seconds=args.glide_seconds, cache_dir=_cache(args), progress=True,
        ), codec_name=c.key)  # the export folder is named by the line-up key
        for c in lineup
    ]  # fmt: skip
    name = args.name or safe_name(
        "_to_".join(Path(w).stem if Path(w).is_file() else w for w in args.waypoints)
    )
    exp = export_traversal(results, args.out, name)
    print(exp.zip_path)
    return 0


def cmd_reconstruct(args: argparse.Namespace) -> int:
    import csv

    from analysis.evaluate import applied, is_speech, settings_for
    from analysis.export import export_audio, safe_name
    from analysis.metrics import codec_rates, quality_metrics
    from codec.audio import load_audio

    lineup = _lineup(args)
    tracks: dict[str, dict[str, Any]] = {}
    rows = []
    for clip in args.clips:
        wav = load_audio(clip)
        name = safe_name(clip.stem)
        tracks.setdefault(name, {})["original"] = wav
        speech = "speech" in clip.stem or is_speech(clip)
        for lc in lineup:
            c = lc.codec
            for st in settings_for(c, args.windows, args.bandwidths):
                with applied(c, st):
                    rec = c.reconstruct(wav[None], st.window)[0]
                    rates = codec_rates(c, st.window)
                tag = f"{lc.key}_" + (f"w{st.window}" if st.window else f"{st.bandwidth:g}kbps")
                tracks[name][tag] = rec
                q = quality_metrics(rec, wav, c.sample_rate, speech=speech)
                rows.append({"clip": clip.name, "codec": lc.key, "setting": st.label,
                             "bitrate": rates.bitrate, "mel_distance": q.mel_distance,
                             "si_sdr": q.si_sdr, "stoi": q.stoi, "pesq": q.pesq})  # fmt: skip
    exp = export_audio(tracks, args.out, "reconstructions")
    with open(exp.folder / "metrics.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    print(exp.zip_path)
    return 0


def cmd_transfer(args: argparse.Namespace) -> int:
    from analysis.export import export_audio
    from analysis.timbre import timbre_transfer

    lineup, items = _lineup(args), _items(args)
    tracks = {}
    judge = None if args.no_judge else _judge(args)
    for c in lineup:
        r = timbre_transfer(c.codec, args.clip, args.target, items, args.alpha, args.window,
                            args.quantize, cache_dir=_cache(args), method=args.method)  # fmt: skip
        tag = c.key + (f"_w{r.window}" if r.window is not None else "")
        tracks[tag] = {"before": r.before, "after": r.after}
        if judge is not None:  # what the result sounds like, on stderr (stdout: the zip)
            after, before = judge.hear(r.after), judge.hear(r.before)
            print(f"{tag}: sounds like {after.text()} (before: {before.text()})", file=sys.stderr)
    name = f"{args.clip.stem}_to_{args.target}_a{args.alpha:g}"
    exp = export_audio(tracks, args.out, name)
    print(exp.zip_path)
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from analysis.dataset import unseen_sound_ids
    from analysis.evaluate import evaluate_codecs

    lineup, items = _lineup(args), _items(args)
    ids = args.heldout_ids
    if ids is None and args.split_seed is None:
        ids = unseen_sound_ids(args.dataset_root)
    report = evaluate_codecs(
        [c.codec for c in lineup], items, args.out, ids, args.split_seed, args.windows,
        args.bandwidths,
        probe=not args.no_probe, probe_window=args.window, max_clips=args.max_clips,
        cache_dir=_cache(args), seed=args.seed,
        judge=None if args.no_judge else _judge(args), transfer_clips=args.transfer_clips,
        transfer_methods=args.transfer_methods, transfer_alphas=args.transfer_alphas,
        labels=[c.key for c in lineup],
    )  # fmt: skip
    print(report.files["md"])
    return 0


def cmd_probe(args: argparse.Namespace) -> int:
    from analysis.latents import extract_latents
    from analysis.probe import probe_latents
    from analysis.report import _json_safe

    attrs = [a.strip() for a in args.attributes.split(",") if a.strip()]
    bad = [a for a in attrs if a not in ("instrument", "note", "octave")]
    if bad or not attrs:
        raise ValueError(f"unknown attributes {bad}; choose from instrument, note, octave")
    lineup, items = _lineup(args), _items(args)
    out: dict[str, Any] = {}
    header = (
        "| codec | attribute | linear acc | non-linear acc | ARI | NMI | homogeneity | silhouette |"
    )
    lines = [header, "|---|---|---|---|---|---|---|---|"]
    for c in lineup:
        lat = extract_latents(c.codec, items, args.window, cache_dir=_cache(args))
        scores = probe_latents(lat.pooled, lat.items, c.key, attrs, seed=args.seed)
        out[c.key] = {a: s.as_dict() for a, s in scores.items()}
        for a, s in scores.items():
            vals = (
                s.linear_accuracy,
                s.nonlinear_accuracy,
                s.ari,
                s.nmi,
                s.homogeneity,
                s.silhouette,
            )
            lines.append(f"| {c.key} | {a} | " + " | ".join(f"{v:.3f}" for v in vals) + " |")
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "probe.json").write_text(json.dumps(_json_safe(out), indent=2))
    (args.out / "probe.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


_HANDLERS = {
    "reconstruct": cmd_reconstruct, "map": cmd_map, "traverse": cmd_traverse,
    "transfer": cmd_transfer, "evaluate": cmd_evaluate, "probe": cmd_probe,
}  # fmt: skip


def main(argv: Sequence[str] | None = None) -> int:
    """Parse `argv` and run one command. Returns the exit status."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")  # fmt: skip
    from codec.audio import AudioError
    from codec.checkpoint import CheckpointError

    try:
        return _HANDLERS[args.command](args)
    except (CheckpointError, AudioError, FileNotFoundError, ValueError, NotImplementedError) as e:
        print(f"python -m analysis {args.command}: error: {e}", file=sys.stderr)
        return 1
