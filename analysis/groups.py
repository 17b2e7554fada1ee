"""Attribute groups over Good-sounds / demo items and their latent centroids.

A group is an instrument, optionally narrowed to a note name ("A") and an octave ("A3"),
written as text like "bass A3", "clarinet A6", "cello", "sax_alto C#4" or "sax alto Bb4".
Its centroid is the mean pooled latent of its sounds, one microphone per sound (a sound recorded
by three microphones must not weigh three times).

As a latent *sequence* (traversal waypoints) a group is its medoid note (the member whose
pooled latent is closest to the centroid) with its frames shifted so that their time-mean is
exactly the centroid: `frames_medoid - mean_t(frames_medoid) + centroid`. This keeps a real
note's temporal shape (attack, vibrato, decay) while standing at the group's centre; a centroid
broadcast over time would be a static, buzzing frame.
"""

from __future__ import annotations

import logging
import re
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from analysis.codec_ops import codec_identity, effective_window
from analysis.latents import DEFAULT_CACHE_DIR, extract_latents
from codec.data.goodsounds import NOTE_NAMES, midi_to_note
from codec.models.base import Codec

log = logging.getLogger(__name__)

_FLATS = {"DB": "C#", "EB": "D#", "GB": "F#", "AB": "G#", "BB": "A#", "CB": "B", "FB": "E"}
_SHARP_WRAP = {"E#": "F", "B#": "C"}
_NOTE_RE = re.compile(r"^([A-Ga-g])([#b♯♭]?)(-?\d+)?$")
_CENTROID_CACHE: OrderedDict[tuple, GroupCentroid] = OrderedDict()
_CENTROID_CACHE_SIZE = 64


class GroupError(ValueError):
    """A group that cannot be parsed, or that has no sounds (the message lists what exists)."""


@dataclass(frozen=True)
class AttributeGroup:
    """Instrument, optional note name (sharps, e.g. "C#") and optional octave."""

    instrument: str
    note: str | None = None
    octave: int | None = None

    @property
    def label(self) -> str:
        """Text form, e.g. "bass A3", "clarinet A", "cello", "flute octave 5"."""
        if self.note is None and self.octave is not None:
            return f"{self.instrument} octave {self.octave}"
        pitch = f"{self.note or ''}{'' if self.octave is None else self.octave}"
        return f"{self.instrument} {pitch}".strip()

    def matches(self, item: Any) -> bool:
        """True when a record (instrument, midi or note/octave attributes) is in the group."""
        if getattr(item, "instrument", None) != self.instrument:
            return False
        if self.note is None and self.octave is None:
            return True
        note, octave = item_pitch(item)
        if self.note is not None and note != self.note:
            return False
        return self.octave is None or octave == self.octave


def normalise_note(name: str) -> str:
    """ "Bb" -> "A#", "c#" -> "C#", "E#" -> "F". Raises GroupError for a non-note."""
    n = name.strip().replace("♯", "#").replace("♭", "b")
    if not n or n[0].upper() not in "ABCDEFG" or len(n) > 2 or (len(n) == 2 and n[1] not in "#b"):
        raise GroupError(f"{name!r} is not a note name (expected e.g. 'A', 'C#', 'Bb')")
    n = n[0].upper() + n[1:]
    n = _FLATS.get(n.upper(), n) if n.endswith("b") and len(n) == 2 else n
    return _SHARP_WRAP.get(n, n)


def item_pitch(item: Any) -> tuple[str | None, int | None]:
    """(note name, octave) of a record: from `midi` when present, else its note/octave fields."""
    midi = getattr(item, "midi", None)
    if midi is not None:
        return midi_to_note(int(midi))
    note = getattr(item, "note", None) or None
    if note is not None:
        try:
            note = normalise_note(note)
        except GroupError:
            note = None
    return note, getattr(item, "octave", None)


def parse_group(text: str, instruments: Iterable[str] | None = None) -> AttributeGroup:
    """Parse "bass A3" / "clarinet A6" / "cello" / "sax alto Bb" into an AttributeGroup.

    Args:
        text: instrument (words may be joined by spaces or underscores), then optionally a note
            name with optional octave.
        instruments: known instrument names; when given, an unknown one is an error listing them.

    Raises:
        GroupError: empty text, a malformed note, or an unknown instrument.
    """
    words = text.strip().split()
    if not words:
        raise GroupError("empty group; expected e.g. 'bass A3', 'clarinet A6' or 'cello'")
    note: str | None = None
    octave: int | None = None
    m = _NOTE_RE.match(words[-1]) if len(words) > 1 else None
    if m:
        note = normalise_note(m.group(1) + m.group(2))
        octave = int(m.group(3)) if m.group(3) is not None else None
        words = words[:-1]
    elif len(words) > 1 and re.search(r"\d", words[-1]):
        raise GroupError(f"{words[-1]!r} in {text!r} is not a note (expected e.g. 'A3', 'C#5')")
    instrument = "_".join(w.lower() for w in words)
    if instruments is not None:
        known = sorted(set(instruments))
        if instrument not in known:
            raise GroupError(
                f"unknown instrument {instrument!r} in {text!r}; known: {', '.join(known)}"
            )
    return AttributeGroup(instrument, note, octave)


