"""Render the bundled demo set: a miniature Good-sounds in exactly the real layout.

    python data/render_demo.py --out data/demo

Single notes of the 12 Good-sounds instruments over each instrument's range (every 2nd or 3rd
semitone, always including every A, two dynamics per pitch), rendered with tinysoundfont from
Debian's FluidR3_GM.sf2 (package fluid-soundfont-gm, MIT licence) using each instrument's General
MIDI program, plus speech clips synthesised with espeak-ng. Everything is 24 kHz mono 16-bit WAV,
microphone "akg". Deterministic: the same inputs give the same files.

Needs: numpy, soundfile, torch + torchaudio (resampling espeak's 22,050 Hz), tinysoundfont, the
soundfont, and espeak-ng (or --no-speech). It does not import the project, so it runs anywhere.
"""

from __future__ import annotations

import argparse
import logging
import shutil
import sqlite3
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf

logger = logging.getLogger("render_demo")

SR = 24000
NOTE_ON_S = 1.2  # key held
RELEASE_S = 0.2  # at most this much release tail, cut once it falls below -60 dB
PEAK = 0.7  # peak of the loudest take of each pitch (the softer dynamics keep their ratio)
MIC = "akg"
SOUNDFONT_PATHS = ("/usr/share/sounds/sf2/FluidR3_GM.sf2", "/usr/share/soundfonts/FluidR3_GM.sf2")
NOTE_NAMES = ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")
VELOCITY = {"p": 48, "mf": 80, "f": 112}
DYNAMICS_CYCLE = (("p", "f"), ("mf", "f"), ("p", "mf"))  # two dynamics per pitch, all three used

# instrument: (GM program (0-based), lowest MIDI note, highest MIDI note), sounding pitch.
INSTRUMENTS: dict[str, tuple[int, int, int]] = {
    "flute": (73, 60, 96),  # C4-C7
    "cello": (42, 36, 76),  # C2-E5
    "clarinet": (71, 50, 94),  # D3-A#6 (B-flat clarinet, sounding)
    "trumpet": (56, 54, 82),  # F#3-A#5
    "violin": (40, 55, 93),  # G3-A6
    "sax_alto": (65, 49, 80),  # C#3-G#5
    "sax_tenor": (66, 44, 75),  # G#2-D#5
    "sax_baritone": (67, 36, 68),  # C2-G#4
    "sax_soprano": (64, 56, 87),  # G#3-D#6
    "oboe": (68, 58, 91),  # A#3-G6
    "piccolo": (72, 74, 105),  # D5-A7
    "bass": (43, 28, 57),  # E1-A3: GM contrabass (FluidR3 maps no sample above A3)
}
REQUIRED = {("bass", 57), ("clarinet", 93)}  # bass A3 and clarinet A6: the app's traversal example

SPEECH: tuple[tuple[str, str, str], ...] = (
    ("speech_female", "en+f3", "The birch canoe slid on the smooth planks."),
    ("speech_female", "en+f4", "Glue the sheet to the dark blue background."),
    ("speech_female", "en+f2", "It's easy to tell the depth of a well."),
    ("speech_female", "en+f5", "These days a chicken leg is a rare dish."),
    ("speech_female", "en+f1", "Rice is often served in round bowls."),
    ("speech_male", "en+m3", "The juice of lemons makes fine punch."),
    ("speech_male", "en+m7", "The box was thrown beside the parked truck."),
    ("speech_male", "en+m1", "The hogs were fed chopped corn and garbage."),
    ("speech_male", "en+m4", "Four hours of steady work faced us."),
    ("speech_male", "en+m2", "A large size in stockings is hard to sell."),
)
SPEECH_MAX_S = 4.0

SCHEMA = """
CREATE TABLE packs (id INTEGER PRIMARY KEY, name TEXT, description TEXT);
CREATE TABLE sounds (
    id INTEGER PRIMARY KEY, instrument TEXT, note TEXT, octave INTEGER, dynamics TEXT,
    recorded_at TEXT, location TEXT, player TEXT, bow_velocity TEXT, bridge_position TEXT,
    string TEXT, csv_file TEXT, csv_id INTEGER, pack_filename TEXT, pack_id INTEGER,
    attack INTEGER, decay INTEGER, sustain INTEGER, release INTEGER, offset INTEGER,
    reference INTEGER, klass TEXT, comments TEXT, semitone INTEGER, pitch_reference INTEGER
);
CREATE TABLE takes (
    id INTEGER PRIMARY KEY, microphone TEXT, filename TEXT, original_filename TEXT,
    freesound_id INTEGER, sound_id INTEGER, goodsound_id INTEGER
);
CREATE TABLE ratings (id INTEGER PRIMARY KEY, type TEXT, mark INTEGER, sound_id INTEGER,
    take_id INTEGER, created_at TEXT);
"""


