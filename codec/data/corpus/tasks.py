"""Units of build work: one task per source file (or zip member, SoundFont sample, rendered
note, spoken sentence). `plan` lists them in a fixed order; `run_task` turns one into clips
(in a worker process) and writes their FLAC files; a broken input gives an error string, never
an exception.
"""

from __future__ import annotations

import logging
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from codec.data.corpus import synth
from codec.data.corpus.clips import Clip, DecodeError, decode, make_clips, write_clip
from codec.data.corpus.manifest import ManifestRow
from codec.data.corpus.sf2 import SF2Error, SoundFont, pitched_samples, read_soundfont
from codec.data.corpus.sources import RESERVED_NAMES, Source, is_reserved_name

logger = logging.getLogger(__name__)

ZIP_EXTENSIONS = (".pk3", ".zip")
SF2_EXTENSIONS = (".sf2",)
MAX_ZIP_MEMBER_BYTES = 200_000_000


@dataclass(frozen=True)
class Task:
    """One unit of work. `kind` picks the reader; `ref` is what it reads.

    file: ref = path; zip: ref = archive path, member = name inside; sf2: ref = .sf2 path,
    samples = sample indices mixed to mono (a stereo pair); render: ref = .sf2 path, program,
    midi; espeak: voice, text.
    """

    source: str
    package: str
    kind: str
    ref: str
    file_id: str
    category: str
    licence: str
    label: str = ""
    member: str = ""
    samples: tuple[int, ...] = ()
    instrument: str = ""
    midi: int | None = None
    program: int | None = None
    voice: str = ""
    text: str = ""
    extra: dict[str, str] = field(default_factory=dict, hash=False, compare=False)


@dataclass
class TaskResult:
    rows: list[ManifestRow]
    error: str | None = None


# ------------------------------------------------------------------------------------------------
# planning
# ------------------------------------------------------------------------------------------------
def _rel(path: Path, source: Source) -> str:
    """A stable file id: the path relative to the source's root, or the absolute path."""
    for r in source.roots:
        try:
            rel = str(path.relative_to(r))
        except ValueError:
            continue
        return path.name if rel == "." else rel
    return str(path)


def plan_source(
    source: Source, leak: set[tuple[int, int]], reserved: set[str] | None = None
) -> list[Task]:
    """The tasks of one source, in a fixed order (see the module docstring)."""
    reserved = reserved or set()
    base = {"source": source.name, "package": source.package}
    tasks: list[Task] = []
    if source.kind == "espeak":
        for voice, text in synth.espeak_jobs():
            cat, lic = source.category, source.licence
            tasks.append(
                Task(
                    **base,
                    kind="espeak",
                    ref="",
                    file_id=f"{voice}/{text}",
                    category=cat,
                    licence=lic,
                    label=voice,
                    voice=voice,
                    text=text,
                )
            )
        return tasks
    exts = {"files": None, "zip": ZIP_EXTENSIONS, "sf2": SF2_EXTENSIONS, "render": SF2_EXTENSIONS}
    want = exts[source.kind]
    files = source.files(want) if want else source.files()
    files = [p for p in files if str(p.resolve()) not in reserved and not is_reserved_name(p)]
    for path in files:
        rel = _rel(path, source)
        if source.kind == "files":
            cat, lic = source.classify(rel)
            tasks.append(Task(**base, kind="file", ref=str(path), file_id=rel, category=cat,
                              licence=lic, label=str(Path(rel).parent.name)))  # fmt: skip
        elif source.kind == "zip":
            tasks.extend(_plan_zip(source, path, rel))
        elif source.kind == "sf2":
            tasks.extend(_plan_sf2(source, path, rel, leak))
        else:
            tasks.extend(_plan_render(source, path, leak))
    return tasks


def _plan_zip(source: Source, path: Path, rel: str) -> list[Task]:
    try:
        with zipfile.ZipFile(path) as z:
            names = sorted(n for n in z.namelist() if Path(n).suffix.lower() in _AUDIO)
    except (zipfile.BadZipFile, OSError) as exc:
        logger.warning("skip %s: not a readable zip archive (%s)", path, exc)
        return []
    out = []
    for n in names:
        cat, lic = source.classify(f"{rel}/{n}")
        out.append(Task(source.name, source.package, "zip", str(path), f"{rel}/{n}", cat, lic,
                        label=str(Path(n).parent.name), member=n))  # fmt: skip
    return out


def _read_allowed(path: Path) -> SoundFont | None:
    """The parsed soundfont, None (logged) when unreadable.

    Raises:
        ValueError: its INAM names a reserved soundfont (a renamed copy of one).
    """
    try:
        sf = read_soundfont(path)
    except (SF2Error, OSError) as exc:
        logger.warning("skip %s: %s", path, exc)
        return None
    if RESERVED_NAMES.search(sf.name):
        raise ValueError(
            f"{path}: soundfont {sf.name!r} is reserved for independent evaluation, never for "
            "training"
        )
    return sf


