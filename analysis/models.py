"""The codecs an analysis compares: a list of loaded codecs, each with a label and its setting.

The CLI and the app build the list from `codec.models.registry` backends:

    codecs = load_codec_list([CodecSpec("almtokenizer", path_a), CodecSpec("encodec", path_b)])
    for c in codecs:
        c.label, c.key, c.setting.kind, c.codec.bitrate(...)

`default_specs` gives the usual line-up: ALMTokenizer, our EnCodec and, when its weights file is
given or found in the torch hub cache, the official EnCodec. Reference codecs (Opus, Codec2:
no weights, no latents) join when named; what needs latents keeps `with_latents(codecs)`.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from codec.checkpoint import CheckpointError
from codec.models.base import Codec, CodecSetting
from codec.models.registry import Backend, default_lineup, get_backend

log = logging.getLogger(__name__)

DEFAULT_ALM_CHECKPOINT = Path("checkpoints/almtokenizer_demo")
DEFAULT_ENCODEC_CHECKPOINT = Path("checkpoints/encodec_vocos_demo")


@dataclass(eq=False)
class LoadedCodec:
    """One codec in the line-up.

    Attributes:
        label: what tables, panels and players call it ("ALMTokenizer", "EnCodec (official)").
        codec: the model (eval mode).
        backend: the registry name it was loaded with ("almtokenizer", "encodec", ...).
        key: a short identifier unique in the line-up, for file names, element ids and cache
            keys ("almtokenizer", "encodec", "encodec_official").
    """

    label: str
    codec: Codec
    backend: str = ""
    key: str = field(default="")

    def __post_init__(self) -> None:
        if not self.key:
            self.key = slug(self.label)

    @property
    def setting(self) -> CodecSetting:
        """The setting this codec offers (window, bandwidth or none)."""
        return self.codec.setting()

    @property
    def source(self) -> str:
        """Where the weights came from, as the loaders recorded it."""
        return str(getattr(self.codec, "weights_source", "") or "checkpoint")


def slug(text: str) -> str:
    """ "EnCodec (official)" -> "encodec_official"."""
    return re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_") or "codec"


@dataclass(frozen=True)
class CodecSpec:
    """A codec to load: a backend name, optionally a path (else the backend's default paths)
    and a label (else the backend's)."""

    backend: str
    path: Path | None = None
    label: str | None = None

    @classmethod
    def parse(cls, text: str) -> CodecSpec:
        """ "NAME", "NAME=PATH" or "NAME=PATH@LABEL" (e.g. "encodec=ckpt/enc@EnCodec small")."""
        name, _, rest = text.partition("=")
        path, _, label = rest.partition("@")
        get_backend(name.strip())  # unknown names fail here, naming the known ones
        return cls(name.strip(), Path(path) if path.strip() else None, label.strip() or None)


def default_specs(
    alm_checkpoint: str | Path | None = DEFAULT_ALM_CHECKPOINT,
    encodec_checkpoint: str | Path | None = DEFAULT_ENCODEC_CHECKPOINT,
    encodec_weights: str | Path | None = None,
    official: bool = True,
) -> list[CodecSpec]:
    """The registry's default line-up (`codec.models.registry.default_lineup`) as specs, paths
    from the options (None leaves a codec out): ALMTokenizer, our EnCodec, and the official
    EnCodec when `encodec_weights` is given or (with `official`) its file is in the torch hub
    cache. A backend the options do not name is shown when its default weights exist."""
    # the options name backends; None leaves one out, an absent key means "its defaults"
    paths: dict[str, str | Path | None] = {
        "almtokenizer": alm_checkpoint,
        "encodec": encodec_checkpoint,
    }
    if encodec_weights is not None or not official:
        paths["encodec_official"] = encodec_weights
    specs = []
    for backend in default_lineup():
        if backend.name in paths:
            path = paths[backend.name]
            if path is not None:
                specs.append(CodecSpec(backend.name, Path(path)))
        elif backend.find_default() is not None:
            specs.append(CodecSpec(backend.name))
    return specs


def unique_labels(labels: Sequence[str]) -> list[str]:
    """Labels made unique by numbering repeats: ["EnCodec", "EnCodec"] -> [..., "EnCodec 2"]."""
    out: list[str] = []
    for label in labels:
        candidate, n = label, 1
        while candidate in out:
            n += 1
            candidate = f"{label} {n}"
        out.append(candidate)
    return out


def no_latents_reason(labels: Sequence[str], what: str = "maps, probes or latent edits") -> str:
    """One line saying why reference codecs are left out of `what`."""
    return (
        f"{', '.join(labels)} left out of {what}: reference codecs reconstruct audio but have "
        "no latents"
    )


def with_latents(codecs: Sequence[LoadedCodec], what: str) -> list[LoadedCodec]:
    """The codecs that have latents (`Codec.has_latents`); the others are left out of `what`
    ("the map", "the traversal", ...) with one logged line naming them and why."""
    out = [c for c in codecs if c.codec.has_latents]
    left = [c.label for c in codecs if not c.codec.has_latents]
    if left:
        log.warning("%s", no_latents_reason(left, what))
    return out


def resolve_path(spec: CodecSpec, backend: Backend) -> Path:
    """The spec's path, else the backend's first existing default; CheckpointError if none."""
    if spec.path is not None:
        return spec.path
    found = backend.find_default()
    if found is None:
        where = ", ".join(str(p) for p in backend.default_paths()) or "(none)"
        raise CheckpointError(f"no weights for {backend.label}: give a path (looked in {where})")
    return found


def load_codec_list(specs: Sequence[CodecSpec]) -> list[LoadedCodec]:
    """Load every spec strictly, in order.

    Raises:
        CheckpointError: a missing, truncated or mismatched checkpoint (names the file).
        ValueError: an unknown backend name.
    """
    backends = [get_backend(s.backend) for s in specs]
    labels = unique_labels([s.label or b.label for s, b in zip(specs, backends)])
    out = []
    for spec, backend, label in zip(specs, backends, labels):
        codec = backend.open(spec.path)  # a reference codec is built; it takes no path
        # a built-in codec under its own label is keyed by its backend name ("opus")
        key = backend.name if not backend.needs_weights and label == backend.label else ""
        out.append(LoadedCodec(label, codec.eval(), backend.name, key))
    return out


def load_codecs(
    alm_checkpoint: str | Path | None = DEFAULT_ALM_CHECKPOINT,
    encodec_checkpoint: str | Path | None = DEFAULT_ENCODEC_CHECKPOINT,
    encodec_weights: str | Path | None = None,
    encodec_bandwidth: float = 1.5,
) -> list[LoadedCodec]:
    """The default line-up (`default_specs`) loaded strictly, EnCodecs at `encodec_bandwidth`
    kbps."""
    codecs = load_codec_list(default_specs(alm_checkpoint, encodec_checkpoint, encodec_weights))
    for c in codecs:
        if c.setting.kind == "bandwidth":
            c.codec.apply_setting(c.setting.check(encodec_bandwidth) or encodec_bandwidth)
    return codecs
