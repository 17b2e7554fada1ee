"""Small assets for app tests: random-init checkpoints and a miniature Good-sounds with speech.

assets = make_app_assets(tmp_path)   # assets.alm, assets.encodec, assets.dataset, assets.clip
config = assets.config(port=free_port())

Tests get them through the `assets` fixture of tests/conftest.py (one set per test module).
"""

from __future__ import annotations

import shutil
import socket
import sqlite3
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from app.state import AppConfig
from tests.fixtures import make_goodsounds

SR = 24000
INSTRUMENTS = ("bass", "clarinet", "cello", "flute")
MIDIS = (57, 69, 81, 93)  # A3, A4, A5, A6: "bass A3" -> "clarinet A6" exists


@dataclass
class AppAssets:
    root: Path
    alm: Path
    encodec: Path
    dataset: Path
    clip: Path  # a 1.2 s two-tone wav at 44.1 kHz stereo (resampled and mixed by the app)
    long_clip: Path  # 3 s, over a 2 s cap
    text_file: Path  # not audio
    fake_wav: Path  # not audio either, but named .wav (passes the browser's file-type check)
    silent: Path  # a valid wav with 0 samples

    def config(self, port: int = 7860, **kw: object) -> AppConfig:
        base = dict(
            alm_checkpoint=self.alm,
            encodec_checkpoint=self.encodec,
            dataset_root=self.dataset,
            port=port,
            max_seconds=2.5,
            cache_dir=self.root / "cache",
            export_dir=self.root / "exports",
            explicit=frozenset({"alm_checkpoint", "encodec_checkpoint"}),
        )
        base.update(kw)
        return AppConfig(**base)  # type: ignore[arg-type]


def small_alm_config() -> dict:
    """The demo preset, narrowed so a CPU test encodes in milliseconds."""
    from codec.models.almtokenizer import preset

    cfg = preset("demo").to_dict()
    cfg["base_args"].update(
        dim=64, n_heads=2, n_layers=1, decoder_n_layers=1, ffn_dim=128, codebook_size=64,
        codebook_dim=16, ar_layers=0, encodec_n_filters=4, encodec_lstm=0, patch_dim=32,
        frontend_checkpoint=None,
    )  # fmt: skip
    if "mae_args" in cfg:
        cfg["mae_args"].update(n_layers=0)
    return cfg


def save_small_checkpoints(root: Path) -> tuple[Path, Path]:
    from codec.models.almtokenizer import ALMTokenizer
    from codec.models.encodec import EnCodecCodec

    torch.manual_seed(0)
    alm = ALMTokenizer.from_config(small_alm_config())
    enc = EnCodecCodec.from_config({"n_filters": 4, "lstm": 0, "dimension": 32})
    return alm.save_pretrained(root / "alm"), enc.save_pretrained(root / "encodec")


def _add_speech(root: Path, n: int = 2) -> None:
    """Speech rows like the demo set's: instrument speech_female/male, klass "speech"."""
    conn = sqlite3.connect(root / "database.sqlite")
    sid = conn.execute("SELECT MAX(id) FROM sounds").fetchone()[0]
    tid = conn.execute("SELECT MAX(id) FROM takes").fetchone()[0]
    pid = conn.execute("SELECT MAX(id) FROM packs").fetchone()[0] + 1
    conn.execute("INSERT INTO packs VALUES (?, ?, ?)", (pid, "speech_demo", "speech"))
    rng = np.random.default_rng(0)
    for i in range(n):
        rel = f"sound_files/speech_demo/akg/{i:04d}.wav"
        t = np.arange(int(0.9 * SR)) / SR
        f0 = 140 + 80 * (i % 2)
        x = 0.2 * np.sin(2 * np.pi * f0 * t * (1 + 0.1 * np.sin(3 * t))) * (1 + np.sin(9 * t)) / 2
        x += 0.01 * rng.standard_normal(len(t))
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        sf.write(root / rel, x.astype(np.float32), SR)
        voice = "speech_female" if i % 2 else "speech_male"
        conn.execute(
            "INSERT INTO sounds (id, instrument, klass, pack_id, dynamics) VALUES (?,?,?,?,?)",
            (sid + 1 + i, voice, "speech", pid, ""),
        )
        conn.execute(
            "INSERT INTO takes (id, microphone, filename, sound_id) VALUES (?,?,?,?)",
            (tid + 1 + i, "akg", rel, sid + 1 + i),
        )
    conn.commit()
    conn.close()


def make_app_assets(root: Path) -> AppAssets:
    root.mkdir(parents=True, exist_ok=True)
    alm, enc = save_small_checkpoints(root / "checkpoints")
    ds = root / "good-sounds"
    shutil.rmtree(ds, ignore_errors=True)
    make_goodsounds(ds, INSTRUMENTS, MIDIS, microphones=("akg",), n_scales=1, extra_klass=None,
                    seconds=0.6, sr=SR)  # fmt: skip
    _add_speech(ds)
    t = np.arange(int(1.2 * 44100)) / 44100
    stereo = np.stack([0.3 * np.sin(2 * np.pi * 220 * t), 0.2 * np.sin(2 * np.pi * 330 * t)], 1)
    clip = root / "clip.wav"
    sf.write(clip, stereo.astype(np.float32), 44100)
    long_clip = root / "long.wav"
    sf.write(long_clip, np.zeros(3 * SR, np.float32), SR)
    text = root / "notes.txt"
    text.write_text("this is not audio\n" * 50)
    fake = root / "fake.wav"
    fake.write_bytes(b"RIFF....WAVEjunk" + bytes(range(256)) * 8)
    silent = root / "silent.wav"
    sf.write(silent, np.zeros(0, np.float32), SR)
    return AppAssets(root, alm, enc, ds, clip, long_clip, text, fake, silent)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def readme_python_block(marker: str) -> str:
    """The first python block after `marker` (an HTML comment) in the README: the examples
    that the tests run as written."""
    text = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    assert marker in text, f"README lost its example marked {marker!r}"
    return text[text.index(marker) :].split("```python\n", 1)[1].split("```", 1)[0]