@dataclass
class Sound:
    """One rendered clip and the sounds-table fields that describe it."""

    instrument: str
    wav: np.ndarray  # [T] float32
    klass: str
    pack: str
    note: str | None = None
    octave: int | None = None
    midi: int | None = None
    dynamics: str | None = None
    player: str = "fluidr3_gm"
    offset: int = 0  # leading silence in samples
    note_off: int = 0  # sample where the key was released
    comments: str = ""


def note_grid(lo: int, hi: int, required: list[int]) -> list[int]:
    """Every 2nd (narrow ranges) or 3rd semitone in [lo, hi], aligned so every A is included."""
    step = 2 if hi - lo <= 32 else 3
    return sorted({m for m in range(lo, hi + 1) if (m - 57) % step == 0} | set(required))


def find_soundfont() -> Path:
    for p in SOUNDFONT_PATHS:
        if Path(p).is_file():
            return Path(p)
    try:
        out = subprocess.run(["dpkg", "-L", "fluid-soundfont-gm"], capture_output=True, text=True)
        for line in out.stdout.splitlines():
            if line.endswith("FluidR3_GM.sf2") and Path(line).is_file():
                return Path(line)
    except FileNotFoundError:
        pass
    raise SystemExit("FluidR3_GM.sf2 not found: apt-get install fluid-soundfont-gm, or --soundfont")


