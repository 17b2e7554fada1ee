"""Any folder of audio files (wav, flac, ogg, mp3), searched recursively."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from codec.audio import AUDIO_EXTENSIONS


@dataclass(frozen=True)
class FolderItem:
    """One file; `label` is its sub-folder relative to the root ("" for files at the top)."""

    path: Path
    label: str


def list_audio_files(root: str | Path, extensions: Iterable[str] = AUDIO_EXTENSIONS) -> list[Path]:
    """Audio files under `root` (recursive, extension case-insensitive, hidden files skipped),
    sorted by relative path.

    Raises:
        FileNotFoundError: `root` is not a folder.
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: audio folder not found")
    exts = {e.lower() if e.startswith(".") else f".{e.lower()}" for e in extensions}
    files = [
        p
        for p in root.rglob("*")
        if p.suffix.lower() in exts
        and p.is_file()
        and not any(part.startswith(".") for part in p.relative_to(root).parts)
    ]
    return sorted(files, key=lambda p: p.relative_to(root).as_posix())


def load_folder(root: str | Path) -> list[FolderItem]:
    """Items for every audio file under `root`, labelled by their sub-folder."""
    root = Path(root)
    items = []
    for path in list_audio_files(root):
        label = path.parent.relative_to(root).as_posix()
        items.append(FolderItem(path=path, label="" if label == "." else label))
    return items
