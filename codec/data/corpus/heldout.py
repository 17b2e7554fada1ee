"""`heldout`: an independent evaluation set from the reserved packages, in the demo set's layout.

    python -m codec.data.corpus heldout --out /work/heldout

Nothing here is ever trained or tuned on (the corpus `build` refuses these packages). Written in
exactly the Good-sounds layout of the bundled demo set (database.sqlite + sound_files/<pack>/akg/
NNNN.wav, 24 kHz mono), so `codec.data.load_goodsounds` and the analysis tools read it as is:

- notes: the 12 Good-sounds instruments, each with the GM program the demo set uses, rendered from
  the two *other* soundfonts (timgm6mb-soundfont's TimGM6mb.sf2, musescore-general-soundfont's
  MuseScore_General.sf3) at the pitches the demo grid skips ("off-grid"), one dynamic (mf);
  klass "good-sound", player = soundfont;
- speech: real recordings from fillets-ng-data-nl (Dutch dialogue) and qabcs-data (spoken words,
  several languages), at most SPEECH_PER_SOURCE clips each of at most SPEECH_MAX_S; klass "speech";
- effects: qabcs-data's recorded noises, as plain files in <out>/effects/qabcs_noises/ (the
  "folder" dataset layout), not in the database: Good-sounds readers take every klass that is not
  a scale or speech for a single note.
"""

from __future__ import annotations

import logging
import sqlite3
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf

from codec.data.corpus import synth
from codec.data.corpus.clips import DecodeError, decode, sounding_regions, to_24k
from codec.data.corpus.leakguard import RENDER_DEMO, load_render_demo

logger = logging.getLogger(__name__)

SOUNDFONTS = {
    "timgm6mb": "/usr/share/sounds/sf2/TimGM6mb.sf2",
    "musescore": "/usr/share/sounds/sf3/MuseScore_General.sf3",
}
SPEECH_SOURCES = {
    "fillets_nl": ("/usr/share/games/fillets-ng/sound", "/nl/", "speech"),
    "qabcs_words": ("/usr/share/qabcs/abcs", "/sounds/words/", "speech"),
    "qabcs_noises": ("/usr/share/qabcs/abcs/all/noises", "", "effects"),
}
SPEECH_PER_SOURCE = 60
SPEECH_MAX_S = 4.0
PEAK = 0.7


def off_grid(lo: int, hi: int) -> list[int]:
    """Pitches in [lo, hi] that the demo grid (render_demo.note_grid) does not render."""
    demo = set(load_render_demo().note_grid(lo, hi, []))
    return [m for m in range(lo, hi + 1) if m not in demo]


def _notes(rd: Any, name: str, sf_path: str, player: str) -> list[Any]:
    program, lo, hi = rd.INSTRUMENTS[name]
    out = []
    for midi in off_grid(lo, hi):
        x = synth.render_note(sf_path, program, midi, rd.VELOCITY["mf"])
        regions = sounding_regions(x)
        if not regions:
            continue
        x = x[regions[0][0] : regions[-1][1]]
        peak = float(np.abs(x).max())
        if peak <= 0:
            continue
        note, octave = rd.NOTE_NAMES[midi % 12], midi // 12 - 1
        out.append(rd.Sound(name, (x * (PEAK / peak)).astype(np.float32), "good-sound",
                            f"{name}_{player}", note, octave, midi, "mf", player=player,
                            note_off=min(len(x), int(synth.NOTE_ON_S * 24000))))  # fmt: skip
    return out


def _recordings(rd: Any, tag: str, root: str, include: str, klass: str) -> list[Any]:
    files = sorted(p for p in Path(root).rglob("*") if p.suffix in (".ogg", ".wav"))
    files = [p for p in files if include in str(p)]
    step = max(1, len(files) // SPEECH_PER_SOURCE)
    out = []
    for p in files[::step][:SPEECH_PER_SOURCE]:
        try:
            x, sr = decode(p)
        except DecodeError as exc:
            logger.warning("skip %s", exc)
            continue
        y = to_24k(x, sr)
        regions = sounding_regions(y)
        if not regions:
            continue
        y = y[regions[0][0] : regions[-1][1]][: int(SPEECH_MAX_S * 24000)]
        peak = float(np.abs(y).max())
        out.append(rd.Sound(klass, (y * (0.5 / max(peak, 1e-9))).astype(np.float32), klass,
                            tag, player=tag, note_off=len(y), comments=str(p)))  # fmt: skip
    return out


def _describe_packs(out: Path) -> None:
    """write_dataset describes every pack as FluidR3 or espeak; say where these come from."""
    with sqlite3.connect(out / "database.sqlite") as conn:
        for pid, name in conn.execute("SELECT id, name FROM packs").fetchall():
            tag = name.rsplit("_", 1)[-1] if "_" in name else name
            desc = f"{name}: reserved evaluation source ({tag})"
            if name in SPEECH_SOURCES:
                desc = f"{name}: {SPEECH_SOURCES[name][0]} (reserved evaluation source)"
            conn.execute("UPDATE packs SET description = ? WHERE id = ?", (desc, pid))


def build_heldout(out: str | Path) -> int:
    """Render / read everything and write the Good-sounds layout to `out`; returns the clips.

    Raises:
        FileNotFoundError: a reserved package is missing
            (scripts/install_corpus_packages.sh --heldout).
    """
    rd = load_render_demo()
    for path in SOUNDFONTS.values():
        if not Path(path).exists():
            raise FileNotFoundError(f"{path}: install the reserved packages (--heldout)")
    sounds: list[Any] = []
    for player, path in SOUNDFONTS.items():
        for name in rd.INSTRUMENTS:
            notes = _notes(rd, name, path, player)
            logger.info("%-10s %-13s %3d off-grid notes", player, name, len(notes))
            sounds += notes
    effects: list[Any] = []
    for tag, (root, include, klass) in SPEECH_SOURCES.items():
        got = _recordings(rd, tag, root, include, klass)
        logger.info("%-13s %3d clips", tag, len(got))
        (sounds if klass == "speech" else effects).extend(got)
    rd.write_dataset(Path(out), sounds)
    _describe_packs(Path(out))
    for i, s in enumerate(effects):
        path = Path(out) / "effects" / s.pack / f"{i:04d}.wav"
        path.parent.mkdir(parents=True, exist_ok=True)
        sf.write(path, s.wav, 24000, subtype="PCM_16")
    sounds += effects
    logger.info("held-out set: %d clips in %s (render script %s)", len(sounds), out, RENDER_DEMO)
    return len(sounds)
