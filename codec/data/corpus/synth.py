"""Synthesised corpus audio: GM notes rendered from a SoundFont, and espeak-ng sentences.

Rendered notes: every melodic GM program (0-119: all but the sound-effects family 120-127),
every RENDER_STRIDE-th MIDI pitch of the soundfont's key range for that program (within piano
range, aligned on A), at the VELOCITIES p/mf/f; each note is held NOTE_ON_S and released for at
most RELEASE_S. The synth is loaded once per process.

espeak-ng: ESPEAK_VOICES x ESPEAK_VARIANTS, each speaking SENTENCES_PER_VOICE of SENTENCES in
rotation. The sentences are Harvard sentences that the bundled demo set does not use.
"""

from __future__ import annotations

import functools
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

RENDER_SR = 24000
MELODIC_PROGRAMS = tuple(range(120))
RENDER_STRIDE = 3
RENDER_MIN_MIDI, RENDER_MAX_MIDI = 21, 108
VELOCITIES = {"p": 48, "mf": 80, "f": 112}
NOTE_ON_S = 0.8
RELEASE_S = 0.7

ESPEAK_VOICES = ("en-us", "en-gb", "en-gb-scotland", "en-gb-x-rp", "en-029", "en-us-nyc",
                 "en-gb-x-gbclan", "en-gb-x-gbcwmd")  # fmt: skip
ESPEAK_VARIANTS = ("m1", "m3", "m5", "f1", "f3", "f4")
SENTENCES_PER_VOICE = 8
SENTENCES = (
    "The small pup gnawed a hole in the sock.",
    "The fish twisted and turned on the bent hook.",
    "Press the pants and sew a button on the vest.",
    "The swan dive was far short of perfect.",
    "The beauty of the view stunned the young boy.",
    "Two blue fish swam in the tank.",
    "Her purse was full of useless trash.",
    "The colt reared and threw the tall rider.",
    "It snowed, rained, and hailed the same morning.",
    "Read verse out loud for pleasure.",
    "Hoist the load to your left shoulder.",
    "Take the winding path to reach the lake.",
    "Note closely the size of the gas tank.",
    "Wipe the grease off his dirty face.",
    "Mend the coat before you go out.",
    "The wrist was badly strained and hung limp.",
    "The stray cat gave birth to kittens.",
    "The young girl gave no clear response.",
    "The meal was cooked before the bell rang.",
    "What joy there is in living.",
    "A king ruled the state in the early days.",
    "The ship was torn apart on the sharp reef.",
    "Sickness kept him home the third week.",
    "The wide road shimmered in the hot sun.",
)


# General MIDI level 1 program names (0-based), for soundfonts whose presets are only numbered
GM_PROGRAM_NAMES = (
    "Acoustic Grand Piano", "Bright Acoustic Piano", "Electric Grand Piano", "Honky-tonk Piano",
    "Electric Piano 1", "Electric Piano 2", "Harpsichord", "Clavinet", "Celesta", "Glockenspiel",
    "Music Box", "Vibraphone", "Marimba", "Xylophone", "Tubular Bells", "Dulcimer",
    "Drawbar Organ", "Percussive Organ", "Rock Organ", "Church Organ", "Reed Organ", "Accordion",
    "Harmonica", "Tango Accordion", "Acoustic Guitar (nylon)", "Acoustic Guitar (steel)",
    "Electric Guitar (jazz)", "Electric Guitar (clean)", "Electric Guitar (muted)",
    "Overdriven Guitar", "Distortion Guitar", "Guitar Harmonics", "Acoustic Bass",
    "Electric Bass (finger)", "Electric Bass (pick)", "Fretless Bass", "Slap Bass 1",
    "Slap Bass 2", "Synth Bass 1", "Synth Bass 2", "Violin", "Viola", "Cello", "Contrabass",
    "Tremolo Strings", "Pizzicato Strings", "Orchestral Harp", "Timpani", "String Ensemble 1",
    "String Ensemble 2", "Synth Strings 1", "Synth Strings 2", "Choir Aahs", "Voice Oohs",
    "Synth Voice", "Orchestra Hit", "Trumpet", "Trombone", "Tuba", "Muted Trumpet",
    "French Horn", "Brass Section", "Synth Brass 1", "Synth Brass 2", "Soprano Sax", "Alto Sax",
    "Tenor Sax", "Baritone Sax", "Oboe", "English Horn", "Bassoon", "Clarinet", "Piccolo",
    "Flute", "Recorder", "Pan Flute", "Blown Bottle", "Shakuhachi", "Whistle", "Ocarina",
    "Lead 1 (square)", "Lead 2 (sawtooth)", "Lead 3 (calliope)", "Lead 4 (chiff)",
    "Lead 5 (charang)", "Lead 6 (voice)", "Lead 7 (fifths)", "Lead 8 (bass + lead)",
    "Pad 1 (new age)", "Pad 2 (warm)", "Pad 3 (polysynth)", "Pad 4 (choir)", "Pad 5 (bowed)",
    "Pad 6 (metallic)", "Pad 7 (halo)", "Pad 8 (sweep)", "FX 1 (rain)", "FX 2 (soundtrack)",
    "FX 3 (crystal)", "FX 4 (atmosphere)", "FX 5 (brightness)", "FX 6 (goblins)",
    "FX 7 (echoes)", "FX 8 (sci-fi)", "Sitar", "Banjo", "Shamisen", "Koto", "Kalimba",
    "Bagpipe", "Fiddle", "Shanai", "Tinkle Bell", "Agogo", "Steel Drums", "Woodblock",
    "Taiko Drum", "Melodic Tom", "Synth Drum", "Reverse Cymbal", "Guitar Fret Noise",
    "Breath Noise", "Seashore", "Bird Tweet", "Telephone Ring", "Helicopter", "Applause",
    "Gunshot",
)  # fmt: skip


