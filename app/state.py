"""What the app holds while it runs: the two codecs, the dataset, caches, and the warm-up.

`Studio` is created once at start-up (`Studio.load(config)`) and shared by every tab. It loads
ALMTokenizer and EnCodec (falling back to untrained random-init models, with a log line and a
page banner, when the bundled checkpoints are missing), lists the dataset (Good-sounds layout),
and keeps the caches that make repeated clicks cheap:

- per-clip results keyed by the clip's content hash and the setting (window for ALMTokenizer,
  bandwidth for EnCodec), so moving the window slider never recomputes EnCodec;
- latent maps, probe scores and group centroids (through `analysis`' own caches).

`warmup()` extracts the dataset latents, fits the default UMAP map and probes, so the first
click on any tab does not pay for them.
"""

from __future__ import annotations

import atexit
import logging
import re
import shutil
import tempfile
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import torch

from analysis.codec_ops import effective_window, state_dict_hash
from analysis.dataset import load_items
from analysis.groups import describe_groups, group_centroid, parse_group
from analysis.latents import extract_latents
from analysis.maps import LatentMap, build_latent_map
from analysis.probe import ProbeScores, probe_latents
from app.config import (  # noqa: F401 - re-exported for the tabs
    BANDWIDTHS,
    DEFAULT_TRAVERSAL,
    SPEECH_KLASS,
    WINDOW_MAX,
    WINDOW_MIN,
    AppConfig,
)
from codec.base import Codec
from codec.checkpoint import CheckpointError, load_codec
from codec.data.goodsounds import GOODSOUNDS_INSTRUMENTS, GoodSoundsItem

log = logging.getLogger(__name__)

T = TypeVar("T")
RANDOM_INIT = "random-init (untrained)"


