"""Which token LM continues which codec of a line-up: `--lm CODEC=CKPT`, else the default
checkpoints `<lm_dir>/lm_<codec key>_*`.

    pairs, skipped = pair_lms(lineup, {"almtokenizer": Path("work_dirs/lm/alm_w3/best")},
                              Path("checkpoints"), asked={"encodec"})
    results = continue_each(pairs, clip, prompt_seconds=1.0, seconds=3.0, top_k=50, seed=0)

An LM folder is one with `config.json`, or a training folder whose `best/`, `final/` or
`latest/` is one (the first present, in that order). Among a codec's default candidates (sorted
by name) the first trained on that very codec (`load_codec_lm` accepts it) is used; the others
are passed over. A codec with no usable LM is skipped with a one-line reason, or, when the user
asked for it (`asked` holds its key or backend), that reason is an error. An LM given with
`--lm` that was trained on another codec is always an error (`TokenizerMismatchError`).
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from analysis.continuation import Continuation, continue_clip, load_codec_lm
from analysis.models import LoadedCodec
from codec.checkpoint import CONFIG_NAME, CheckpointError
from codec.lm import TokenizerMismatchError, TokenLM

log = logging.getLogger(__name__)

DEFAULT_LM_DIR = Path("checkpoints")
TRAINING_SUBFOLDERS = ("best", "final", "latest")


@dataclass(eq=False)
class CodecLM:
    """A codec of the line-up with the token LM that continues it."""

    codec: LoadedCodec
    lm: TokenLM
    path: Path

    @property
    def key(self) -> str:
        return self.codec.key

    def describe(self) -> str:
        """ "ALMTokenizer + LM checkpoints/lm_almtokenizer_w3 (window 3, 3 x 2048 at 25 Hz)"."""
        rec = self.lm.tokenizer
        setting = ""
        if rec is not None:
            what = f"window {rec.window}, " if rec.window is not None else ""
            if rec.window is None and rec.bandwidth is not None:
                what = f"{rec.bandwidth:g} kbps, "
            setting = f" ({what}{rec.n_q} x {rec.codebook_size} at {rec.frame_rate:g} Hz)"
        return f"{self.codec.label} + LM {self.path}{setting}"


def parse_lm_spec(text: str) -> tuple[str, Path]:
    """ "CODEC=CKPT" -> (codec key or backend name, path).

    Raises:
        ValueError: no "=", or an empty side.
    """
    name, sep, path = text.partition("=")
    if not sep or not name.strip() or not path.strip():
        raise ValueError(
            f"expected CODEC=CHECKPOINT (e.g. almtokenizer=work_dirs/lm/best), got {text!r}"
        )
    return name.strip(), Path(path.strip())


def lm_folder(path: Path) -> Path:
    """`path` when it holds an LM's config.json, else its first `best/`, `final/`, `latest/`
    that does (else `path`, for the loader to name what is missing)."""
    if (path / CONFIG_NAME).is_file():
        return path
    for sub in TRAINING_SUBFOLDERS:
        if (path / sub / CONFIG_NAME).is_file():
            return path / sub
    return path


def default_candidates(key: str, lm_dir: Path) -> list[Path]:
    """`lm_dir/lm_<key>_*` folders, sorted by name."""
    if not lm_dir.is_dir():
        return []
    return sorted(p for p in lm_dir.glob(f"lm_{key}_*") if p.is_dir())


def _first_matching(c: LoadedCodec, candidates: Sequence[Path]) -> tuple[CodecLM | None, str]:
    reasons = []
    for path in candidates:
        folder = lm_folder(path)
        try:
            return CodecLM(c, load_codec_lm(folder, c.codec), folder), ""
        except (CheckpointError, TokenizerMismatchError) as e:
            log.debug("%s: passing over %s: %s", c.key, folder, e)
            reasons.append(f"{folder.name}: {e}")
    return None, "; ".join(reasons)


def _explicit_for(c: LoadedCodec, explicit: Mapping[str, Path]) -> Path | None:
    if c.key in explicit:
        return explicit[c.key]
    return explicit.get(c.backend)


def pair_lms(
    lineup: Sequence[LoadedCodec],
    explicit: Mapping[str, Path],
    lm_dir: Path = DEFAULT_LM_DIR,
    asked: Collection[str] = (),
) -> tuple[list[CodecLM], list[str]]:
    """Each codec of `lineup` with its LM, and one line per codec skipped.

    Args:
        explicit: codec key or backend name -> LM folder (`--lm`).
        lm_dir: where default LMs are looked up (`lm_<key>_*`).
        asked: keys or backend names the user named; a miss for one of them is an error.

    Raises:
        ValueError: an `explicit` name matches no codec of the line-up, or a codec the user
            asked for has no usable LM.
        TokenizerMismatchError, CheckpointError: an `explicit` LM is unusable for its codec.
    """
    names = {c.key for c in lineup} | {c.backend for c in lineup}
    unknown = sorted(set(explicit) - names)
    if unknown:
        raise ValueError(
            f"--lm names {', '.join(unknown)}, not in the line-up "
            f"({', '.join(c.key for c in lineup)})"
        )
    pairs, skipped = [], []
    for c in lineup:
        path = _explicit_for(c, explicit)
        if path is not None:
            pairs.append(CodecLM(c, load_codec_lm(lm_folder(path), c.codec), lm_folder(path)))
            continue
        candidates = default_candidates(c.key, lm_dir)
        pair, why = _first_matching(c, candidates)
        if pair is not None:
            log.info("%s: using LM %s", c.key, pair.path)
            pairs.append(pair)
            continue
        where = f"{lm_dir}/lm_{c.key}_*"
        reason = (
            f"{c.key}: no token LM ({where} matches nothing; give --lm {c.key}=CHECKPOINT)"
            if not candidates
            else f"{c.key}: no token LM trained on this codec in {where} ({why})"
        )
        if c.key in asked or c.backend in asked:
            raise ValueError(reason)
        skipped.append(f"skipped {reason}")
    return pairs, skipped


def continue_each(
    pairs: Sequence[CodecLM], clip: torch.Tensor, **settings: Any
) -> dict[str, Continuation]:
    """`continue_clip` of `clip` `[1, 1, N]` with every pair, keyed by codec key (the settings:
    prompt_seconds, seconds, temperature, top_k, seed, max_seconds)."""
    return {p.key: continue_clip(p.codec.codec, p.lm, clip, **settings) for p in pairs}
