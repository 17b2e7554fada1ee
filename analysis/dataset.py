"""The labelled clips analysis works on: Good-sounds or the demo set (same layout)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

from codec.data.goodsounds import GoodSoundsItem, load_goodsounds, split_by_sound

log = logging.getLogger(__name__)

DEFAULT_DATASET_ROOT = Path("data/demo")


def load_items(
    root: str | Path = DEFAULT_DATASET_ROOT,
    include_speech: bool = True,
    instruments: Sequence[str] | None = None,
) -> list[GoodSoundsItem]:
    """Single notes (one microphone per sound) plus, optionally, the demo set's speech clips.

    Scales are left out: a scale is not one pitch and would blur pitch groups and probes.

    Raises:
        FileNotFoundError: no database.sqlite under `root`. ValueError: the dataset is empty.
    """
    items = load_goodsounds(
        root, single_notes=False, one_mic_per_sound=True, instruments=instruments
    )
    keep = [
        it
        for it in items
        if not it.klass.startswith("scale") and (include_speech or it.klass != "speech")
    ]
    if not keep:
        raise ValueError(f"{root}: no single notes found (instruments={instruments})")
    log.info("%s: %d clips", root, len(keep))
    return keep


def heldout_items(
    items: Sequence[GoodSoundsItem],
    sound_ids: Sequence[int] | None = None,
    split_seed: int | None = None,
    test_fraction: float = 0.2,
) -> list[GoodSoundsItem]:
    """Held-out clips: those whose sound id is in `sound_ids`, else the test side of
    `split_by_sound(items, test_fraction, split_seed)` (grouped by sound, stratified by
    instrument). With neither given, every item is returned.

    Raises:
        ValueError: none of `sound_ids` is in `items`.
    """
    if sound_ids is not None:
        wanted = {int(s) for s in sound_ids}
        out = [it for it in items if it.sound_id in wanted]
        if not out:
            raise ValueError(f"none of the {len(wanted)} held-out sound ids is in the dataset")
        return out
    if split_seed is not None:
        return list(split_by_sound(items, test_fraction, split_seed).test)
    return list(items)


def unseen_sound_ids(root: str | Path, splits: Sequence[str] = ("val", "test")) -> list[int]:
    """Sound ids outside the training side of `codec.data`'s fixed 80/10/10 split of a
    Good-sounds-layout dataset (its "val" and "test" sounds): what a codec trained on that
    dataset never saw. Both parts are taken by default because on small sets the test part can
    be empty; `splits=("val",)` gives the part that model selection may use."""
    from codec.data import list_items

    return sorted({int(it.sound_id) for s in splits for it in list_items("goodsounds", root, s)})