def render_instrument(synth: Any, sfid: int, name: str, rng: np.random.Generator) -> list[Sound]:
    """All notes of one instrument; the dynamics of each pitch are normalised together."""
    program, lo, hi = INSTRUMENTS[name]
    synth.program_select(0, sfid, 0, program)
    sounds: list[Sound] = []
    required = [m for inst, m in REQUIRED if inst == name]
    for i, midi in enumerate(note_grid(lo, hi, required)):
        for dyn in DYNAMICS_CYCLE[i % len(DYNAMICS_CYCLE)]:
            synth.noteon(0, midi, VELOCITY[dyn])
            held = np.frombuffer(synth.generate(int(NOTE_ON_S * SR)), dtype=np.float32)
            synth.noteoff(0, midi)
            tail = np.frombuffer(synth.generate(int(RELEASE_S * SR)), dtype=np.float32)
            synth.sounds_off()
            synth.generate(SR // 10)  # flush any remaining voice
            x = np.concatenate([held, tail]).reshape(-1, 2).mean(axis=1)
            note_off = len(held) // 2
            loud = np.flatnonzero(np.abs(x) > 1e-3 * max(np.abs(x).max(), 1e-9))
            end = max(note_off, (loud[-1] + 1) if loud.size else note_off)
            end = min(len(x), end + SR // 100)
            x = x[:end].copy()
            fade = min(SR // 100, len(x))
            x[-fade:] *= np.linspace(1.0, 0.0, fade, dtype=np.float32)
            offset = int(rng.integers(SR // 200, SR // 25))  # 5-40 ms of silence first
            x = np.concatenate([np.zeros(offset, np.float32), x])
            note, octave = NOTE_NAMES[midi % 12], midi // 12 - 1
            sounds.append(
                Sound(name, x, "good-sound", f"{name}_demo", note, octave, midi, dyn,
                      offset=offset, note_off=offset + note_off)
            )  # fmt: skip
    for midi in {s.midi for s in sounds}:
        same_pitch = [s for s in sounds if s.midi == midi]
        peak = max(float(np.abs(s.wav).max()) for s in same_pitch)
        if peak <= 0:
            raise SystemExit(f"{name}: the soundfont rendered silence (program {program})")
        for s in same_pitch:
            s.wav = (s.wav * (PEAK / peak)).astype(np.float32)
    return sounds


def render_speech(rng: np.random.Generator) -> list[Sound]:
    """espeak-ng clips (22,050 Hz) resampled to 24 kHz, at most SPEECH_MAX_S seconds."""
    import torch
    import torchaudio.functional as AF

    if shutil.which("espeak-ng") is None:
        raise SystemExit("espeak-ng not found: apt-get install espeak-ng, or --no-speech")
    sounds = []
    with tempfile.TemporaryDirectory() as tmp:
        for instrument, voice, text in SPEECH:
            out = Path(tmp) / "speech.wav"
            subprocess.run(["espeak-ng", "-v", voice, "-w", str(out), text], check=True)
            x, sr = sf.read(out, dtype="float32", always_2d=True)
            y = AF.resample(torch.from_numpy(x.mean(axis=1)), sr, SR).numpy()
            y = y[: int(SPEECH_MAX_S * SR)]
            y = (y * (0.5 / max(float(np.abs(y).max()), 1e-9))).astype(np.float32)
            offset = int(rng.integers(SR // 200, SR // 25))
            y = np.concatenate([np.zeros(offset, np.float32), y])
            sounds.append(
                Sound(instrument, y, "speech", "speech_demo", player=voice, offset=offset,
                      note_off=len(y), comments=text)
            )  # fmt: skip
    return sounds


def envelope_points(s: Sound) -> tuple[int, int, int, int]:
    """(attack, decay, sustain, release) sample indices: half-peak, peak, key release, end."""
    a = np.abs(s.wav)
    peak = float(a.max())
    attack = int(np.argmax(a >= 0.5 * peak))
    decay = int(np.argmax(a))
    return attack, decay, min(s.note_off, len(a)), len(a)


def write_dataset(out: Path, sounds: list[Sound]) -> None:
    """database.sqlite and sound_files/<pack>/<mic>/NNNN.wav, replacing earlier renders."""
    out.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(out / "sound_files", ignore_errors=True)
    db_tmp = out / "database.sqlite.tmp"
    db_tmp.unlink(missing_ok=True)
    conn = sqlite3.connect(db_tmp)
    conn.executescript(SCHEMA)
    packs: dict[str, int] = {}
    counters: dict[str, int] = {}
    for sound_id, s in enumerate(sounds, start=1):
        if s.pack not in packs:
            packs[s.pack] = len(packs) + 1
            desc = "espeak-ng speech" if s.klass == "speech" else f"{s.instrument}, FluidR3_GM"
            conn.execute("INSERT INTO packs VALUES (?, ?, ?)", (packs[s.pack], s.pack, desc))
        n = counters.get(s.pack, 0)
        counters[s.pack] = n + 1
        rel = f"sound_files/{s.pack}/{MIC}/{n:04d}.wav"
        (out / rel).parent.mkdir(parents=True, exist_ok=True)
        sf.write(out / rel, s.wav, SR, subtype="PCM_16", format="WAV")
        attack, decay, sustain, release = envelope_points(s)
        conn.execute(
            "INSERT INTO sounds (id, instrument, note, octave, dynamics, player, pack_filename,"
            " pack_id, attack, decay, sustain, release, offset, reference, klass, comments,"
            " semitone, pitch_reference) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
            (sound_id, s.instrument, s.note, s.octave, s.dynamics, s.player, f"{n:04d}.wav",
             packs[s.pack], attack, decay, sustain, release, s.offset, 1, s.klass,
             s.comments, s.midi, 440),
        )  # fmt: skip
        conn.execute(
            "INSERT INTO takes (id, microphone, filename, original_filename, sound_id)"
            " VALUES (?, ?, ?, ?, ?)",
            (sound_id, MIC, rel, f"{n:04d}.wav", sound_id),
        )
    conn.commit()
    conn.close()
    db_tmp.replace(out / "database.sqlite")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "demo")
    parser.add_argument("--soundfont", type=Path, default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-speech", action="store_true", help="skip the espeak-ng clips")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    import tinysoundfont

    sf2 = args.soundfont or find_soundfont()
    if not sf2.is_file():
        raise SystemExit(f"{sf2}: soundfont not found")
    rng = np.random.default_rng(args.seed)
    synth = tinysoundfont.Synth(samplerate=SR)
    sfid = synth.sfload(str(sf2))
    sounds: list[Sound] = []
    for name in INSTRUMENTS:
        notes = render_instrument(synth, sfid, name, rng)
        logger.info("%-13s %3d notes", name, len(notes))
        sounds += notes
    if not args.no_speech:
        sounds += render_speech(rng)
    write_dataset(args.out, sounds)
    size = sum(p.stat().st_size for p in args.out.rglob("*") if p.is_file())
    seconds = sum(len(s.wav) for s in sounds) / SR
    logger.info("%d clips, %.0f s, %.1f MB in %s", len(sounds), seconds, size / 1e6, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
