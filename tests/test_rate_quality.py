"""The rate-quality chart: one line per codec through its settings, the clean original as the
ceiling, the current settings ringed, published points apart from measured ones."""

from __future__ import annotations

import json
import math
from pathlib import Path
from types import SimpleNamespace

import pytest

from analysis.rate_quality import LiteraturePoint, figure, load_rows, plot_png
from codec.models.base import WINDOWS, CodecSetting

ROWS = [
    {"codec": "clean", "setting": "original", "bitrate": math.nan, "visqol": 4.73,
     "pitch_accuracy": 1.0, "recognised_as_source": 0.6, "dnsmos_ovrl": 3.1},
    {"codec": "almtokenizer", "setting": "w=6", "bitrate": 412.5, "visqol": 3.3,
     "pitch_accuracy": 0.6, "recognised_as_source": 0.2, "dnsmos_ovrl": 1.3},
    {"codec": "almtokenizer", "setting": "w=3", "bitrate": 825.0, "visqol": 3.4,
     "pitch_accuracy": 0.7, "recognised_as_source": 0.25, "dnsmos_ovrl": math.nan},
    {"codec": "opus", "setting": "6 kbps", "bitrate": 6100.0, "visqol": 3.0,
     "pitch_accuracy": 0.9, "recognised_as_source": 0.3, "dnsmos_ovrl": 2.3},
]  # fmt: skip


def test_one_line_per_codec_sorted_by_bitrate_with_the_ceiling() -> None:
    fig = figure(ROWS, marks={"almtokenizer": "w=3"})
    lines = [t for t in fig.data if t.mode == "lines+markers"]
    assert {t.name for t in lines} == {"almtokenizer", "opus"}  # "clean" is not a codec line
    alm_visqol = next(t for t in lines if t.name == "almtokenizer" and t.xaxis == "x")
    assert list(alm_visqol.x) == [412.5, 825.0] and list(alm_visqol.y) == [3.3, 3.4]
    rings = [t for t in fig.data if t.mode == "markers" and t.marker.size == 16]
    assert rings and all(list(t.x) == [825.0] for t in rings)
    ceilings = [s for s in fig.layout.shapes if s.line.dash == "dash"]
    assert {round(s.y0, 2) for s in ceilings} == {4.73, 1.0, 0.6, 3.1}
    assert all(ax.type == "log" for ax in (fig.layout.xaxis, fig.layout.xaxis4))
    # a NaN (DNSMOS of a row without speech) is left out of its panel, not drawn as 0
    dnsmos = next(t for t in lines if t.name == "almtokenizer" and t.xaxis == "x4")
    assert list(dnsmos.x) == [412.5]


def test_published_points_are_marked_apart(tmp_path: Path) -> None:
    lit = [LiteraturePoint("EnCodec", 1500, "visqol", 3.9, "a paper, Table 1")]
    fig = figure(ROWS, literature=lit)
    pub = [t for t in fig.data if t.name == "published (not measured here)"]
    assert len(pub) == 1 and pub[0].marker.symbol == "diamond-open"
    assert "a paper" in pub[0].text[0]
    png = plot_png(ROWS, tmp_path / "c.png", {"opus": "6 kbps"}, lit)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_load_rows_reads_an_evaluation_and_refuses_anything_else(tmp_path: Path) -> None:
    good = tmp_path / "results.json"
    good.write_text(json.dumps({"rows": [{**ROWS[1], "dnsmos_ovrl": None}]}))
    rows = load_rows(good)
    assert rows[0]["setting"] == "w=6" and math.isnan(rows[0]["dnsmos_ovrl"])
    bad = tmp_path / "other.json"
    bad.write_text(json.dumps([1, 2]))
    with pytest.raises(ValueError, match="not an `analysis evaluate` results.json"):
        load_rows(bad)


def test_app_marks_follow_the_controls() -> None:
    from app.tabs.rate_chart import marks

    studio = SimpleNamespace(codecs=[
        SimpleNamespace(key="almtokenizer", setting=CodecSetting("window", WINDOWS, 6)),
        SimpleNamespace(key="encodec", setting=CodecSetting("bandwidth", (1.5, 3.0, 6.0), 1.5)),
    ])  # fmt: skip
    got = marks(studio, ["almtokenizer", "encodec"], [3, "6"])  # type: ignore[arg-type]
    assert got == {"almtokenizer": "w=3", "encodec": "6 kbps"}
    assert marks(studio, ["almtokenizer"], [99]) == {}  # type: ignore[arg-type]


def test_encodec_at_one_codebook_is_ringed_at_750_bits_per_second() -> None:
    """A checkpoint offering 0.75 kbps: its control's mark names the row that `analysis
    evaluate` writes for it ("0.75 kbps", 750 bit/s), and the chart rings that point."""
    from app.tabs.rate_chart import marks

    bws = (0.75, 1.5, 3.0, 6.0)
    studio = SimpleNamespace(codecs=[
        SimpleNamespace(key="encodec", setting=CodecSetting("bandwidth", bws, 0.75)),
    ])  # fmt: skip
    got = marks(studio, ["encodec"], ["0.75"])  # type: ignore[arg-type]
    assert got == {"encodec": "0.75 kbps"}
    rows = ROWS + [
        {"codec": "encodec", "setting": CodecSetting("bandwidth", bws).label(b),
         "bitrate": 1000.0 * b, "visqol": 2.0 + b / 6, "pitch_accuracy": 0.5,
         "recognised_as_source": 0.2, "dnsmos_ovrl": math.nan}
        for b in bws
    ]  # fmt: skip
    fig = figure(rows, marks=got)
    line = next(t for t in fig.data if t.name == "encodec" and t.xaxis == "x")
    assert list(line.x) == [750.0, 1500.0, 3000.0, 6000.0] and line.text[0] == "0.75 kbps"
    rings = [t for t in fig.data if t.mode == "markers" and t.marker.size == 16]
    assert rings and all(list(t.x) == [750.0] for t in rings)