def preset_label(name: str, program: int) -> str:
    """A preset's name, or the GM program's name when the soundfont only numbers its presets
    (OPL-3_FM_128M.sf2 names them "000" to "127")."""
    stripped = name.strip()
    return GM_PROGRAM_NAMES[program] if not stripped or stripped.isdigit() else stripped


def render_grid(lo: int, hi: int) -> list[int]:
    """Pitches rendered for a program whose soundfont key range is [lo, hi]."""
    lo, hi = max(lo, RENDER_MIN_MIDI), min(hi, RENDER_MAX_MIDI)
    return [m for m in range(lo, hi + 1) if (m - 57) % RENDER_STRIDE == 0]


@functools.lru_cache(maxsize=2)
def _synth(sf2: str) -> tuple[Any, int]:
    import tinysoundfont

    synth = tinysoundfont.Synth(samplerate=RENDER_SR)
    return synth, synth.sfload(sf2)


def render_note(sf2: str, program: int, midi: int, velocity: int) -> np.ndarray:
    """One note of GM `program` as mono float32 `[N]` at 24 kHz (not normalised).

    Raises:
        ImportError: tinysoundfont is missing (pip install tinysoundfont==0.3.7).
    """
    synth, sfid = _synth(sf2)
    synth.program_select(0, sfid, 0, program)
    synth.noteon(0, midi, velocity)
    held = np.frombuffer(synth.generate(int(NOTE_ON_S * RENDER_SR)), dtype=np.float32)
    synth.noteoff(0, midi)
    tail = np.frombuffer(synth.generate(int(RELEASE_S * RENDER_SR)), dtype=np.float32)
    synth.sounds_off()
    synth.generate(RENDER_SR // 10)  # flush any remaining voice
    return np.concatenate([held, tail]).reshape(-1, 2).mean(axis=1)


def espeak_jobs() -> list[tuple[str, str]]:
    """(voice, sentence) pairs, in a fixed order."""
    jobs = []
    k = 0
    for voice in ESPEAK_VOICES:
        for variant in ESPEAK_VARIANTS:
            for _ in range(SENTENCES_PER_VOICE):
                jobs.append((f"{voice}+{variant}", SENTENCES[k % len(SENTENCES)]))
                k += 1
    return jobs


def speak(voice: str, text: str) -> bytes:
    """espeak-ng's WAV bytes for `text`.

    Raises:
        RuntimeError: espeak-ng is missing or fails.
    """
    exe = shutil.which("espeak-ng")
    if exe is None:
        raise RuntimeError("espeak-ng not found: apt-get install espeak-ng")
    # Not --stdout: its WAV header claims 2 GB of data (a streaming header).
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "speech.wav"
        res = subprocess.run([exe, "-v", voice, "-w", str(out), text], capture_output=True)
        if res.returncode != 0 or not out.is_file():
            raise RuntimeError(
                f"espeak-ng -v {voice} failed: {res.stderr.decode(errors='replace')}"
            )
        return out.read_bytes()
