"""Good-sounds (MTG-UPF) loader: labels come from database.sqlite, never from folder names.

Layout (see shared data.md)::

    root/database.sqlite                         tables sounds, takes, packs, ratings
    root/sound_files/<pack_name>/<mic>/NNNN.wav  takes.filename is relative to root

The bundled demo set (data/demo) uses the same layout and adds speech clips whose klass is
"speech" (instrument "speech_female" / "speech_male"); they are not single notes.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from codec.data.crops import Split, grouped_split

logger = logging.getLogger(__name__)

GOODSOUNDS_INSTRUMENTS: tuple[str, ...] = (
    "flute", "cello", "clarinet", "trumpet", "violin", "sax_alto",
    "sax_tenor", "sax_baritone", "sax_soprano", "oboe", "piccolo", "bass",
)  # fmt: skip
MIC_PREFERENCE: tuple[str, ...] = ("akg", "neumann", "iphone")
SPEECH_KLASS = "speech"
NOTE_NAMES: tuple[str, ...] = ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")
_FLATS = {"Db": "C#", "Eb": "D#", "Gb": "F#", "Ab": "G#", "Bb": "A#"}

_REQUIRED = {
    "sounds": ("id", "instrument", "note", "octave", "dynamics", "klass", "semitone", "pack_id"),
    "takes": ("id", "microphone", "filename", "sound_id"),
    "packs": ("id", "name"),
}


@dataclass(frozen=True)
class GoodSoundsItem:
    """One take (one wav file) with its sound's labels. `midi` is the `semitone` column."""

    path: Path
    instrument: str
    note: str
    octave: int | None
    midi: int | None
    klass: str
    sound_id: int
    microphone: str
    pack: str
    dynamics: str = ""
    take_id: int = -1

    @property
    def pitch(self) -> str:
        """Note and octave, e.g. "A3" ("" when the sound has no pitch, e.g. speech)."""
        return f"{self.note}{self.octave}" if self.note and self.octave is not None else ""


def midi_to_note(midi: int) -> tuple[str, int]:
    """MIDI number to (note name, octave) with A4 = 69, e.g. 57 -> ("A", 3)."""
    return NOTE_NAMES[midi % 12], midi // 12 - 1


def note_to_midi(name: str) -> int:
    """Note name with octave to MIDI number, e.g. "A3" -> 57, "Bb6" -> 94, "C#-1" -> 1."""
    name = name.strip()
    i = 2 if len(name) > 1 and name[1] in "#b" else 1
    note, octave = _FLATS.get(name[:i], name[:i].upper()), name[i:]
    if note not in NOTE_NAMES or not octave.lstrip("-").isdigit():
        raise ValueError(f"not a note name with octave: {name!r} (expected e.g. 'A3', 'C#5')")
    return NOTE_NAMES.index(note) + 12 * (int(octave) + 1)


def is_single_note(klass: str) -> bool:
    """Single notes are the sounds whose klass does not start with "scale" (and is not speech)."""
    return not klass.startswith("scale") and klass != SPEECH_KLASS


def _open_db(root: Path) -> sqlite3.Connection:
    db = root / "database.sqlite"
    if not db.is_file():
        raise FileNotFoundError(f"{db}: Good-sounds database not found (is {root} good-sounds/?)")
    conn = sqlite3.connect(db.resolve().as_uri() + "?mode=ro", uri=True)
    try:
        for table, columns in _REQUIRED.items():
            have = {row[1] for row in conn.execute(f"PRAGMA table_info({table})")}
            if not have:
                raise ValueError(f"{db}: table '{table}' is missing")
            missing = [c for c in columns if c not in have]
            if missing:
                raise ValueError(f"{db}: table '{table}' lacks columns {missing}")
    except sqlite3.DatabaseError as exc:
        conn.close()
        raise ValueError(f"{db}: not a readable SQLite database ({exc})") from exc
    except ValueError:
        conn.close()
        raise
    return conn


def _int_or_none(value: object) -> int | None:
    try:
        return int(value)  # type: ignore[call-overload]
    except (TypeError, ValueError):
        return None


