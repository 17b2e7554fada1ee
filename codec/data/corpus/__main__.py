"""Command line: build, list and describe the training corpus.

python -m codec.data.corpus build --out /work/corpus [--jobs 2] [--only SOURCE ...]
python -m codec.data.corpus build --out data/corpus_opl3 --only opl3-render   # an extra source
python -m codec.data.corpus list  [--out DIR]        # sources (and clip counts when built)
python -m codec.data.corpus stats --out /work/corpus  # hours per category and per source
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from codec.data.corpus.manifest import read_manifest
from codec.data.corpus.sources import (
    DEFAULT_SOURCES,
    EXTRA_SOURCES,
    RESERVED_PACKAGES,
    source_by_name,
)
from codec.data.corpus.stats import composition, format_composition


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m codec.data.corpus", description=__doc__)
    sub = p.add_subparsers(dest="verb", required=True)
    b = sub.add_parser("build", help="build the corpus (manifest written last)")
    b.add_argument("--out", type=Path, required=True)
    b.add_argument("--jobs", type=int, default=1, help="worker processes")
    b.add_argument("--only", nargs="+", default=None, metavar="SOURCE",
                   help="these sources only (or extra ones, e.g. opl3-render)")  # fmt: skip
    b.add_argument("--no-leak-guard", action="store_true", help="keep demo val/test notes")
    b.add_argument("--no-progress", action="store_true")
    ls = sub.add_parser("list", help="the sources, their packages, categories and licences")
    ls.add_argument("--out", type=Path, default=None, help="a built corpus: add clip counts")
    st = sub.add_parser("stats", help="hours per category and per source of a built corpus")
    st.add_argument("--out", type=Path, required=True)
    ho = sub.add_parser("heldout", help="evaluation set from the reserved packages (demo layout)")
    ho.add_argument("--out", type=Path, required=True)
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        if args.verb == "build":
            from codec.data.corpus.build import build

            if args.jobs < 1:
                raise ValueError(f"--jobs must be >= 1, got {args.jobs}")
            sources = DEFAULT_SOURCES
            if args.only:
                sources = tuple(source_by_name(n) for n in args.only)
            report = build(args.out, sources, jobs=args.jobs, leak_guard=not args.no_leak_guard,
                           progress=not args.no_progress)  # fmt: skip
            sys.stdout.write(format_composition(composition(report.rows)) + "\n")
            sys.stdout.write(
                f"\n{len(report.rows)} clips, {report.duplicates} duplicates dropped, "
                f"{len(report.skipped)} files skipped, {report.seconds:.0f} s\n"
            )
        elif args.verb == "heldout":
            from codec.data.corpus.heldout import build_heldout

            n = build_heldout(args.out)
            sys.stdout.write(f"{n} clips in {args.out} (Good-sounds layout)\n")
        elif args.verb == "list":
            counts = {}
            if args.out is not None:
                for r in read_manifest(args.out):
                    counts[r.source] = counts.get(r.source, 0) + 1
            for s in DEFAULT_SOURCES + EXTRA_SOURCES:
                extra = f" {counts.get(s.name, 0):>6} clips" if args.out is not None else ""
                if s in EXTRA_SOURCES:
                    extra += " (built only with --only)"
                sys.stdout.write(
                    f"{s.name:<16} {s.package:<28} {s.kind:<7} {s.category:<8} {s.licence}{extra}\n"
                )
            sys.stdout.write(f"reserved (never built): {', '.join(RESERVED_PACKAGES)}\n")
        else:
            sys.stdout.write(format_composition(composition(read_manifest(args.out))) + "\n")
    except (ValueError, FileNotFoundError) as exc:
        sys.stderr.write(f"error: {exc}\n")
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
