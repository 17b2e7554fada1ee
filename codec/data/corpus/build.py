"""`build`: run every task of every source, de-duplicate, write the manifest last.

    plan (sources in order, files sorted) -> worker pool (ordered results) -> first clip of each
    sha1 kept -> manifest.jsonl (atomic) + build.json (timings, counts, skipped files)

Deterministic: the manifest depends only on the sources' files and the code, never on the
number of jobs or on timing. Clip files are content-addressed, so a rebuild into the same folder
reuses them and an unchanged corpus yields a byte-identical manifest.
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import multiprocessing as mp
import os
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from tqdm import tqdm

from codec.data.corpus.leakguard import demo_eval_notes
from codec.data.corpus.manifest import MANIFEST_NAME, ManifestRow, read_manifest, write_manifest
from codec.data.corpus.sources import DEFAULT_SOURCES, Source, check_sources, reserved_files
from codec.data.corpus.tasks import Task, TaskResult, plan_source, run_task

logger = logging.getLogger(__name__)

BUILD_INFO = "build.json"


@dataclass
class BuildReport:
    """What a build did."""

    out: Path
    rows: list[ManifestRow]
    tasks: int = 0
    duplicates: int = 0
    skipped: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def hours(self) -> float:
        return sum(r.duration for r in self.rows) / 3600


def _init_worker() -> None:
    with contextlib.suppress(OSError):
        os.nice(5)
    os.environ.setdefault("OMP_NUM_THREADS", "1")


def plan(
    sources: tuple[Source, ...] | list[Source], leak: set[tuple[int, int]] | None
) -> list[Task]:
    """Every task of every source, in build order."""
    check_sources(sources)
    reserved = reserved_files()
    tasks: list[Task] = []
    for s in sources:
        got = plan_source(s, leak or set(), reserved)
        if not got:
            logger.warning("source %s (%s): nothing to read", s.name, s.package)
        logger.info("source %-16s %6d tasks", s.name, len(got))
        tasks += got
    return tasks


def build(
    out: str | Path,
    sources: tuple[Source, ...] | list[Source] = DEFAULT_SOURCES,
    jobs: int = 1,
    leak_guard: bool = True,
    progress: bool = True,
) -> BuildReport:
    """Build the corpus in `out` (see the module docstring).

    Args:
        out: corpus folder (created); an existing manifest is replaced only at the end, and
            only when it lists no source outside `sources` (ValueError otherwise).
        sources: what to read; a reserved package or soundfont raises ValueError.
        jobs: worker processes (1: in this process).
        leak_guard: leave out the demo set's val/test notes (see leakguard).
        progress: show a tqdm bar.
    """
    t0 = time.monotonic()
    root = Path(out)
    _check_replaces_nothing_else(root, sources)
    root.mkdir(parents=True, exist_ok=True)
    leak = demo_eval_notes() if leak_guard else set()
    tasks = plan(sources, leak)
    report = BuildReport(root, [], tasks=len(tasks))
    seen: set[str] = set()
    work = functools.partial(run_task, root=root)
    bar = tqdm(total=len(tasks), desc="corpus", unit="file", disable=not progress)
    pool = mp.get_context("fork").Pool(jobs, initializer=_init_worker) if jobs > 1 else None
    try:
        results = pool.imap(work, tasks, chunksize=4) if pool else map(work, tasks)
        for res in results:
            _collect(res, report, seen)
            bar.update(1)
    finally:
        bar.close()
        if pool:
            pool.close()
            pool.join()
    report.seconds = time.monotonic() - t0
    _write_info(report)
    write_manifest(root, report.rows)
    logger.info(
        "corpus: %d clips, %.2f h, %d duplicates, %d skipped files, %.0f s -> %s",
        len(report.rows), report.hours, report.duplicates, len(report.skipped), report.seconds,
        root / MANIFEST_NAME,
    )  # fmt: skip
    return report


def _check_replaces_nothing_else(root: Path, sources: tuple[Source, ...] | list[Source]) -> None:
    """Refuse to replace a manifest that lists sources this build does not read: `--only X
    --out data/corpus` would otherwise leave a corpus of X alone (build X into its own folder)."""
    if not (root / MANIFEST_NAME).is_file():
        return
    others = sorted({r.source for r in read_manifest(root)} - {s.name for s in sources})
    if others:
        raise ValueError(
            f"{root / MANIFEST_NAME} also lists sources {others} that this build does not read; "
            "build into another folder (or delete that manifest to rebuild it without them)"
        )


def _collect(res: TaskResult, report: BuildReport, seen: set[str]) -> None:
    if res.error:
        logger.warning("skip %s", res.error)
        report.skipped.append(res.error)
    for row in res.rows:
        if row.sha1 in seen:
            report.duplicates += 1
            continue
        seen.add(row.sha1)
        report.rows.append(row)


def _write_info(report: BuildReport) -> None:
    """build.json: figures of this build (timing varies, so it is kept out of the manifest)."""
    info = {
        "seconds": round(report.seconds, 1),
        "tasks": report.tasks,
        "clips": len(report.rows),
        "hours": round(report.hours, 3),
        "duplicates": report.duplicates,
        "skipped": report.skipped,
        "clips_per_source": dict(Counter(r.source for r in report.rows)),
    }
    tmp = report.out / f".{BUILD_INFO}.tmp"
    tmp.write_text(json.dumps(info, indent=1, ensure_ascii=False), encoding="utf-8")
    os.replace(tmp, report.out / BUILD_INFO)
