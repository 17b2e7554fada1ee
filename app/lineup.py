"""The app's line-up of codecs: which backends it shows, where their weights come from, and how
their sources read on the page.

Every backend of the registry's default line-up (`codec.models.registry.default_lineup`) is
loaded from its option (`AppConfig.backend_paths`) or its default paths, then every
`--codec NAME=PATH[@LABEL]`. A missing explicit path is an error; a missing default one falls
back (see `load_lineup`) with a notice that the page shows as a banner. The reference codecs
(Opus, Codec2: no weights, no latents) are built apart (`load_references`): only the Reconstruct
tab shows them.
"""

from __future__ import annotations

from pathlib import Path

from analysis.codec_ops import state_dict_hash
from analysis.models import CodecSpec, LoadedCodec, resolve_path, unique_labels
from app.config import AppConfig
from codec.checkpoint import CheckpointError
from codec.models.base import Codec
from codec.models.registry import (
    Backend,
    default_lineup,
    get_backend,
    reference_lineup,
    untrained,
)


def shown_path(path: str | Path) -> str:
    """`path` relative to the working directory when it lies inside it, so pages do not show
    the machine's folders above the project; other paths as given."""
    try:
        return str(Path(path).resolve().relative_to(Path.cwd().resolve()))
    except (ValueError, OSError):
        return str(path)


def weights_source(entry: LoadedCodec) -> str:
    """Where a codec's weights came from, for the page and the benchmark
    ("checkpoint:checkpoints/almtokenizer_demo"; paths inside the working directory relative)."""
    kind, sep, path = entry.source.partition(":")
    return f"{kind}:{shown_path(path)}" if sep and Path(path).is_absolute() else entry.source


def _untrained(name: str, notices: list[str], notice: str) -> tuple[str, Codec, str]:
    backend = get_backend(name)
    notices.append(notice)
    return backend.label, untrained(backend, state_dict_hash), backend.name


def _load(name: str, path: Path, label: str | None = None) -> tuple[str, Codec, str]:
    backend = get_backend(name)
    return label or backend.label, backend.load(path), backend.name


def load_lineup(config: AppConfig, notices: list[str]) -> list[LoadedCodec]:
    """The app's codecs: every backend of the registry's default line-up
    (`codec.models.registry.default_lineup`: ALMTokenizer, our EnCodec, the official EnCodec),
    in registry order, then every `config.codecs` spec (`--codec NAME=PATH[@LABEL]`), strictly.

    A backend's weights come from its option (`AppConfig.backend_paths`) or its default paths.
    An explicit path that is missing is an error; a missing default one leaves the backend out
    when another backend of its family is shown (our EnCodec next to the official one), else
    its untrained model stands in, with a notice (its audio is noise). Labels are made unique
    by numbering; EnCodecs start at their lowest bandwidth.
    """
    paths = config.backend_paths()
    loaded: list[tuple[str, Codec, str] | None] = []
    missing: dict[int, tuple[Backend, Path | None]] = {}
    for backend in default_lineup():
        path, explicit = paths.get(backend.name, (None, False))
        if path is not None and (Path(path).exists() or explicit and backend.untrained):
            loaded.append(_load(backend.name, Path(path)))  # a missing explicit one: the error
            continue
        if path is not None and explicit:  # a weights file the user named is not there
            notices.append(f"{backend.label} weights file {path} not found.")
        # a path from the config stands for the backend's default paths, except a named
        # weights file that is not there (the official EnCodec: then the torch hub cache)
        found = backend.find_default() if path is None or explicit else None
        if found is not None:
            loaded.append(_load(backend.name, found))
            continue
        missing[len(loaded)] = (backend, path)
        loaded.append(None)
    shown = {get_backend(e[2]).family for e in loaded if e is not None}
    for i, (backend, path) in missing.items():
        if backend.untrained is not None and backend.family not in shown:
            where = path if path is not None else "(no default weights)"
            loaded[i] = _untrained(backend.name, notices,
                f"{backend.label} checkpoint {where} not found: using an UNTRAINED random-init "
                "model, so its audio is noise. Train one (python -m codec.training) or give its "
                "weights (python -m app --help).")  # fmt: skip
            shown.add(backend.family)
    found_all = [e for e in loaded if e is not None]
    for text in config.codecs:
        spec = CodecSpec.parse(text)
        if not get_backend(spec.backend).needs_weights:
            continue  # a reference codec: `load_references`
        found_all.append(
            _load(spec.backend, resolve_path(spec, get_backend(spec.backend)), spec.label)
        )
    labels = unique_labels([label for label, _, _ in found_all])
    out = [
        LoadedCodec(label, model.eval(), name) for label, (_, model, name) in zip(labels, found_all)
    ]
    if len({c.key for c in out}) != len(out):
        raise CheckpointError(f"codec labels must differ: {[c.label for c in out]}")
    for entry in out:
        if entry.setting.kind == "bandwidth":  # every EnCodec starts at its lowest bandwidth
            entry.codec.apply_setting(min(entry.setting.choices))
    return out


def load_references(config: AppConfig, notices: list[str]) -> list[LoadedCodec]:
    """The reference codecs (`codec.models.registry.reference_lineup`: Opus, Codec2), built
    (they need no weights), each keyed by its backend name ("opus", "codec2"); a
    `--codec NAME[@LABEL]` naming one relabels it. One whose library cannot be loaded is left
    out with a notice."""
    labels = {}
    for text in config.codecs:
        spec = CodecSpec.parse(text)
        if not get_backend(spec.backend).needs_weights:
            if spec.path is not None:
                raise CheckpointError(f"--codec {text}: {spec.backend} needs no weights")
            labels[spec.backend] = spec.label
    out = []
    for backend in reference_lineup():
        try:
            model = backend.open()
        except (ImportError, OSError) as e:  # a wheel without its native library
            notices.append(f"{backend.label} is unavailable ({e}); it is left out.")
            continue
        out.append(LoadedCodec(labels.get(backend.name) or backend.label, model, backend.name,
                               backend.name))  # fmt: skip
    return out
