"""Tiny synthetic datasets in the real on-disk layouts, for tests across the project.

Every clip is a short sine tone (plus its octave) so files are small and fast to decode. Usage::

    from tests.fixtures import make_goodsounds, make_fsd50k, make_audio_folder, write_tone
    gs = make_goodsounds(tmp_path / "good-sounds")   # gs.root, gs.sounds, gs.missing_files
    fsd = make_fsd50k(tmp_path / "fsd50k")           # fsd.root, fsd.rows, fsd.vocabulary
"""

from __future__ import annotations

import csv
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import soundfile as sf

# The real Good-sounds schema (the columns the loaders and the demo renderer use, and more).
GOODSOUNDS_SCHEMA = """
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

NOTE_NAMES = ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")


def tone(freq: float, seconds: float, sr: int, amp: float = 0.3, channels: int = 1) -> np.ndarray:
    """A sine at `freq` plus a quieter octave, 5 ms fades; `[T]` or `[T, C]` float32."""
    t = np.arange(int(round(seconds * sr))) / sr
    x = amp * (0.8 * np.sin(2 * np.pi * freq * t) + 0.2 * np.sin(4 * np.pi * freq * t))
    fade = min(len(x) // 2, int(0.005 * sr))
    if fade:
        ramp = np.linspace(0.0, 1.0, fade)
        x[:fade] *= ramp
        x[-fade:] *= ramp[::-1]
    x = x.astype(np.float32)
    return np.stack([x] * channels, axis=1) if channels > 1 else x


def write_tone(
    path: str | Path,
    freq: float = 440.0,
    seconds: float = 0.5,
    sr: int = 48000,
    channels: int = 1,
    subtype: str | None = None,
) -> Path:
    """Write `tone(...)` to `path`; the format follows the extension (wav, flac, ogg, mp3)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, tone(freq, seconds, sr, channels=channels), sr, subtype=subtype)
    return path


def midi_hz(midi: int) -> float:
    return 440.0 * 2.0 ** ((midi - 69) / 12)


@dataclass
class GoodSoundsFixture:
    """What `make_goodsounds` wrote.

    Attributes:
        root: the good-sounds/ folder.
        sounds: one dict per sounds row: id, instrument, note, octave, midi, klass, pack,
            mics (the microphones that have a take), files ({mic: relative filename}).
        missing_files: relative filenames listed in takes but deleted from disk.
    """

    root: Path
    sounds: list[dict] = field(default_factory=list)
    missing_files: list[str] = field(default_factory=list)

    def single_notes(self) -> list[dict]:
        return [s for s in self.sounds if not s["klass"].startswith("scale")]