class LRU:
    """A small thread-safe LRU of computed results."""

    def __init__(self, maxsize: int = 64) -> None:
        self.maxsize = maxsize
        self._data: OrderedDict[Hashable, Any] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def get_or_compute(self, key: Hashable, compute: Callable[[], T]) -> T:
        with self._lock:
            if key in self._data:
                self._data.move_to_end(key)
                self.hits += 1
                return self._data[key]
            self.misses += 1
        value = compute()  # outside the lock: other keys are not blocked
        with self._lock:
            self._data[key] = value
            while len(self._data) > self.maxsize:
                self._data.popitem(last=False)
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
class Studio:
    """The loaded models, dataset and caches shared by every tab."""

    config: AppConfig
    alm: Codec
    encodec: Codec
    items: list[GoodSoundsItem]
    notices: list[str] = field(default_factory=list)
    out_dir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="almstudio-")))
    results: LRU = field(default_factory=lambda: LRU(128))
    maps: LRU = field(default_factory=lambda: LRU(16))
    probes: LRU = field(default_factory=lambda: LRU(16))
    encodec_lock: threading.Lock = field(default_factory=threading.Lock)
    map_lock: threading.Lock = field(default_factory=threading.Lock)
    export_lock: threading.Lock = field(default_factory=threading.Lock)
    warmup_seconds: float | None = None

    # --- construction ------------------------------------------------------------------------
    @classmethod
    def load(cls, config: AppConfig) -> Studio:
        """Load both codecs and the dataset.

        Raises:
            CheckpointError: an explicitly given or a present-but-broken checkpoint.
            FileNotFoundError / ValueError: a dataset root that is not Good-sounds layout.
        """
        notices: list[str] = []
        alm = load_alm(config, notices)
        encodec = load_encodec_model(config, notices)
        items = load_items(config.dataset_root)
        if config.map_limit is not None and len(items) > config.map_limit:
            step = -(-len(items) // config.map_limit)
            items = items[::step]
        export = config.export_dir
        studio = cls(config, alm, encodec, items, notices)
        atexit.register(shutil.rmtree, studio.out_dir, ignore_errors=True)
        if export is None:
            studio.config.export_dir = studio.out_dir / "exports"
        for n in notices:
            log.warning(n)
        log.info(
            "dataset %s: %d clips (%d instruments)",
            config.dataset_root,
            len(items),
            len({it.instrument for it in items}),
        )
        return studio

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

    # --- codecs ------------------------------------------------------------------------------
    @property
    def bandwidths(self) -> tuple[float, ...]:
        """EnCodec bandwidths (kbps) the loaded model supports: the official 1.5 ... 24, or
        the subset a smaller trained baseline was configured with."""
        cfg = getattr(self.encodec, "config", None)
        have = getattr(cfg, "target_bandwidths", None)
        return tuple(float(b) for b in have) if have else BANDWIDTHS

    def codecs(self) -> list[tuple[str, Codec]]:
        return [("ALMTokenizer", self.alm), ("EnCodec", self.encodec)]

    def encodec_reconstruct(self, wav: torch.Tensor, bandwidth: float) -> tuple[Any, torch.Tensor]:
        """EnCodec encode + decode at `bandwidth` kbps: (Encoded, waveform `[1, 1, N]`).

        The bandwidth is model state, so setting it and encoding happen under one lock."""
        with self.encodec_lock, torch.inference_mode():
            set_bw = getattr(self.encodec, "set_bandwidth", None)
            if set_bw is not None:
                set_bw(float(bandwidth))
            enc = self.encodec.encode(wav, None)
            out = self.encodec.decode(enc.quantized, None, num_samples=wav.shape[-1])
            bitrate = float(self.encodec.bitrate(None))
            n_q = int(self.encodec.num_codebooks)
        enc.bitrate, enc.n_q = bitrate, n_q  # type: ignore[attr-defined]
        return enc, out

    # --- analysis caches ---------------------------------------------------------------------
    def map_window(self, window: int | None) -> int:
        return int(window) if window is not None else self.config.window

    def probe_scores(self, window: int) -> dict[str, dict[str, ProbeScores]]:
        """{codec name: {attribute: scores}} of the dataset latents at `window` (cached)."""

        def compute() -> dict[str, dict[str, ProbeScores]]:
            out = {}
            for _, codec in self.codecs():
                lat = extract_latents(
                    codec, self.items, window, cache_dir=self.config.cache_dir, progress=True
                )
                out[codec.name] = probe_latents(lat.pooled, self.items, codec.name)
            return out

        key = (window, *(effective_window(c, window) for _, c in self.codecs()))
        return self.probes.get_or_compute(key, compute)

    def latent_map(
        self,
        method: str = "umap",
        color_by: str = "instrument",
        window: int | None = None,
        uploads: Sequence[tuple[str, torch.Tensor]] = (),
    ) -> LatentMap:
        """Both codecs' map of the dataset (fitted projections are cached by `analysis`)."""
        win = self.map_window(window)
        scores = self.probe_scores(win)
        with self.map_lock:
            return build_latent_map(
                [c for _, c in self.codecs()],
                self.items,
                window=win,
                method=method,
                color_by=color_by,
                uploads=uploads,
                probe_scores=scores,
                cache_dir=self.config.cache_dir,
            )

    # --- warm-up -----------------------------------------------------------------------------
    def warmup(self) -> float:
        """Extract the dataset latents, fit the default map, probe, compute the default
        traversal's centroids and run each codec once. Returns the seconds it took."""
        t0 = time.perf_counter()
        win = self.config.window
        log.info("warm-up: latents, UMAP map and probes at window %d ...", win)
        self.latent_map("umap", "instrument", win)
        for text in self.default_waypoints():
            for _, codec in self.codecs():
                try:
                    group_centroid(codec, self.items, parse_group(text), win, self.config.cache_dir)
                except ValueError as e:
                    log.warning("warm-up: no centroid for %r: %s", text, e)
        wav = torch.zeros(1, 1, self.alm.sample_rate // 2)
        with torch.inference_mode():
            self.alm.reconstruct(wav, win)
        self.encodec_reconstruct(wav, self.bandwidths[0])
        self.warmup_seconds = time.perf_counter() - t0
        log.info("warm-up done in %.1f s", self.warmup_seconds)
        return self.warmup_seconds


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:  # removed meanwhile
        return 0.0


# --- model loading -----------------------------------------------------------------------------
def _identify(model: Codec) -> Codec:
    """Give a model that was not loaded from a checkpoint folder a content identity, so the
    latent cache never mixes it up with another random-init model."""
    model.checkpoint_hash = "sd-" + state_dict_hash(model)  # type: ignore[attr-defined]
    model.weights_source = RANDOM_INIT  # type: ignore[attr-defined]
    return model


def weights_source(model: Codec, path: Path | None = None) -> str:
    """Where a codec's weights came from, for the page and the benchmark."""
    src = getattr(model, "weights_source", None)
    if src:
        return str(src)
    return f"checkpoint:{path}" if path is not None else "checkpoint"


def load_alm(config: AppConfig, notices: list[str]) -> Codec:
    """ALMTokenizer from `config.alm_checkpoint`; an untrained demo-preset model (with a
    notice) when the default folder is missing."""
    path = Path(config.alm_checkpoint)
    if path.exists() or "alm_checkpoint" in config.explicit:
        model = load_codec(path)
        if model.name != "almtokenizer":
            raise CheckpointError(f"{path} holds a {model.name} checkpoint, not almtokenizer")
        return model.eval()
    from codec.almtokenizer import ALMTokenizer, preset

    notices.append(
        f"ALMTokenizer checkpoint {path} not found: using an UNTRAINED random-init model "
        "(demo preset), so its audio is noise. Train one (python -m codec.train) or pass "
        "--alm-checkpoint."
    )
    torch.manual_seed(0)
    return _identify(ALMTokenizer(preset("demo")).eval())


def load_encodec_model(config: AppConfig, notices: list[str]) -> Codec:
    """EnCodec, in this order: the official weights file (`--encodec-weights`, when it exists),
    an explicitly given checkpoint, the official file in the torch hub cache, the default
    checkpoint folder, else an untrained random-init model (with a notice)."""
    from codec.encodec import EnCodecCodec, EnCodecConfig, load_encodec, official_weight_candidates

    bw = 1.5  # every EnCodec configuration has it; the UI then picks from the model's list
    weights = config.encodec_weights
    if weights is not None:
        if Path(weights).is_file():
            return load_encodec(weights=weights, bandwidth=bw)
        notices.append(f"EnCodec weights file {weights} not found: using the EnCodec checkpoint.")
    ckpt = Path(config.encodec_checkpoint)
    if "encodec_checkpoint" in config.explicit:
        return load_encodec(checkpoint=ckpt, bandwidth=bw)
    official = next((p for p in official_weight_candidates() if p.is_file()), None)
    if official is not None:
        return load_encodec(weights=official, bandwidth=bw)
    if ckpt.exists():
        return load_encodec(checkpoint=ckpt, bandwidth=bw)
    notices.append(
        f"EnCodec checkpoint {ckpt} not found and no official weights: using an UNTRAINED "
        "random-init EnCodec, so its audio is noise. Pass --encodec-weights "
        "(encodec_24khz-d7cc33bc.th) or --encodec-checkpoint."
    )
    torch.manual_seed(0)
    model = EnCodecCodec(EnCodecConfig())
    model.set_bandwidth(bw)
    return _identify(model.eval())
