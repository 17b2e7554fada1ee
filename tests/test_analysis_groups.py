"""Attribute groups: parsing, selection (one mic per sound), centroids, errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from analysis.dataset import load_items
from analysis.groups import (
    AttributeGroup,
    GroupError,
    describe_groups,
    group_centroid,
    parse_group,
    select_group,
)
from analysis.latents import extract_latents
from codec.data.goodsounds import load_goodsounds
from tests.tiny_models import timbre_dataset, tiny_alm, tiny_encodec

torch.set_num_threads(1)
KNOWN = ("bass", "clarinet", "cello", "sax_alto", "speech_female")


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return timbre_dataset(
        tmp_path_factory.mktemp("gs"), ("bass", "clarinet", "cello"), (45, 57, 60, 93),
        microphones=("neumann", "akg"),
    )  # fmt: skip


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("bass A3", AttributeGroup("bass", "A", 3)),
        ("clarinet A6", AttributeGroup("clarinet", "A", 6)),
        ("cello", AttributeGroup("cello", None, None)),
        ("  Cello  a ", AttributeGroup("cello", "A", None)),
        ("sax alto Bb4", AttributeGroup("sax_alto", "A#", 4)),
        ("sax_alto c#5", AttributeGroup("sax_alto", "C#", 5)),
        ("bass Cb3", AttributeGroup("bass", "B", 3)),
        ("bass E#-1", AttributeGroup("bass", "F", -1)),
        ("speech_female", AttributeGroup("speech_female")),
    ],
)
def test_parse(text: str, expected: AttributeGroup) -> None:
    assert parse_group(text, KNOWN) == expected


def test_labels_round_trip() -> None:
    for text in ("bass A3", "clarinet A", "cello", "sax_alto C#5"):
        assert parse_group(parse_group(text).label) == parse_group(text)
    assert AttributeGroup("flute", None, 5).label == "flute octave 5"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty group"),
        ("   ", "empty group"),
        ("bass H3", "not a note"),
        ("bass A3x", "not a note"),
        ("kazoo A3", "unknown instrument 'kazoo'.*known: bass, cello"),
        ("bass 3", "not a note"),
    ],
)
def test_parse_errors(text: str, message: str) -> None:
    with pytest.raises(GroupError, match=message):
        parse_group(text, KNOWN)


def test_select_one_take_per_sound_and_matching(root: Path) -> None:
    takes = load_goodsounds(root, one_mic_per_sound=False)
    assert len(takes) == 2 * 12  # two microphones per sound
    bass_a = select_group(takes, parse_group("bass A"))
    assert [(it.instrument, it.midi) for it in bass_a] == [("bass", 45), ("bass", 57), ("bass", 93)]
    assert len({it.sound_id for it in bass_a}) == len(bass_a) == 3
    assert [it.midi for it in select_group(takes, parse_group("bass A3"))] == [57]
    assert len(select_group(takes, parse_group("cello"))) == 4


def test_empty_group_lists_what_exists(root: Path) -> None:
    items = load_items(root)
    with pytest.raises(GroupError, match=r"no sounds for 'bass G#4'; bass has: A2, A3, C4, A6"):
        select_group(items, parse_group("bass G#4"))
    with pytest.raises(
        GroupError, match="unknown instrument 'flute'; instruments: bass, cello, clarinet"
    ):
        select_group(items, AttributeGroup("flute"))
    assert describe_groups(items)["clarinet"] == ["A2", "A3", "C4", "A6"]


def test_centroid_is_mean_pooled_latent_and_medoid_sequence_sits_on_it(
    root: Path, tmp_path: Path
) -> None:
    items = load_items(root)
    for codec in (tiny_alm(), tiny_encodec()):
        gc = group_centroid(codec, items, "clarinet", window=4, cache_dir=tmp_path)
        members = [it for it in items if it.instrument == "clarinet"]
        lat = extract_latents(codec, members, 4, cache_dir=tmp_path, progress=False)
        assert lat.hits == len(members)  # the centroid's latents were cached on disk
        np.testing.assert_allclose(gc.centroid, lat.pooled.mean(0), rtol=1e-5, atol=1e-6)
        d = ((lat.pooled - gc.centroid) ** 2).sum(1)
        assert gc.medoid == int(np.argmin(d))
        seq = gc.sequence()
        assert seq.shape == lat.clips[gc.medoid].frames.shape
        np.testing.assert_allclose(seq.mean(0), gc.centroid, rtol=1e-4, atol=1e-5)
        # in-memory cache: the same object comes back
        assert group_centroid(codec, items, "clarinet", window=4, cache_dir=tmp_path) is gc
    with pytest.raises(GroupError, match="unknown instrument"):
        group_centroid(tiny_alm(), items, "oboe", window=4, cache_dir=None)
