"""Start-up configuration of the app and its defaults (kept free of heavy imports so that
`python -m app --help` and flag errors answer at once)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_ALM_CHECKPOINT = REPO_ROOT / "checkpoints" / "almtokenizer_demo"
# EnCodec with its Vocos decoder; checkpoints/encodec_demo is the same encoder and RVQ with the
# shared autoencoder's SEANet decoder (the front end under ALMTokenizer)
DEFAULT_ENCODEC_CHECKPOINT = REPO_ROOT / "checkpoints" / "encodec_vocos_demo"
DEFAULT_DATASET_ROOT = REPO_ROOT / "data" / "demo"
DEFAULT_CACHE_DIR = REPO_ROOT / "cache" / "latents"
DEFAULT_LM_DIR = REPO_ROOT / "checkpoints"  # default token LMs: lm_<codec key>_* in it
WINDOW_MIN, WINDOW_MAX = 2, 10
DEFAULT_TRAVERSAL = ("bass A3", "clarinet A6")
SPEECH_KLASS = "speech"
# Gradio's copies of uploads and outputs are deleted once this old, checked this often (and
# all of them when the server stops): `gr.Blocks(delete_cache=...)`, in seconds.
GRADIO_CACHE_SECONDS = 3600


@dataclass
class AppConfig:
    """Start-up options (the CLI flags, validated by `app.cli`).

    Attributes:
        alm_checkpoint, encodec_checkpoint: checkpoint folders.
        encodec_weights: the official EnCodec state-dict file; used when it exists.
        dataset_root: a Good-sounds-layout root (database.sqlite + sound_files/).
        host, port, share: where to serve; `share` asks Gradio for a public link.
        max_seconds: longest clip accepted from users.
        concurrency: requests doing model work at once (`app.gate.RequestGate` slots).
        max_queue: requests that may wait for a slot; one more is told at once that the app
            is busy and how many requests are ahead.
        max_disk_mb: cap on the app's output folder and Gradio's cache folder together;
            the oldest files are removed first (`app.janitor.DiskCap`).
        cache_dir: latent cache folder (None: no disk cache).
        export_dir: folder for traversal/timbre downloads (None: a temporary folder).
        keep_exports: how many of the newest export folders to keep per kind (traversal,
            timbre); every click writes one, older ones are removed.
        max_upload_mb: largest upload Gradio accepts, in MB (checked before --max-seconds,
            which needs the file on disk).
        window: the ALMTokenizer window every tab starts at (the map is fitted at it).
        map_limit: at most this many dataset clips in maps and probes (None: all).
        warmup: extract latents and fit the default map in the background once serving.
        codecs: more codecs to show, as `NAME=PATH[@LABEL]` of `codec.models.registry` backends.
        explicit: names of the path options the user gave (a missing explicit path is an
            error; a missing default one falls back with a banner).
        lms: token LMs for the Continue tab, (codec key or backend name, LM folder) per
            `--lm CODEC=PATH`; other codecs use `lm_dir`'s `lm_<codec key>_*` (app/lms.py).
        lm_dir: where default token LMs are looked up.
    """

    alm_checkpoint: Path = DEFAULT_ALM_CHECKPOINT
    encodec_checkpoint: Path = DEFAULT_ENCODEC_CHECKPOINT
    encodec_weights: Path | None = None
    dataset_root: Path = DEFAULT_DATASET_ROOT
    host: str = "127.0.0.1"
    port: int = 7860
    share: bool = False
    max_seconds: float = 30.0
    concurrency: int = 2
    max_queue: int = 48
    max_disk_mb: float = 500.0
    cache_dir: Path | None = DEFAULT_CACHE_DIR
    export_dir: Path | None = None
    keep_exports: int = 20
    max_upload_mb: float = 50.0
    window: int = 4
    map_limit: int | None = None
    warmup: bool = True
    codecs: tuple[str, ...] = ()
    explicit: frozenset[str] = frozenset()
    lms: tuple[tuple[str, Path], ...] = ()
    lm_dir: Path = DEFAULT_LM_DIR

    def backend_paths(self) -> dict[str, tuple[Path | None, bool]]:
        """Registry backend name -> (the path its option gives, whether the user gave it)."""
        return {
            "almtokenizer": (self.alm_checkpoint, "alm_checkpoint" in self.explicit),
            "encodec": (self.encodec_checkpoint, "encodec_checkpoint" in self.explicit),
            "encodec_official": (self.encodec_weights, self.encodec_weights is not None),
        }