def _mic_rank(mic: str) -> tuple[int, str]:
    return (MIC_PREFERENCE.index(mic) if mic in MIC_PREFERENCE else len(MIC_PREFERENCE), mic)


def load_goodsounds(
    root: str | Path,
    single_notes: bool = True,
    microphone: str | None = None,
    one_mic_per_sound: bool = True,
    instruments: Sequence[str] | None = None,
) -> list[GoodSoundsItem]:
    """List Good-sounds takes with labels by joining takes -> sounds -> packs.

    Args:
        root: the good-sounds/ folder (or data/demo).
        single_notes: keep only single notes (klass not starting with "scale", not speech).
        microphone: keep only takes from this microphone (e.g. "akg").
        one_mic_per_sound: keep one take per sound, the first existing file in the order
            akg, neumann, iphone, then other microphones alphabetically.
        instruments: keep only these instruments (the `sounds.instrument` values).

    Returns:
        Items sorted by sound id then take id. Takes whose file is missing are skipped (with one
        warning giving the count).

    Raises:
        FileNotFoundError: no database.sqlite. ValueError: a missing table or column.
    """
    root = Path(root)
    conn = _open_db(root)
    try:
        rows = conn.execute(
            "SELECT t.id, t.microphone, t.filename, s.id, s.instrument, s.note, s.octave,"
            " s.semitone, s.klass, s.dynamics, p.name"
            " FROM takes t JOIN sounds s ON t.sound_id = s.id"
            " LEFT JOIN packs p ON s.pack_id = p.id ORDER BY s.id, t.id"
        ).fetchall()
    finally:
        conn.close()
    wanted = set(instruments) if instruments is not None else None
    by_sound: dict[int, list[GoodSoundsItem]] = {}
    missing = 0
    for take_id, mic, filename, sound_id, instr, note, octave, semitone, klass, dyn, pack in rows:
        klass, mic = (klass or "").strip(), (mic or "").strip().lower()
        if not instr or not filename:
            continue
        if single_notes and not is_single_note(klass):
            continue
        if wanted is not None and instr not in wanted:
            continue
        if microphone is not None and mic != microphone.lower():
            continue
        path = root / str(filename).replace("\\", "/")
        if not path.is_file():
            missing += 1
            continue
        item = GoodSoundsItem(
            path=path,
            instrument=str(instr),
            note=(note or "").strip(),
            octave=_int_or_none(octave),
            midi=_int_or_none(semitone),
            klass=klass,
            sound_id=int(sound_id),
            microphone=mic,
            pack=pack or "",
            dynamics=(dyn or "").strip(),
            take_id=int(take_id),
        )
        by_sound.setdefault(item.sound_id, []).append(item)
    if missing:
        logger.warning("%s: skipped %d takes whose file is missing", root, missing)
    items: list[GoodSoundsItem] = []
    for takes in by_sound.values():
        if one_mic_per_sound:
            takes = [min(takes, key=lambda t: (_mic_rank(t.microphone), t.take_id))]
        items.extend(takes)
    return items


def split_by_sound(
    items: Sequence[GoodSoundsItem],
    test_fraction: float = 0.2,
    seed: int = 0,
    stratify: bool = True,
) -> Split[GoodSoundsItem]:
    """Train/test split grouped by sound id (all takes of a sound on one side).

    With `stratify`, each instrument is split separately so every instrument with two or more
    sounds appears on both sides.
    """
    return grouped_split(
        items,
        group=lambda it: it.sound_id,
        test_fraction=test_fraction,
        seed=seed,
        stratify=(lambda it: it.instrument) if stratify else None,
    )


def select_items(
    items: Sequence[GoodSoundsItem], instrument: str | None = None, pitch: str | None = None
) -> list[GoodSoundsItem]:
    """Items of one attribute group, e.g. instrument "bass" and pitch "A3" (or just "A")."""
    out = [it for it in items if instrument is None or it.instrument == instrument]
    if pitch:
        if pitch[-1].isdigit():
            midi = note_to_midi(pitch)
            out = [it for it in out if it.midi == midi]
        else:
            name = _FLATS.get(pitch, pitch.upper())
            out = [it for it in out if it.midi is not None and NOTE_NAMES[it.midi % 12] == name]
    return out
