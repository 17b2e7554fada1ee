"""A training corpus of real recordings assembled from installable Debian packages.

    python -m codec.data.corpus build --out /work/corpus --jobs 2
    python -m codec.data.corpus stats --out /work/corpus

`build` (codec.data.corpus.build) reads the sources of `sources.DEFAULT_SOURCES` (or those named
by `--only`, including `sources.EXTRA_SOURCES` such as opl3-render, built into their own folder),
cuts 24 kHz
mono clips of at most 10 s with silence dropped, de-duplicates them by content hash and writes
`manifest.jsonl` last (fields: codec.data.corpus.manifest). `load_corpus` reads a built corpus
for the training loader (`codec.data.build_dataset("corpus", path, ...)`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from codec.data.corpus.manifest import MANIFEST_NAME, ManifestRow, read_manifest
from codec.data.corpus.sources import (
    CATEGORIES,
    DEFAULT_SOURCES,
    EXTRA_SOURCES,
    RESERVED_PACKAGES,
    Rule,
    Source,
)

__all__ = [
    "CATEGORIES", "DEFAULT_SOURCES", "EXTRA_SOURCES", "MANIFEST_NAME", "RESERVED_PACKAGES",
    "CorpusItem", "ManifestRow", "Rule", "Source", "load_corpus", "read_manifest",
]  # fmt: skip


@dataclass(frozen=True)
class CorpusItem:
    """One clip of a built corpus: its absolute path and its manifest row."""

    path: Path
    row: ManifestRow

    @property
    def category(self) -> str:
        return self.row.category

    @property
    def group(self) -> str:
        """The source-file id: splits keep every clip of one source file on one side."""
        return self.row.group

    @property
    def source(self) -> str:
        return self.row.source

    @property
    def instrument(self) -> str:
        return self.row.instrument

    @property
    def midi(self) -> int | None:
        return self.row.midi


def load_corpus(root: str | Path) -> list[CorpusItem]:
    """Every clip of the corpus built in `root`, in manifest order.

    Raises:
        FileNotFoundError: no manifest in `root`.
    """
    root = Path(root)
    return [CorpusItem(root / r.path, r) for r in read_manifest(root)]