def make_goodsounds(
    root: str | Path,
    instruments: Sequence[str] = ("flute", "cello", "bass"),
    midis: Sequence[int] = (57, 60, 64, 69),
    microphones: Sequence[str] = ("neumann", "akg", "iphone"),
    n_scales: int = 1,
    extra_klass: str | None = "bad-pitch",
    missing: int = 0,
    misleading_pack: bool = True,
    seconds: float = 0.3,
    sr: int = 48000,
) -> GoodSoundsFixture:
    """Write a miniature Good-sounds: database.sqlite + sound_files/<pack>/<mic>/NNNN.wav.

    Args:
        root: destination folder (created).
        instruments: one pack per instrument.
        midis: one single note ("good-sound") per MIDI number per instrument.
        microphones: a take per microphone for every sound, inserted in this order (so the
            default is not the loader's preference order).
        n_scales: extra sounds per instrument with klass "scale-good" (not single notes).
        extra_klass: one more single note per instrument with this klass (None: none).
        missing: delete the "akg" file of the first `missing` sounds (the takes stay listed).
        misleading_pack: name the last instrument's pack after the first instrument, so code
            that parses folder names gets the instrument wrong.
        seconds, sr: clip length and sample rate (the real set is 48 kHz).
    """
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    fx = GoodSoundsFixture(root=root)
    conn = sqlite3.connect(root / "database.sqlite")
    conn.executescript(GOODSOUNDS_SCHEMA)
    take_id = 0
    for p, instrument in enumerate(instruments, start=1):
        mislead = misleading_pack and p == len(instruments) and p > 1
        pack = f"{instruments[0] if mislead else instrument}_player{p}_reference"
        conn.execute("INSERT INTO packs VALUES (?, ?, ?)", (p, pack, f"{instrument} fixture"))
        specs = [(m, "good-sound") for m in midis]
        specs += [(midis[0], "scale-good")] * n_scales if midis else []
        specs += [(midis[-1], extra_klass)] if extra_klass and midis else []
        for n, (midi, klass) in enumerate(specs):
            sound_id = len(fx.sounds) + 1
            note, octave = NOTE_NAMES[midi % 12], midi // 12 - 1
            conn.execute(
                "INSERT INTO sounds (id, instrument, note, octave, dynamics, player, pack_id,"
                " klass, semitone, pitch_reference, reference) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                (sound_id, instrument, note, octave, "mf", f"player{p}", p, klass, midi, 442, 1),
            )
            files = {}
            for mic in microphones:
                take_id += 1
                rel = f"sound_files/{pack}/{mic}/{n:04d}.wav"
                write_tone(root / rel, midi_hz(midi), seconds, sr)
                conn.execute(
                    "INSERT INTO takes (id, microphone, filename, sound_id) VALUES (?,?,?,?)",
                    (take_id, mic, rel, sound_id),
                )
                files[mic] = rel
            fx.sounds.append(dict(
                id=sound_id, instrument=instrument, note=note, octave=octave, midi=midi,
                klass=klass, pack=pack, mics=list(microphones), files=files,
            ))  # fmt: skip
    conn.commit()
    conn.close()
    for s in fx.sounds[:missing]:
        if "akg" in s["files"]:
            (root / s["files"]["akg"]).unlink()
            fx.missing_files.append(s["files"]["akg"])
    return fx


# A few real FSD50K classes: (label, mid).
FSD50K_VOCABULARY: tuple[tuple[str, str], ...] = (
    ("Bark", "/m/05tny_"), ("Dog", "/m/0bt9lr"), ("Animal", "/m/0jbk"),
    ("Guitar", "/m/0342h"), ("Music", "/m/04rlf"), ("Speech", "/m/09x0r"),
)  # fmt: skip


@dataclass
class FSD50KFixture:
    """What `make_fsd50k` wrote: root, rows ({fname, labels, mids, split}), vocabulary."""

    root: Path
    rows: list[dict] = field(default_factory=list)
    vocabulary: list[tuple[int, str, str]] = field(default_factory=list)
    missing_files: list[str] = field(default_factory=list)

    def fnames(self, split: str) -> list[str]:
        return [r["fname"] for r in self.rows if r["split"] == split]


