"""A size cap on the folders the app writes: its output folder (reconstructions, exports) and
Gradio's cache (uploads and the copies of every output it serves).

Gradio's `delete_cache` removes files by age only, so under a crowd the cache grows with the
request rate (measured: 103 MB in 1,075 files after ~330 requests). `DiskCap.enforce` removes
the oldest files first until the folders together are under the cap; `start` runs it in a
daemon thread every few seconds. A cached result whose file was removed is computed again
(`app.state.LRU.get_or_compute(valid=...)`); one handed out again is `refreshed` first, so the
cap counts it as new (measured without: in a 60-minute soak a repeated request got the path of
an old file that the cap removed before the page fetched it).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DiskUsage:
    files: int
    bytes: int

    @property
    def mb(self) -> float:
        return self.bytes / 1e6


def _files(folders: Sequence[Path]) -> list[tuple[float, int, Path]]:
    """(mtime, size, path) of every regular file under `folders` (files removed meanwhile are
    skipped)."""
    out = []
    for root in folders:
        for dirpath, _, names in os.walk(root):
            for name in names:
                path = Path(dirpath) / name
                try:
                    st = path.stat()
                except OSError:
                    continue
                out.append((st.st_mtime, st.st_size, path))
    return out


def refreshed(path: str | Path) -> bool:
    """Whether `path` is still on disk; if it is, its mtime becomes now, so that `DiskCap`
    (oldest first, never younger than `keep_seconds`) treats a file handed out again as new."""
    try:
        os.utime(path)
    except OSError:
        return False
    return True


def disk_usage(folders: Sequence[Path]) -> DiskUsage:
    files = _files(folders)
    return DiskUsage(len(files), sum(size for _, size, _ in files))


class DiskCap:
    """Keep the files under `folders` below `max_bytes` together, oldest removed first.

    Attributes:
        removed: files removed so far.
    """

    def __init__(self, folders: Sequence[Path | str], max_bytes: int, keep_seconds: float = 5.0):
        """`keep_seconds`: files younger than this are never removed (a response may be
        reading them right now)."""
        self.folders = [Path(f) for f in folders]
        self.max_bytes = int(max_bytes)
        self.keep_seconds = keep_seconds
        self.removed = 0
        self._stop = threading.Event()

    def enforce(self, now: float | None = None) -> DiskUsage:
        """Remove the oldest files until the total is at most `max_bytes`; the usage after."""
        now = time.time() if now is None else now
        files = sorted(_files(self.folders))
        total = sum(size for _, size, _ in files)
        n = len(files)
        for mtime, size, path in files:
            if total <= self.max_bytes or now - mtime < self.keep_seconds:
                break
            try:
                path.unlink()
            except OSError:
                continue
            total -= size
            n -= 1
            self.removed += 1
        for root in self.folders:  # empty sub-folders left behind (Gradio's per-file folders)
            _remove_empty_dirs(root, now - self.keep_seconds)
        return DiskUsage(n, total)

    def start(self, every_seconds: float = 10.0) -> threading.Thread:
        """Enforce the cap now and every `every_seconds` in a daemon thread until `stop`."""

        def run() -> None:
            while True:
                try:
                    usage = self.enforce()
                    log.debug("disk cap: %d files, %.1f MB", usage.files, usage.mb)
                except Exception:  # never take the app down over a cleanup
                    log.exception("disk cap check failed")
                if self._stop.wait(every_seconds):
                    return

        thread = threading.Thread(target=run, name="disk-cap", daemon=True)
        thread.start()
        return thread

    def stop(self) -> None:
        self._stop.set()


def _remove_empty_dirs(root: Path, older_than: float) -> None:
    """Remove empty sub-folders of `root` not modified since `older_than` (a folder just made
    for a file about to be written stays)."""
    for dirpath, dirnames, filenames in os.walk(root, topdown=False):
        path = Path(dirpath)
        if path == root or dirnames or filenames:
            continue
        try:
            if path.stat().st_mtime < older_than:
                path.rmdir()
        except OSError:
            pass
