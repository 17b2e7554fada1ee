"""What the app holds while it runs: the line-up of codecs, the dataset, caches, the warm-up.

`Studio` is created once at start-up (`Studio.load(config)`) and shared by every tab. It loads
a list of codecs (`analysis.models.LoadedCodec`: label, model, the setting it offers), by
default ALMTokenizer, our EnCodec and, when its weights file is present, the official EnCodec;
a missing bundled checkpoint falls back to an untrained random-init model with a log line and a
page banner. The reference codecs (Opus, Codec2) are held apart in `references`: they
reconstruct but have no latents, so only the Reconstruct tab shows them. It lists the dataset
(Good-sounds layout) and keeps the caches that make repeated clicks cheap:

- per-clip results keyed by the clip's content hash, the codec's key and its setting (window or
  bandwidth), so moving one codec's control never recomputes another codec's column;
- latent maps, probe scores and group centroids (through `analysis`' own caches).

The warm-up (`start_warmup`, a background thread started once the page is served) extracts
the dataset latents, fits the default UMAP map, probes and computes the default traversal's
centroids; `warmup_status` reports its progress on the page. Whatever a user asks before it is
done is computed on demand (with a progress bar), and the warm-up steps aside while a request
runs.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import re
import shutil
import tempfile
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import torch

from analysis.codec_ops import effective_window
from analysis.dataset import load_items
from analysis.groups import describe_groups, group_centroid, parse_group
from analysis.latents import LatentSet, extract_latents
from analysis.models import LoadedCodec
from app.config import (  # noqa: F401 - re-exported for the tabs
    DEFAULT_TRAVERSAL,
    SPEECH_KLASS,
    WINDOW_MAX,
    WINDOW_MIN,
    AppConfig,
)
from app.gate import RequestGate
from app.janitor import DiskCap
from app.lineup import (  # noqa: F401 - re-exported
    load_lineup,
    load_references,
    shown_path,
    weights_source,
)
from app.lms import LineupLMs, load_lms
from codec.data.goodsounds import GOODSOUNDS_INSTRUMENTS, GoodSoundsItem
from codec.models.registry import RANDOM_INIT

if TYPE_CHECKING:  # maps and probes import scikit-learn: loaded on first use, not at start-up
    from analysis.maps import LatentMap
    from analysis.probe import ProbeScores

log = logging.getLogger(__name__)

T = TypeVar("T")
WARMUP_SLICE = 24  # clips per warm-up latent step (the warm-up yields to requests in between)


class LRU:
    """A small thread-safe LRU of computed results."""

    def __init__(self, maxsize: int = 64) -> None:
        self.maxsize = maxsize
        self._data: OrderedDict[Hashable, Any] = OrderedDict()
        self._pending: dict[Hashable, threading.Event] = {}
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def get_or_compute(
        self,
        key: Hashable,
        compute: Callable[[], T],
        valid: Callable[[T], bool] | None = None,
    ) -> T:
        """The cached value of `key`, else `compute()` (once: concurrent callers of the same
        key wait for the first one's result instead of computing it again). A cached value for
        which `valid(value)` is false (e.g. its file was removed by the disk cap) is dropped
        and computed again."""
        while True:
            with self._lock:
                if key in self._data and valid is not None and not valid(self._data[key]):
                    del self._data[key]
                if key in self._data:
                    self._data.move_to_end(key)
                    self.hits += 1
                    return self._data[key]
                pending = self._pending.get(key)
                if pending is None:
                    self.misses += 1
                    pending = self._pending[key] = threading.Event()
                    break
            pending.wait()  # another thread computes it; then read it (or retry if it failed)
        try:
            value = compute()  # outside the lock: other keys are not blocked
            with self._lock:
                self._data[key] = value
                while len(self._data) > self.maxsize:
                    self._data.popitem(last=False)
        finally:
            with self._lock:
                self._pending.pop(key, None)
            pending.set()
        return value

    def __contains__(self, key: Hashable) -> bool:
        with self._lock:
            return key in self._data

    def __len__(self) -> int:
        return len(self._data)


@dataclass(frozen=True)
class Sound:
    """A dataset clip as the UI lists it, e.g. "bass A3 f #57" or "speech_female #351"."""

    label: str
    item: GoodSoundsItem

    @property
    def path(self) -> Path:
        return self.item.path

    @property
    def is_speech(self) -> bool:
        return self.item.klass == SPEECH_KLASS


def sound_label(item: GoodSoundsItem) -> str:
    parts = [item.instrument, item.pitch, item.dynamics]
    return " ".join(p for p in parts if p) + f" #{item.sound_id}"


@dataclass
class WarmupStatus:
    """Progress of the background warm-up, shown on the page (thread-safe enough: single
    writer, readers take a snapshot of plain values)."""

    state: str = "idle"  # idle | running | done | failed | off
    step: str = ""
    fraction: float = 0.0
    started: float | None = None
    seconds: float | None = None
    error: str = ""
    finished: threading.Event = field(default_factory=threading.Event)

    def markdown(self) -> str:
        if self.state == "running":
            return (
                f"Warming up in the background ({self.fraction:.0%}): {self.step}. The page "
                "works meanwhile: what you ask first is computed on demand."
            )
        if self.state == "done":
            return f"Ready: dataset latents, maps and probes warmed up in {self.seconds:.0f} s."
        if self.state == "failed":
            return f"Warm-up stopped ({self.error}); everything is computed on demand."
        if self.state == "off":
            return "Warm-up off (--no-warmup): everything is computed on demand."
        return "Warm-up starts when the page is served."

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the warm-up finished (done or failed); False on timeout."""
        return self.finished.wait(timeout)


@dataclass
class Studio:
    """The loaded codecs, dataset and caches shared by every tab.

    Attributes:
        codecs: the line-up of codecs with latents, in display order (see
            `analysis.models.LoadedCodec`); every tab shows them.
        references: the reference codecs (Opus, Codec2: no latents, no weights), which only
            the Reconstruct tab shows.
        lms: the codecs' token LMs for the Continue tab (app/lms.py).
    """

    config: AppConfig
    codecs: list[LoadedCodec]
    items: list[GoodSoundsItem]
    notices: list[str] = field(default_factory=list)
    references: list[LoadedCodec] = field(default_factory=list)
    out_dir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="almstudio-")))
    results: LRU = field(default_factory=lambda: LRU(128))
    maps: LRU = field(default_factory=lambda: LRU(16))
    probes: LRU = field(default_factory=lambda: LRU(16))
    latents: LRU = field(default_factory=lambda: LRU(32))
    map_lock: threading.Lock = field(default_factory=threading.Lock)
    export_lock: threading.Lock = field(default_factory=threading.Lock)
    warmup_status: WarmupStatus = field(default_factory=WarmupStatus)
    gate: RequestGate = field(init=False)
    disk_cap: DiskCap | None = None
    lms: LineupLMs = field(default_factory=LineupLMs)
    _active: int = 0
    _active_lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        # admission to the model work: `concurrency` at once, `max_queue` waiting (app/gate.py)
        self.gate = RequestGate(self.config.concurrency, self.config.max_queue)

    # --- construction ------------------------------------------------------------------------
    @classmethod
    def load(cls, config: AppConfig) -> Studio:
        """Load the codecs and the dataset.

        Raises:
            CheckpointError: an explicitly given or a present-but-broken checkpoint.
            FileNotFoundError / ValueError: a dataset root that is not Good-sounds layout.
        """
        notices: list[str] = []
        codecs = load_lineup(config, notices)
        references = load_references(config, notices)
        items = load_items(config.dataset_root)
        if config.map_limit is not None and len(items) > config.map_limit:
            step = -(-len(items) // config.map_limit)
            items = items[::step]
        export = config.export_dir
        lms = load_lms(codecs, config.lms, config.lm_dir, notices)
        studio = cls(config, codecs, items, notices, references)
        studio.lms = lms
        atexit.register(shutil.rmtree, studio.out_dir, ignore_errors=True)
        if export is None:
            studio.config.export_dir = studio.out_dir / "exports"
        for n in notices:
            log.warning(n)
        log.info(
            "codecs: %s; dataset %s: %d clips (%d instruments)",
            ", ".join(f"{c.label} ({c.source})" for c in [*codecs, *references]),
            config.dataset_root,
            len(items),
            len({it.instrument for it in items}),
        )
        if not config.warmup:
            studio.warmup_status.state = "off"
        return studio

    def codec(self, key: str) -> LoadedCodec:
        """The line-up entry with this key ("almtokenizer", "encodec", "encodec_official", or a
        reference codec's: "opus", "codec2")."""
        for c in [*self.codecs, *self.references]:
            if c.key == key:
                return c
        keys = [c.key for c in [*self.codecs, *self.references]]
        raise KeyError(f"no codec {key!r} in the line-up ({keys})")

    # --- catalogue ---------------------------------------------------------------------------
    @property
    def sounds(self) -> list[Sound]:
        """Every dataset clip with its UI label (labels are unique: they end in the sound id)."""
        if not hasattr(self, "_sounds"):
            self._sounds = [Sound(sound_label(it), it) for it in self.items]
            self._by_label = {s.label: s for s in self._sounds}
        return self._sounds

    def sound(self, label: str) -> Sound | None:
        self.sounds  # noqa: B018 - builds the index
        return self._by_label.get(label)

    @property
    def instruments(self) -> list[str]:
        """Instruments of the dataset (speech excluded), Good-sounds order first."""
        have = {it.instrument for it in self.items if it.klass != SPEECH_KLASS}
        known = [i for i in GOODSOUNDS_INSTRUMENTS if i in have]
        return known + sorted(have - set(known))

    def pitches(self, instrument: str) -> list[str]:
        """Pitches ("A3", ...) that `instrument` has in the dataset, low to high."""
        return describe_groups([it for it in self.items if it.instrument == instrument]).get(
            instrument, []
        )

    def group_labels(self) -> list[str]:
        """Attribute groups for waypoints: every instrument and every "instrument pitch"."""
        out: list[str] = []
        for inst in self.instruments:
            out.append(inst)
            out.extend(f"{inst} {p}" for p in self.pitches(inst))
        return out

    def examples(self, n_notes: int = 6) -> list[Sound]:
        """Bundled examples for the Reconstruct tab: the speech clips, then a few notes (the
        default traversal's groups first, then one note per instrument)."""
        speech = [s for s in self.sounds if s.is_speech]
        notes: list[Sound] = []
        for text in DEFAULT_TRAVERSAL:
            inst, _, pitch = text.partition(" ")
            notes += [
                s for s in self.sounds if s.item.instrument == inst and s.item.pitch == pitch
            ][:1]
        for inst in self.instruments:
            if len(notes) >= n_notes:
                break
            if not any(s.item.instrument == inst for s in notes):
                notes += [s for s in self.sounds if s.item.instrument == inst][:1]
        return speech + notes[:n_notes]

    def default_waypoints(self) -> list[str]:
        """ "bass A3" -> "clarinet A6" when the dataset has them, else two other groups."""
        labels = set(self.group_labels())
        if all(g in labels for g in DEFAULT_TRAVERSAL):
            return list(DEFAULT_TRAVERSAL)
        inst = self.instruments
        return inst[:2] if len(inst) >= 2 else inst * 2

    # --- exports -----------------------------------------------------------------------------
    def new_export_folder(self, kind: str) -> Path:
        """A new `<kind>-XXXXXXXX` folder under the export folder for one click's downloads.

        Every click writes one, so only the `config.keep_exports` newest folders of `kind`
        are kept; older ones (and nothing else in the export folder) are removed."""
        root = Path(self.config.export_dir)  # type: ignore[arg-type]
        root.mkdir(parents=True, exist_ok=True)
        pattern = re.compile(rf"{re.escape(kind)}-[a-z0-9_]{{8}}")  # tempfile.mkdtemp's names
        with self.export_lock:
            folder = Path(tempfile.mkdtemp(prefix=f"{kind}-", dir=root))
            mine = [p for p in root.iterdir() if pattern.fullmatch(p.name) and p != folder]
            mine.sort(key=_mtime)
            for old in mine[: max(0, len(mine) - (self.config.keep_exports - 1))]:
                shutil.rmtree(old, ignore_errors=True)
        return folder

    # --- analysis caches ---------------------------------------------------------------------
    def map_window(self, window: int | None) -> int:
        return int(window) if window is not None else self.config.window

    def latent_set(self, entry: LoadedCodec, window: int, progress: bool = True) -> LatentSet:
        """The dataset latents of one codec at `window` (disk-cached by `analysis`; computed
        once even when the warm-up and a request ask at the same time)."""
        win = effective_window(entry.codec, window)
        return self.latents.get_or_compute(
            (entry.key, win),
            lambda: extract_latents(
                entry.codec, self.items, win, cache_dir=self.config.cache_dir, progress=progress
            ),
        )

    def probe_scores(self, window: int) -> dict[str, dict[str, ProbeScores]]:
        """{codec label: {attribute: scores}} of the dataset latents at `window` (cached)."""
        from analysis.probe import probe_latents

        def compute() -> dict[str, dict[str, ProbeScores]]:
            return {
                c.label: probe_latents(self.latent_set(c, window).pooled, self.items, c.key)
                for c in self.codecs
            }

        key = (window, *(effective_window(c.codec, window) for c in self.codecs))
        return self.probes.get_or_compute(key, compute)

    def latent_map(
        self,
        method: str = "umap",
        color_by: str = "instrument",
        window: int | None = None,
        uploads: Sequence[tuple[str, torch.Tensor]] = (),
    ) -> LatentMap:
        """Every codec's map of the dataset (fitted projections are cached by `analysis`)."""
        from analysis.maps import build_latent_map

        win = self.map_window(window)
        scores = self.probe_scores(win)
        with self.map_lock:
            return build_latent_map(
                [c.codec for c in self.codecs],
                self.items,
                window=win,
                method=method,
                color_by=color_by,
                uploads=uploads,
                probe_scores=scores,
                cache_dir=self.config.cache_dir,
                labels=[c.label for c in self.codecs],
            )

    # --- disk ------------------------------------------------------------------------------
    def disk_folders(self) -> list[Path]:
        """The folders the disk cap covers: the app's outputs (and default exports) and
        Gradio's cache of uploads and served files."""
        from gradio.utils import get_upload_folder

        return [self.out_dir, Path(get_upload_folder())]

    def start_disk_cap(self, every_seconds: float = 10.0) -> DiskCap:
        """Keep `disk_folders` under `config.max_disk_mb`, oldest files first (app/janitor.py)."""
        if self.disk_cap is None:
            folders = self.disk_folders()
            for f in folders:
                f.mkdir(parents=True, exist_ok=True)
            self.disk_cap = DiskCap(folders, int(self.config.max_disk_mb * 1e6))
            self.disk_cap.start(every_seconds)
        return self.disk_cap

    # --- requests and the warm-up ------------------------------------------------------------
    @contextlib.contextmanager
    def request(self) -> Iterator[None]:
        """Mark a user request in flight: the background warm-up waits until none is."""
        with self._active_lock:
            self._active += 1
        try:
            yield
        finally:
            with self._active_lock:
                self._active -= 1

    def _yield_to_requests(self) -> None:
        while self._active > 0:
            time.sleep(0.05)

    def start_warmup(self, first: Callable[[], None] | None = None) -> threading.Thread | None:
        """Run `warmup` in a daemon thread (once; not when the config turns it off); `first`
        runs in that thread before it (e.g. the Reconstruct tab's first example)."""
        if not self.config.warmup or self.warmup_status.state != "idle":
            return None
        self.warmup_status.state = "running"

        def run() -> None:
            try:
                if first is not None:
                    self.warmup_status.step = "the first example"
                    first()
                self.warmup()
            except Exception as e:  # the app keeps working; everything is computed on demand
                log.exception("warm-up failed")
                self.warmup_status.state, self.warmup_status.error = "failed", str(e)
            finally:
                self.warmup_status.finished.set()

        thread = threading.Thread(target=run, name="studio-warmup", daemon=True)
        thread.start()
        return thread

    def warmup(self) -> float:
        """Extract the dataset latents, fit the default map, probe, compute the default
        traversal's centroids and run each codec once. Returns the seconds it took."""
        st = self.warmup_status
        st.state, st.started = "running", time.perf_counter()
        win = self.config.window
        wav = torch.zeros(1, 1, 12000)
        for c in self.codecs:
            self._yield_to_requests()
            st.step = f"first run of {c.label}"
            with c.codec.use_setting(c.setting.default) as window, torch.inference_mode():
                c.codec.reconstruct(wav, window)
        cache = self.config.cache_dir
        for k, c in enumerate(self.codecs):
            cw = effective_window(c.codec, win)
            if cache is not None:  # in slices, so requests can go first in between
                for start in range(0, len(self.items), WARMUP_SLICE):
                    self._yield_to_requests()
                    if (c.key, cw) in self.latents:
                        break
                    st.step = f"dataset latents, {c.label} ({start}/{len(self.items)} clips)"
                    st.fraction = 0.8 * (k + start / len(self.items)) / len(self.codecs)
                    part = self.items[start : start + WARMUP_SLICE]
                    extract_latents(c.codec, part, cw, cache_dir=cache, progress=False)
            self._yield_to_requests()
            self.latent_set(c, win, progress=False)
        self._yield_to_requests()
        st.step, st.fraction = "probes and the UMAP map (compiles numba once)", 0.8
        log.info("warm-up: UMAP map and probes at window %d ...", win)
        self.latent_map("umap", "instrument", win)
        st.step, st.fraction = "default traversal centroids", 0.95
        for text in self.default_waypoints():
            for c in self.codecs:
                self._yield_to_requests()
                try:
                    group_centroid(c.codec, self.items, parse_group(text), win, cache)
                except ValueError as e:
                    log.warning("warm-up: no centroid for %r: %s", text, e)
        st.seconds = time.perf_counter() - st.started
        st.state, st.step, st.fraction = "done", "", 1.0
        log.info("warm-up done in %.1f s", st.seconds)
        return st.seconds


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:  # removed meanwhile
        return 0.0


__all__ = ["RANDOM_INIT", "LRU", "Sound", "Studio", "WarmupStatus", "load_lineup"]
