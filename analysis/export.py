"""Writing rendered audio into an export folder, plus one zip of everything written.

Every name that reaches the file system is sanitised (letters, digits, '.', '_', '-'), and
every destination is checked to lie inside the export root, so user-provided labels such as
"../../etc/passwd" or "bass A3/clarinet" cannot escape it.
"""

from __future__ import annotations

import logging
import os
import re
import tempfile
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import torch

from codec.audio import save_audio
from codec.models.base import SAMPLE_RATE

log = logging.getLogger(__name__)

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def safe_name(text: str, fallback: str = "export", max_len: int = 64) -> str:
    """A file-name-safe version of `text` ("bass A3 -> clarinet#A6" -> "bass_A3_-_clarinet_A6")."""
    s = _UNSAFE.sub("_", str(text)).strip("._-")[:max_len].strip("._-")
    return s or fallback


def inside(root: Path, path: Path) -> Path:
    """`path` resolved, after checking it lies inside `root` (ValueError otherwise)."""
    root_r, path_r = root.resolve(), path.resolve()
    if path_r != root_r and root_r not in path_r.parents:
        raise ValueError(f"refusing to write {path} outside the export folder {root}")
    return path_r


@dataclass
class ExportResult:
    """What an export wrote.

    Attributes:
        folder: the export folder (inside the export root).
        files: every wav written, in order.
        zip_path: one zip holding all of them (paths relative to `folder`).
    """

    folder: Path
    files: list[Path]
    zip_path: Path


def export_audio(
    tracks: Mapping[str, Mapping[str, torch.Tensor]],
    export_root: str | Path,
    name: str,
    sample_rate: int = SAMPLE_RATE,
) -> ExportResult:
    """Write `{subfolder: {file stem: wav [1, N]}}` as `root/<name>/<subfolder>/<stem>.wav` and
    zip them into `root/<name>/<name>.zip`. All names are sanitised."""
    root = Path(export_root)
    root.mkdir(parents=True, exist_ok=True)
    folder_name = safe_name(name)
    folder = inside(root, root / folder_name)
    folder.mkdir(parents=True, exist_ok=True)
    files: list[Path] = []
    for sub, stems in tracks.items():
        sub_dir = inside(root, folder / safe_name(sub, "codec"))
        for stem, wav in stems.items():
            dest = inside(root, sub_dir / f"{safe_name(stem, 'audio')}.wav")
            save_audio(dest, wav.detach().cpu().float(), sample_rate)
            files.append(dest)
    zip_path = inside(root, folder / f"{folder_name}.zip")
    fd, tmp = tempfile.mkstemp(prefix=".export.", suffix=".zip", dir=folder)
    os.close(fd)
    try:
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as zf:
            for f in files:
                zf.write(f, arcname=str(f.relative_to(folder)))
        os.replace(tmp, zip_path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    log.info("exported %d files to %s", len(files), folder)
    return ExportResult(folder, files, zip_path)
