"""The codec backends the app and the CLIs can load, by name.

A backend is one entry of `BACKENDS`: a label for pages and tables, a loader for its weights
(a checkpoint folder or a weights file), where to look when no path is given, and an untrained
model of its default architecture (the app's fallback when bundled weights are missing).
Everything else (the setting it offers, bitrates, encode/decode) is the `Codec` interface, so a
new backend (DAC, Mimi, ...) is one new module with its `Codec` subclass plus one entry here:

    def _load_dac(path: Path) -> Codec:
        from codec.dac import load_dac
        return load_dac(path)

    BACKENDS["dac"] = Backend("dac", "DAC", _load_dac, lambda: [], None)

`python -m app --codec dac=weights.pth` and `python -m analysis ... --codec dac=...` then show it
next to the others.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from codec.base import Codec
from codec.checkpoint import CheckpointError, load_codec

REPO_ROOT = Path(__file__).resolve().parents[1]
RANDOM_INIT = "random-init (untrained)"


@dataclass(frozen=True)
class Backend:
    """How to get one kind of codec.

    Attributes:
        name: registry key, used on command lines (`--codec NAME=PATH`).
        label: what pages and tables call it ("EnCodec (official)").
        load: weights at a path (folder or file) -> an eval-mode codec; raises CheckpointError.
        default_paths: where to look when no path is given (first existing one wins).
        untrained: an untrained model of the default architecture, or None when the backend
            has no meaningful one (a pretrained-only model).
    """

    name: str
    label: str
    load: Callable[[Path], Codec]
    default_paths: Callable[[], list[Path]]
    untrained: Callable[[], Codec] | None = None

    def find_default(self) -> Path | None:
        """The first default path that exists, or None."""
        return next((p for p in self.default_paths() if p.exists()), None)


def _load_alm(path: Path) -> Codec:
    model = load_codec(path)
    if model.name != "almtokenizer":
        raise CheckpointError(f"{path} holds a {model.name} checkpoint, not almtokenizer")
    model.weights_source = f"checkpoint:{path}"
    return model.eval()


def _untrained_alm() -> Codec:
    from codec.almtokenizer import ALMTokenizer, preset

    torch.manual_seed(0)
    return ALMTokenizer(preset("demo")).eval()


def _load_encodec(path: Path) -> Codec:
    from codec.encodec import load_encodec

    return load_encodec(checkpoint=path).eval()


def _untrained_encodec() -> Codec:
    from codec.encodec import EnCodecCodec, EnCodecConfig

    torch.manual_seed(0)
    return EnCodecCodec(EnCodecConfig()).eval()


def _load_official(path: Path) -> Codec:
    from codec.encodec import load_encodec

    return load_encodec(weights=path).eval()


def _official_paths() -> list[Path]:
    from codec.encodec import official_weight_candidates

    return official_weight_candidates()


BACKENDS: dict[str, Backend] = {
    b.name: b
    for b in (
        Backend(
            "almtokenizer",
            "ALMTokenizer",
            _load_alm,
            lambda: [REPO_ROOT / "checkpoints" / "almtokenizer_demo"],
            _untrained_alm,
        ),
        Backend(
            "encodec",
            "EnCodec",
            _load_encodec,
            lambda: [REPO_ROOT / "checkpoints" / "encodec_demo"],
            _untrained_encodec,
        ),
        Backend("encodec_official", "EnCodec (official)", _load_official, _official_paths),
    )
}


def family(name: str) -> str:
    """The codec a backend name loads ("encodec_official" -> "encodec"): the `name` its
    models report and shards record, and what `--codecs encodec` selects."""
    return name.split("_")[0]


def get_backend(name: str) -> Backend:
    """The backend called `name`; ValueError listing the known names."""
    try:
        return BACKENDS[name]
    except KeyError:
        raise ValueError(f"unknown codec backend {name!r}; known: {', '.join(BACKENDS)}") from None


def untrained(backend: Backend, identity: Callable[[Codec], str]) -> Codec:
    """An untrained model of `backend` with a content identity (`checkpoint_hash` from
    `identity(model)`) so caches never mix it up with another random-init model."""
    if backend.untrained is None:
        raise CheckpointError(f"{backend.label} has no untrained fallback; give its weights")
    model = backend.untrained()
    model.checkpoint_hash = "sd-" + identity(model)
    model.weights_source = RANDOM_INIT
    return model
