"""`python -m analysis map|traverse|transfer|evaluate|probe|continue|continue-eval ...`
(continue and continue-eval: `analysis.cli_continue`).

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

from analysis.cli_parser import build_parser

log = logging.getLogger("analysis")


def _cache(args: argparse.Namespace) -> Path | None:
    return None if args.no_cache else args.cache_dir


def _lineup(args: argparse.Namespace, latents: str | None = None) -> list[Any]:
    """The loaded codecs (`analysis.models.LoadedCodec`), in line-up order: the default ones
    `--codecs` keeps, the reference codecs it names (opus, codec2), then every `--codec`.
    With `latents` (what the command does with them, e.g. "the map"), codecs without latents
    are left out with one logged line; none left is an error."""
    from analysis.models import CodecSpec, default_specs, load_codec_list, with_latents
    from codec.models.registry import family, get_backend

    specs = default_specs(args.alm_checkpoint, args.encodec_checkpoint, args.encodec_weights)
    names = args.codecs
    if names != ("all",):
        # "encodec" names the EnCodec family: ours and, when present, the official one
        specs = [s for s in specs if s.backend in names or family(s.backend) in names]
        specs += [CodecSpec(n) for n in names if not get_backend(n).needs_weights]
    specs += args.extra_codecs
    if not specs:
        raise ValueError("no codecs selected (--codecs none and no --codec)")
    codecs = load_codec_list(specs)
    _apply_bandwidth(codecs, args.encodec_bandwidth)
    if latents is not None:
        codecs = with_latents(codecs, latents)
        if not codecs:
            raise ValueError(f"no codec with latents selected for {latents}")
    return codecs


def _apply_bandwidth(codecs: Sequence[Any], kbps: float | None) -> None:
    """`--encodec-bandwidth` on every learned codec with a bandwidth setting that offers it. One
    that does not (the official EnCodec has no 0.75 kbps) stays at its own setting, with a
    warning; a value that no selected codec offers is an error naming each one's choices.
    None (`continue`: each codec at its LM's setting) changes nothing."""
    if kbps is None:
        return
    banded = [c for c in codecs if c.codec.has_latents and c.setting.kind == "bandwidth"]
    choices = {c.label: ", ".join(f"{v:g}" for v in c.setting.choices) for c in banded}
    if banded and not any(kbps in c.setting.choices for c in banded):
        offered = "; ".join(f"{label}: {kinds}" for label, kinds in choices.items())
        raise ValueError(f"--encodec-bandwidth {kbps:g} kbps is offered by no codec ({offered})")
    for c in banded:
        if kbps in c.setting.choices:
            c.codec.apply_setting(kbps)
        else:
            log.warning(
                "%s has no %g kbps (choices %s): it stays at its own setting",
                c.label,
                kbps,
                choices[c.label],
            )


def _judge(args: argparse.Namespace) -> Any:
    """The audio judge of --dataset-root (fitted once, cached next to the latent cache)."""
    from analysis.metrics.judge import load_or_fit_judge

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

    lineup, items = _lineup(args, "the map"), _items(args)
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
    lineup, items = _lineup(args, "the traversal"), _items(args)
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
    from analysis.metrics import quality_metrics
    from codec.audio import load_audio

    lineup = _lineup(args)
    settings = [settings_for(c.codec, args.windows, args.bandwidths, c.key) for c in lineup]
    tracks: dict[str, dict[str, Any]] = {}
    rows = []
    for clip in args.clips:
        wav = load_audio(clip)
        name = safe_name(clip.stem)
        tracks.setdefault(name, {})["original"] = wav
        speech = "speech" in clip.stem or is_speech(clip)
        for lc, codec_settings in zip(lineup, settings):
            c = lc.codec
            for st in codec_settings:
                with applied(c, st):
                    out = c.reconstruct_measured(wav[None], st.window)  # Opus: bits counted
                rec = out.wav[0]
                tag = f"{lc.key}_" + (f"w{st.window}" if st.window else f"{st.bandwidth:g}kbps")
                tracks[name][tag] = rec
                q = quality_metrics(rec, wav, c.sample_rate, speech=speech)
                rows.append({"clip": clip.name, "codec": lc.key, "setting": st.label,
                             "bitrate": out.bitrate, "mel_distance": q.mel_distance,
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

    lineup, items = _lineup(args, "timbre transfer"), _items(args)
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
    from analysis.evaluate import evaluate_codecs, settings_for

    lineup, items = _lineup(args), _items(args)
    for c in lineup:  # a bandwidth a checkpoint does not offer fails here, before the judge
        settings_for(c.codec, args.windows, args.bandwidths, c.key)
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
        labels=[c.key for c in lineup], visqol_clips=args.visqol_clips, use_f0=not args.no_f0,
        **({"tracker": args.tracker} if args.tracker else {}),
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
    lineup, items = _lineup(args, "the probe"), _items(args)
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


def cmd_continue(args: argparse.Namespace) -> int:
    from analysis.cli_continue import cmd_continue as run

    return run(args, _lineup(args, "continuation"))


def cmd_continue_eval(args: argparse.Namespace) -> int:
    from analysis.cli_continue import cmd_continue_eval as run

    return run(args, _lineup(args, "continuation"))


_HANDLERS = {
    "reconstruct": cmd_reconstruct, "map": cmd_map, "traverse": cmd_traverse,
    "transfer": cmd_transfer, "evaluate": cmd_evaluate, "probe": cmd_probe,
    "continue": cmd_continue, "continue-eval": cmd_continue_eval,
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