def describe_groups(items: Sequence[Any]) -> dict[str, list[str]]:
    """{instrument: sorted pitches like ["A3", "C#4"]} over the records (what groups exist)."""
    out: dict[str, set[tuple[int, str]]] = {}
    for it in items:
        note, octave = item_pitch(it)
        bucket = out.setdefault(str(getattr(it, "instrument", "?")), set())
        if note is not None and octave is not None:
            bucket.add((octave * 12 + NOTE_NAMES.index(note), f"{note}{octave}"))
    return {k: [p for _, p in sorted(v)] for k, v in sorted(out.items())}


def select_group(items: Sequence[Any], group: AttributeGroup) -> list[Any]:
    """The group's records, one per sound id (the first take of each sound is kept).

    Raises:
        GroupError: no record matches; the message lists the instruments (and, for a known
            instrument, its pitches) that exist.
    """
    seen: set[Any] = set()
    out = []
    for it in items:
        if not group.matches(it):
            continue
        sid = getattr(it, "sound_id", None) or getattr(it, "path", None) or id(it)
        if sid in seen:
            continue
        seen.add(sid)
        out.append(it)
    if not out:
        avail = describe_groups(items)
        if group.instrument not in avail:
            raise GroupError(
                f"no sounds for {group.label!r}: unknown instrument {group.instrument!r}; "
                f"instruments: {', '.join(avail) or '(none)'}"
            )
        pitches = ", ".join(avail[group.instrument]) or "(no pitched notes)"
        raise GroupError(f"no sounds for {group.label!r}; {group.instrument} has: {pitches}")
    return out


@dataclass
class GroupCentroid:
    """A group's centroid and medoid for one codec at one window.

    Attributes:
        group: the attribute group.
        centroid: mean pooled latent of the members, `[D]`.
        pooled: members' pooled latents, `[M, D]`.
        members: the member records.
        medoid: index (into members) of the member closest to the centroid.
        medoid_frames: the medoid's latents `[T, D]`.
        medoid_num_samples: the medoid clip's length in samples.
    """

    group: AttributeGroup
    centroid: np.ndarray
    pooled: np.ndarray
    members: list[Any]
    medoid: int
    medoid_frames: np.ndarray
    medoid_num_samples: int

    def sequence(self) -> np.ndarray:
        """The group as a latent sequence `[T, D]`: medoid frames moved onto the centroid."""
        return self.medoid_frames - self.medoid_frames.mean(0, keepdims=True) + self.centroid


def group_centroid(
    codec: Codec,
    items: Sequence[Any],
    group: AttributeGroup | str,
    window: int | None = None,
    cache_dir: str | Path | None = DEFAULT_CACHE_DIR,
    progress: bool = False,
) -> GroupCentroid:
    """Centroid of a group's pooled latents (cached in memory; latents cached on disk).

    Raises:
        GroupError: the text does not parse or the group has no sounds.
    """
    if isinstance(group, str):
        group = parse_group(group, {getattr(it, "instrument", "") for it in items})
    members = select_group(items, group)
    win = effective_window(codec, window)
    key = (codec_identity(codec), win, group, tuple(str(getattr(m, "path", m)) for m in members))
    if key in _CENTROID_CACHE:
        _CENTROID_CACHE.move_to_end(key)
        return _CENTROID_CACHE[key]
    lat = extract_latents(codec, members, win, cache_dir=cache_dir, progress=progress)
    pooled = lat.pooled
    centroid = pooled.mean(0)
    medoid = int(np.argmin(((pooled - centroid) ** 2).sum(1)))
    clip = lat.clips[medoid]
    gc = GroupCentroid(group, centroid, pooled, members, medoid, clip.frames, clip.num_samples)
    _CENTROID_CACHE[key] = gc
    while len(_CENTROID_CACHE) > _CENTROID_CACHE_SIZE:
        _CENTROID_CACHE.popitem(last=False)
    log.info("centroid of %s over %d sounds (%s)", group.label, len(members), codec.name)
    return gc
