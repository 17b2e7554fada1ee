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