def _plan_sf2(source: Source, path: Path, rel: str, leak: set[tuple[int, int]]) -> list[Task]:
    sf = _read_allowed(path)
    if sf is None:
        return []
    banned: set[int] = set()
    for program, midi in sorted(leak):
        banned |= sf.samples_for_note(0, program, midi)
    out, done = [], set()
    for ps in pitched_samples(sf):
        i = ps.header.index
        if i in done:
            continue
        pair = (i,) if ps.partner is None else tuple(sorted((i, ps.partner)))
        done.update(pair)
        if banned.intersection(pair):
            continue
        cat = "effects" if ps.percussion or (ps.program or 0) >= 120 else source.category
        _, lic = source.classify(rel)
        name = sf.samples[pair[0]].name
        out.append(
            Task(
                source.name,
                source.package,
                "sf2",
                str(path),
                f"{rel}#{name}",
                cat,
                lic,
                label=name,
                samples=pair,
                instrument=ps.instrument,
                midi=None if cat == "effects" else ps.midi,
                program=ps.program,
            )
        )
    if banned:
        logger.info("leak guard: %s: %d samples of demo val/test notes left out", rel, len(banned))
    return out


def _plan_render(source: Source, path: Path, leak: set[tuple[int, int]]) -> list[Task]:
    sf = _read_allowed(path)
    if sf is None:
        return []
    out, left_out = [], 0
    for program in synth.MELODIC_PROGRAMS:
        rng = sf.key_range(0, program)
        if rng is None:
            continue
        name = synth.preset_label(sf.presets[(0, program)][0], program)
        for midi in synth.render_grid(*rng):
            if (program, midi) in leak:
                left_out += 1
                continue
            out.append(Task(source.name, source.package, "render", str(path),
                            f"program{program:03d}/midi{midi:03d}", source.category,
                            source.licence, label=name, instrument=name, midi=midi,
                            program=program))  # fmt: skip
    logger.info("leak guard: %d rendered notes of demo val/test pairs left out", left_out)
    return out


_AUDIO = (".wav", ".ogg", ".opus", ".flac", ".mp3", ".aiff", ".aif")


# ------------------------------------------------------------------------------------------------
# running (in worker processes)
# ------------------------------------------------------------------------------------------------
def _rows(
    task: Task, clips: list[Clip], root: Path, velocity: int | None = None
) -> list[ManifestRow]:
    out = []
    for c in clips:
        write_clip(root, c)
        out.append(ManifestRow(
            path=c.relpath, sha1=c.sha1, source=task.source, package=task.package,
            licence=task.licence, category=task.category, duration=round(c.duration, 4),
            instrument=task.instrument, midi=task.midi, velocity=velocity, program=task.program,
            label=task.label, group=f"{task.source}:{task.file_id}", start=round(c.start_s, 4),
        ))  # fmt: skip
    return out


def _sf2_mix(task: Task) -> tuple[np.ndarray, int]:
    sf = _soundfont(task.ref)
    waves = [sf.read_sample(sf.samples[i]) for i in task.samples]
    n = min(len(w) for w in waves)
    if n == 0:
        raise DecodeError(f"{task.file_id}: empty sample")
    return np.mean([w[:n] for w in waves], axis=0).astype(np.float32), sf.samples[
        task.samples[0]
    ].sample_rate


_SF_CACHE: dict[str, object] = {}


def _soundfont(path: str):  # noqa: ANN202 - SoundFont, cached per process
    if path not in _SF_CACHE:
        _SF_CACHE[path] = read_soundfont(path)
    return _SF_CACHE[path]


def run_task(task: Task, root: Path) -> TaskResult:
    """Decode, cut, hash and write the clips of one task; errors become `TaskResult.error`."""
    try:
        if task.kind == "render":
            rows = []
            for vel in synth.VELOCITIES.values():
                x = synth.render_note(task.ref, task.program or 0, task.midi or 60, vel)
                rows += _rows(task, make_clips(x, synth.RENDER_SR, whole=True), root, vel)
            return TaskResult(rows)
        if task.kind == "file":
            x, sr = decode(task.ref)
        elif task.kind == "zip":
            with zipfile.ZipFile(task.ref) as z:
                info = z.getinfo(task.member)
                if info.file_size > MAX_ZIP_MEMBER_BYTES:
                    raise DecodeError(f"{task.file_id}: {info.file_size} bytes, over the cap")
                x, sr = decode(z.read(task.member), task.file_id)
        elif task.kind == "sf2":
            x, sr = _sf2_mix(task)
        elif task.kind == "espeak":
            x, sr = decode(synth.speak(task.voice, task.text), task.file_id)
        else:
            raise ValueError(f"unknown task kind {task.kind!r}")
        whole = task.kind == "sf2"
        return TaskResult(_rows(task, make_clips(x, sr, whole=whole), root))
    except (DecodeError, RuntimeError, OSError, zipfile.BadZipFile, SF2Error, KeyError) as exc:
        return TaskResult([], f"{task.source}: {task.file_id}: {exc}")