def make_fsd50k(
    root: str | Path,
    n_train: int = 6,
    n_val: int = 2,
    n_test: int = 3,
    missing: int = 0,
    seconds: Sequence[float] = (0.4, 1.2),
    sr: int = 44100,
) -> FSD50KFixture:
    """Write a miniature FSD50K (audio folders + ground-truth csvs, real column names).

    Clips have 1-3 labels (comma-separated in one quoted field), alternate between the lengths
    in `seconds`, and numeric fnames like the real set. `missing` deletes the first dev files.
    """
    root = Path(root)
    gt = root / "FSD50K.ground_truth"
    gt.mkdir(parents=True, exist_ok=True)
    fx = FSD50KFixture(root=root)
    fx.vocabulary = [(i, label, mid) for i, (label, mid) in enumerate(FSD50K_VOCABULARY)]
    with (gt / "vocabulary.csv").open("w", newline="") as f:
        csv.writer(f).writerows(fx.vocabulary)
    splits = ["train"] * n_train + ["val"] * n_val + ["test"] * n_test
    for i, split in enumerate(splits):
        k = 1 + i % 3
        classes = [FSD50K_VOCABULARY[(i + j) % len(FSD50K_VOCABULARY)] for j in range(k)]
        fname = str(100000 + 37 * i)
        folder = "FSD50K.eval_audio" if split == "test" else "FSD50K.dev_audio"
        write_tone(root / folder / f"{fname}.wav", 200.0 + 50 * i, seconds[i % len(seconds)], sr)
        fx.rows.append(dict(
            fname=fname, labels=[c[0] for c in classes], mids=[c[1] for c in classes],
            split=split,
        ))  # fmt: skip
    for name, rows in (("dev.csv", [r for r in fx.rows if r["split"] != "test"]),
                       ("eval.csv", [r for r in fx.rows if r["split"] == "test"])):  # fmt: skip
        with (gt / name).open("w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["fname", "labels", "mids"] + (["split"] if name == "dev.csv" else []))
            for r in rows:
                extra = [r["split"]] if name == "dev.csv" else []
                w.writerow([r["fname"], ",".join(r["labels"]), ",".join(r["mids"]), *extra])
    for r in [r for r in fx.rows if r["split"] != "test"][:missing]:
        (root / "FSD50K.dev_audio" / f"{r['fname']}.wav").unlink()
        fx.missing_files.append(r["fname"])
    return fx


def make_audio_folder(
    root: str | Path,
    files: Sequence[str] = ("a.wav", "sub/b.flac", "sub/deeper/c.ogg", "d.WAV"),
    seconds: float = 0.5,
    sr: int = 22050,
) -> list[Path]:
    """Write tones at the given relative paths (format from each extension); returns them."""
    root = Path(root)
    return [write_tone(root / rel, 300.0 + 20 * i, seconds, sr) for i, rel in enumerate(files)]


@dataclass
class CodeTokenizer:
    """A stand-in for a codec in `codec.tokenizer.runner.build_manifest` (the manifest fields
    only), for code shards written without encoding audio."""

    name: str = "almtokenizer"
    checkpoint_hash: str = "0123456789abcdef"
    num_codebooks: int = 3
    codebook_size: int = 16
    rate: float = 25.0
    bandwidth: float | None = None
    sample_rate: int = 24000
    weights_source: str = "synthetic"

    def frame_rate(self, window: int | None = None) -> float:
        return self.rate

    def bitrate(self, window: int | None = None) -> float:
        return self.rate * self.num_codebooks * float(np.log2(self.codebook_size))


def make_code_shards(
    out_dir: str | Path,
    clips: Sequence[np.ndarray],
    tokenizer: CodeTokenizer | None = None,
    window: int | None = 3,
    split: str = "all",
    names: Sequence[str] | None = None,
    shard_size: int = 4,
) -> Path:
    """A tokenized folder in the tokenizer's real format (manifest, shards, index), written by
    its own functions, holding `clips` (int codes `[n_q, T]` each) as if encoded.

    `names` default to `src{i // 2}/clip{i}.wav` (two clips per source folder).
    """
    import torch

    from codec.tokenizer.inputs import ClipInput
    from codec.tokenizer.runner import _row, build_manifest
    from codec.tokenizer.shards import check_or_write_manifest, merge_index, write_shard

    tok = tokenizer or CodeTokenizer()
    out = Path(out_dir)
    names = (
        list(names)
        if names is not None
        else [f"src{i // 2}/clip{i}.wav" for i in range(len(clips))]
    )
    inputs = [ClipInput(Path("/data/synthetic") / n, n) for n in names]
    source = {"dataset": "folder", "input": "/data/synthetic", "split": split}
    manifest = build_manifest(tok, window, inputs, shard_size, source)  # type: ignore[arg-type]
    check_or_write_manifest(out, manifest, write=True)
    fixed = {"window": window, "n_q": tok.num_codebooks, "codec": tok.name,
             "checkpoint_hash": tok.checkpoint_hash}  # fmt: skip
    for s in range(manifest["num_shards"]):
        idx = range(s * shard_size, min((s + 1) * shard_size, len(clips)))
        codes = {i: torch.as_tensor(np.asarray(clips[i])).to(torch.int16) for i in idx}
        rows = []
        for i in idx:
            frames = codes[i].shape[-1]
            n = int(frames * tok.sample_rate / tok.rate)
            rows.append(_row(inputs[i], i, s, fixed, n=n, sr=tok.sample_rate, frames=frames))
        write_shard(out, s, codes, rows, {"format": manifest["format"], "shard": f"{s:05d}"})
    merge_index(out, manifest["num_shards"])
    return out
