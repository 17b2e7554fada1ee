"""The one registry of codec backends: which class reads a checkpoint, and which backends the
app and the CLIs offer.

A backend is one entry of `BACKENDS`: its `Codec` class (what `load_codec` builds for a
checkpoint whose config.json names it), a label for pages and tables, a loader for its weights
(a checkpoint folder or a weights file), where to look when no path is given, and an untrained
model of its default architecture (the app's fallback when bundled weights are missing).
Everything else (the setting it offers, bitrates, encode/decode, training hooks) is the `Codec`
interface, so a new backend (DAC, Mimi, ...) is one new module with its `Codec` subclass plus
one entry here, or one `register_backend` call:

    def _dac() -> type[Codec]:
        from codec.models.dac import DAC
        return DAC

    register_backend(Backend("dac", "DAC", _dac, load_folder(_dac), lambda: []))

`load_codec(folder)` then reads its checkpoints, `model.type: dac` trains it, and
`python -m app --codec dac=weights` / `python -m analysis ... --codec dac=...` show it next to
the others.

A backend with no weights (the reference codecs Opus and Codec2, `codec.models.reference`) gives
`build` instead of a loader: `Backend.open()` builds it, it has no checkpoints and nothing to
train, and it stays out of the default line-up; `reference_lineup()` lists those backends
(the app's Reconstruct tab shows them; `--codecs opus,codec2` selects them in the analysis CLI).

Models are imported lazily (each entry names a function that imports its class), so importing
the registry never imports a model and no model imports the registry.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from codec.checkpoint import CONFIG_NAME, CheckpointError, load_checkpoint, read_config
from codec.models.base import Codec

REPO_ROOT = Path(__file__).resolve().parents[2]
RANDOM_INIT = "random-init (untrained)"


@dataclass(frozen=True)
class Backend:
    """How to get one kind of codec.

    Attributes:
        name: registry key, used on command lines (`--codec NAME=PATH`); a backend named as
            its class's `name` reads the checkpoints whose config.json says `"codec": name`,
            and trains as `model.type: name`.
        label: what pages and tables call it ("EnCodec (official)").
        codec: the `Codec` subclass it builds (imported when called).
        load: weights at a path (folder or file) -> an eval-mode codec; raises CheckpointError.
        default_paths: where to look when no path is given (first existing one wins).
        untrained: an untrained model of the default architecture, or None when the backend
            has no meaningful one (a pretrained-only model).
        in_lineup: shown by the app and the analysis CLI without being asked for (when its
            weights are found; else its untrained model stands in, unless another backend of
            its family is shown).
        build: for a backend that needs no weights (a reference codec), its model, ready to
            use; `load` and `default_paths` are then never asked (see `open`).
    """

    name: str
    label: str
    codec: Callable[[], type[Codec]]
    load: Callable[[Path], Codec]
    default_paths: Callable[[], list[Path]]
    untrained: Callable[[], Codec] | None = None
    in_lineup: bool = True
    build: Callable[[], Codec] | None = None

    @property
    def needs_weights(self) -> bool:
        """False for a backend that builds its model without weights (a reference codec)."""
        return self.build is None

    def find_default(self) -> Path | None:
        """The first default path that exists, or None."""
        return next((p for p in self.default_paths() if p.exists()), None)

    def open(self, path: Path | None = None) -> Codec:
        """An eval-mode model: built, for a backend that needs no weights (a `path` is then an
        error), else loaded from `path` or the first default path.

        Raises:
            CheckpointError: weights given to a backend without any, or none found.
        """
        if self.build is not None:
            if path is not None:
                raise CheckpointError(f"{self.label} needs no weights; got {path}")
            return self.build().eval()
        found = path if path is not None else self.find_default()
        if found is None:
            where = ", ".join(str(p) for p in self.default_paths()) or "(none)"
            raise CheckpointError(f"no weights for {self.label}: give a path (looked in {where})")
        return self.load(Path(found))

    @property
    def family(self) -> str:
        """The codec it loads (its class's `name`: "encodec_official" -> "encodec"): the name
        its models report, shards record, and what `--codecs encodec` selects."""
        return self.codec().name


def _alm() -> type[Codec]:
    from codec.models.almtokenizer import ALMTokenizer

    return ALMTokenizer


def _encodec() -> type[Codec]:
    from codec.models.encodec import EnCodecCodec

    return EnCodecCodec


def load_folder(codec: Callable[[], type[Codec]]) -> Callable[[Path], Codec]:
    """A `Backend.load` for our checkpoint folders of the class `codec()` (strict; records
    where the weights came from)."""

    def load(path: Path) -> Codec:
        model = load_checkpoint(codec(), path)
        model.weights_source = f"checkpoint:{path}"
        return model.eval()

    return load


def _opus() -> type[Codec]:
    from codec.models.opus import OpusCodec

    return OpusCodec


def _codec2() -> type[Codec]:
    from codec.models.codec2 import Codec2Codec

    return Codec2Codec


def _no_weights(codec: Callable[[], type[Codec]]) -> Callable[[Path], Codec]:
    """The `Backend.load` of a backend without weights: refuses any path."""

    def load(path: Path) -> Codec:
        raise CheckpointError(f"{codec().name} needs no weights; got {path}")

    return load


def _reference(name: str, label: str, codec: Callable[[], type[Codec]]) -> Backend:
    """A reference codec's entry (`label` as its class's): built, never loaded; not in the
    default line-up."""
    return Backend(
        name, label, codec, _no_weights(codec), lambda: [], in_lineup=False,
        build=lambda: codec()(),
    )  # fmt: skip


def _untrained_alm() -> Codec:
    from codec.models.almtokenizer import ALMTokenizer, preset

    torch.manual_seed(0)
    return ALMTokenizer(preset("demo")).eval()


def _untrained_encodec() -> Codec:
    from codec.models.encodec import EnCodecCodec, EnCodecConfig

    torch.manual_seed(0)
    return EnCodecCodec(EnCodecConfig()).eval()


def _load_official(path: Path) -> Codec:
    from codec.models.encodec import load_encodec

    return load_encodec(weights=path).eval()


def _official_paths() -> list[Path]:
    from codec.models.encodec import official_weight_candidates

    return official_weight_candidates()


BACKENDS: dict[str, Backend] = {
    b.name: b
    for b in (
        Backend(
            "almtokenizer",
            "ALMTokenizer",
            _alm,
            load_folder(_alm),
            lambda: [REPO_ROOT / "checkpoints" / "almtokenizer_demo"],
            _untrained_alm,
        ),
        Backend(
            "encodec",
            "EnCodec",
            _encodec,
            load_folder(_encodec),
            lambda: [REPO_ROOT / "checkpoints" / n for n in ("encodec_vocos_demo", "encodec_demo")],
            _untrained_encodec,
        ),
        Backend(
            "encodec_official", "EnCodec (official)", _encodec, _load_official, _official_paths
        ),
        _reference("opus", "Opus (libopus)", _opus),
        _reference("codec2", "Codec2 (8 kHz speech codec)", _codec2),
    )
}


def register_backend(backend: Backend) -> Backend:
    """Add (or replace) a backend; returns it."""
    BACKENDS[backend.name] = backend
    return backend


def family(name: str) -> str:
    """The codec a backend name loads ("encodec_official" -> "encodec")."""
    return get_backend(name).family


def default_lineup() -> list[Backend]:
    """The backends shown without being asked for, in registry order."""
    return [b for b in BACKENDS.values() if b.in_lineup]


def reference_lineup() -> list[Backend]:
    """The backends that need no weights (reference codecs: Opus, Codec2), in registry order."""
    return [b for b in BACKENDS.values() if not b.needs_weights]


def get_backend(name: str) -> Backend:
    """The backend called `name`; ValueError listing the known names."""
    try:
        return BACKENDS[name]
    except KeyError:
        raise ValueError(f"unknown codec backend {name!r}; known: {', '.join(BACKENDS)}") from None


def codec_class(name: str) -> type[Codec]:
    """The `Codec` subclass that reads checkpoints saying `"codec": name` and trains as
    `model.type: name`; ValueError listing the known names."""
    backend = BACKENDS.get(name)
    if backend is not None and not backend.needs_weights:
        raise ValueError(f"{name} is a reference codec: it has no checkpoints and nothing to train")
    if backend is None or backend.family != name:
        known = sorted(b.name for b in BACKENDS.values() if b.family == b.name and b.needs_weights)
        raise ValueError(f"unknown codec {name!r}; known: {', '.join(known)}")
    return backend.codec()


def load_codec(path: str | Path) -> Codec:
    """Build the codec that `path/config.json` names and load its weights strictly.

    Raises:
        CheckpointError: a missing, truncated or mismatched folder, or an unknown codec.
    """
    name = read_config(path)["codec"]
    try:
        cls = codec_class(name) if isinstance(name, str) else codec_class(repr(name))
    except ValueError as e:
        raise CheckpointError(f"{Path(path) / CONFIG_NAME}: {e}") from None
    return load_checkpoint(cls, path)


def untrained(backend: Backend, identity: Callable[[Codec], str]) -> Codec:
    """An untrained model of `backend` with a content identity (`checkpoint_hash` from
    `identity(model)`) so caches never mix it up with another random-init model."""
    if backend.untrained is None:
        raise CheckpointError(f"{backend.label} has no untrained fallback; give its weights")
    model = backend.untrained()
    model.checkpoint_hash = "sd-" + identity(model)
    model.weights_source = RANDOM_INIT
    return model
