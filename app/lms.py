"""The token LMs that continue the app's codecs on the Continue tab, paired once at start-up.

Each codec of the line-up gets the LM given with `--lm CODEC=PATH` (CODEC: its key or backend
name; PATH: an LM folder, or a training folder whose `best/`, `final/` or `latest/` is one),
else the first `<lm_dir>/lm_<codec key>_*` trained on that very codec. The pairing is
`analysis.continuation_lms.pair_lms`'s, run one codec at a time so that one refusal never
costs another codec its LM:

- an LM given with `--lm` but trained on another codec (or a damaged folder) is refused with
  the loader's error, which names the codec and both checkpoint hashes; it becomes a page
  banner and a log warning, and the app starts without that LM;
- a `--lm` name that matches no codec of the line-up is a banner too;
- a codec with no usable LM gets one line (shown in its place on the tab) saying so and how
  to give one.

The model math (loading, the tokenizer check, generation) is `analysis.continuation`'s.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from analysis.continuation_lms import CodecLM, pair_lms
from analysis.models import LoadedCodec
from app.lineup import shown_path
from codec.checkpoint import CheckpointError
from codec.lm import TokenizerMismatchError

log = logging.getLogger(__name__)


def how_to_give(key: str) -> str:
    """How a user gives codec `key` an LM (the tail of every "no LM" line)."""
    return (
        f"start the app with `--lm {key}=PATH` (an LM folder), or train one: `python -m "
        "codec.lm` (docs/lm.md)"
    )


@dataclass
class LineupLMs:
    """The line-up's codecs paired with their token LMs.

    Attributes:
        pairs: codec key -> its codec and LM, in line-up order.
        missing: codec key -> one line saying why it has no LM and how to give one.
    """

    pairs: dict[str, CodecLM] = field(default_factory=dict)
    missing: dict[str, str] = field(default_factory=dict)

    def get(self, key: str) -> CodecLM | None:
        return self.pairs.get(key)


def _missing_line(entry: LoadedCodec, skipped: str, lm_dir: Path) -> str:
    """ "EnCodec has no token LM (no checkpoints/lm_encodec_* found): start the app ..."."""
    reason = f"no {shown_path(lm_dir)}/lm_{entry.key}_* found"
    if "trained on this codec" in skipped:  # candidates exist, none made for this codec
        reason = (
            f"none of {shown_path(lm_dir)}/lm_{entry.key}_* was trained on this codec's checkpoint"
        )
    return f"{entry.label} has no token LM ({reason}): {how_to_give(entry.key)}."


def load_lms(
    codecs: Sequence[LoadedCodec],
    explicit: Sequence[tuple[str, Path]],
    lm_dir: Path,
    notices: list[str],
) -> LineupLMs:
    """Pair every codec of `codecs` with its LM; refusals and unknown names go to `notices`.

    Args:
        codecs: the line-up (codecs with codes).
        explicit: (codec key or backend name, LM path) per `--lm`; a repeated name: the last.
        lm_dir: where default LMs are looked up (`lm_<codec key>_*`).
        notices: the page's banner lines (appended to).
    """
    given = dict(explicit)
    names = {c.key for c in codecs} | {c.backend for c in codecs}
    for name in sorted(set(given) - names):
        keys = ", ".join(c.key for c in codecs)
        notices.append(
            f"--lm {name}={given[name]}: no codec {name!r} in the line-up ({keys}); ignored."
        )
    out = LineupLMs()
    for entry in codecs:
        mine = {n: p for n, p in given.items() if n in (entry.key, entry.backend)}
        try:
            pairs, skipped = pair_lms([entry], mine, lm_dir)
        except (TokenizerMismatchError, CheckpointError) as e:
            name = entry.key if entry.key in mine else entry.backend
            notices.append(
                f"--lm {name}={mine[name]} refused for {entry.label}: {e}. The app runs "
                f"without it: {entry.label} has no continuation."
            )
            out.missing[entry.key] = (
                f"{entry.label} has no token LM: the one given with --lm was refused at "
                f"start-up (see the banner); {how_to_give(entry.key)}."
            )
            continue
        if pairs:
            out.pairs[entry.key] = pairs[0]
            log.info("Continue tab: %s", pairs[0].describe())
        else:
            out.missing[entry.key] = _missing_line(entry, " ".join(skipped), lm_dir)
            log.info("Continue tab: %s", out.missing[entry.key])
    return out
