"""The corpus manifest: one JSON object per clip in `manifest.jsonl`, written last and atomically.

Its existence means the corpus is complete. Fields (in this order):

    path        clip file relative to the corpus root (audio/ab/abcdef0123456789.flac, 24 kHz
                mono 16-bit FLAC, named by the sha1 of its samples)
    sha1        sha1 of the clip's PCM16 samples (the de-duplication key)
    source      corpus source (codec.data.corpus.sources), e.g. "asterisk-en"
    package     Debian package the audio comes from
    licence     licence summary of that file (see /usr/share/doc/<package>/copyright)
    category    notes | speech | effects | music
    duration    seconds
    instrument  instrument / preset name where known ("" otherwise)
    midi        MIDI pitch where known (SoundFont root key, or the rendered note), else null
    velocity    MIDI velocity of rendered notes, else null
    program     GM program (0-based) of SoundFont notes, else null
    label       free text: sub-folder, language, voice, sample name
    group       source-file id ("<source>:<file>"): every clip cut from one file (or the three
                velocities of one rendered note) shares it; splits are grouped by it
    start       where the clip starts in its source file, seconds

Leak guard: the rendered notes and raw FluidR3 samples exclude the (program, pitch) pairs of the
bundled demo set's val/test split (codec.data.corpus.leakguard). The reserved evaluation packages
(sources.RESERVED_PACKAGES) are never read, nor is a soundfont whose file name or INAM is one of
theirs (sources.RESERVED_NAMES).
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, fields
from pathlib import Path

MANIFEST_NAME = "manifest.jsonl"


@dataclass(frozen=True)
class ManifestRow:
    """One clip of the corpus (fields documented in the module docstring)."""

    path: str
    sha1: str
    source: str
    package: str
    licence: str
    category: str
    duration: float
    instrument: str = ""
    midi: int | None = None
    velocity: int | None = None
    program: int | None = None
    label: str = ""
    group: str = ""
    start: float = 0.0


def write_manifest(root: Path, rows: list[ManifestRow]) -> Path:
    """Write `root/manifest.jsonl` atomically (temp file + rename)."""
    path = root / MANIFEST_NAME
    tmp = root / f".{MANIFEST_NAME}.tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        for r in rows:
            f.write(json.dumps(asdict(r), ensure_ascii=False) + "\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    return path


def read_manifest(root: str | Path) -> list[ManifestRow]:
    """Rows of `root/manifest.jsonl`.

    Raises:
        FileNotFoundError: no manifest (the corpus was never built, or a build is unfinished).
        ValueError: a line that is not a manifest row (names the line number).
    """
    path = Path(root) / MANIFEST_NAME
    if not path.is_file():
        raise FileNotFoundError(
            f"{path}: no corpus manifest (build it: python -m codec.data.corpus build --out {root})"
        )
    names = {f.name for f in fields(ManifestRow)}
    rows = []
    with open(path, encoding="utf-8") as f:
        for i, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                d = json.loads(line)
                unknown = set(d) - names
                if unknown:
                    raise ValueError(f"unknown fields {sorted(unknown)}")
                rows.append(ManifestRow(**d))
            except (ValueError, TypeError) as exc:
                raise ValueError(f"{path}:{i}: not a manifest row ({exc})") from exc
    return rows
