"""The corpus builder on a tiny corpus generated here: a zip-in-.pk3 with an Ogg inside, an Opus
file, a broken header, a duplicate, silence, a long file, and a SoundFont whose sample header
says pitch 60 while its instrument zone says 69; an extra source (like opl3-render) built into
its own folder, and reserved soundfonts refused by file name and by INAM."""

from __future__ import annotations

import logging
import shutil
import struct
import zipfile
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from codec.data import list_items
from codec.data.corpus import (
    DEFAULT_SOURCES,
    EXTRA_SOURCES,
    RESERVED_PACKAGES,
    Rule,
    Source,
    read_manifest,
)
from codec.data.corpus.__main__ import main as corpus_main
from codec.data.corpus.build import build
from codec.data.corpus.clips import MAX_CLIP_S, SAMPLE_RATE, cut, sounding_regions
from codec.data.corpus.manifest import MANIFEST_NAME
from codec.data.corpus.sf2 import pitched_samples, read_soundfont
from codec.data.corpus.sources import (
    CATEGORIES,
    OPL3_SF2,
    check_sources,
    is_reserved_name,
    package_files,
    source_by_name,
)
from codec.data.corpus.synth import preset_label, render_grid
from codec.data.corpus.tasks import plan_source

RNG_SEED = 1234


def _burst(seconds: float, sr: int, freq: float, seed: int) -> np.ndarray:
    """A tone with a little noise: distinct content per (freq, seed)."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sr)) / sr
    return (0.3 * np.sin(2 * np.pi * freq * t) + 0.01 * rng.standard_normal(t.size)).astype(
        np.float32
    )


def write_sf2(
    path: Path,
    pcm: np.ndarray,
    sr: int,
    header_pitch: int = 60,
    root_key: int | None = 69,
    preset: str = "Tone",
    inam: str = "test",
) -> Path:
    """A minimal SoundFont 2 named `inam`: preset `preset` (bank 0, program 0) -> one instrument
    zone (keys 60-80, optional overridingRootKey) -> one sample whose header pitch is
    `header_pitch`."""

    def chunk(cid: bytes, body: bytes) -> bytes:
        pad = b"\0" if len(body) % 2 else b""
        return cid + struct.pack("<I", len(body)) + body + pad

    def lst(kind: bytes, body: bytes) -> bytes:
        return chunk(b"LIST", kind + body)

    def name(s: str) -> bytes:
        return s.encode().ljust(20, b"\0")

    n = len(pcm)
    info = chunk(b"ifil", struct.pack("<HH", 2, 1)) + chunk(b"isng", b"EMU8000\0")
    info += chunk(b"INAM", inam.encode() + b"\0\0")
    smpl = chunk(b"smpl", pcm.astype("<i2").tobytes() + b"\0" * 92)
    igens = [(43, 60 | (80 << 8))] + ([(58, root_key)] if root_key is not None else []) + [(53, 0)]
    pdta = b"".join([
        chunk(b"phdr", struct.pack("<20sHHHIII", name(preset), 0, 0, 0, 0, 0, 0)
              + struct.pack("<20sHHHIII", name("EOP"), 0, 0, 1, 0, 0, 0)),
        chunk(b"pbag", struct.pack("<HH", 0, 0) + struct.pack("<HH", 2, 0)),
        chunk(b"pmod", b"\0" * 10),
        chunk(b"pgen", struct.pack("<HH", 43, 60 | (80 << 8)) + struct.pack("<HH", 41, 0)
              + struct.pack("<HH", 0, 0)),
        chunk(b"inst", struct.pack("<20sH", name("ToneInst"), 0)
              + struct.pack("<20sH", name("EOI"), 1)),
        chunk(b"ibag", struct.pack("<HH", 0, 0) + struct.pack("<HH", len(igens), 0)),
        chunk(b"imod", b"\0" * 10),
        chunk(b"igen", b"".join(struct.pack("<HH", o, a) for o, a in igens)
              + struct.pack("<HH", 0, 0)),
        chunk(b"shdr", struct.pack("<20sIIIIIBbHH", name("Tone A4"), 0, n, 0, n, sr,
                                   header_pitch, 0, 0, 1)
              + struct.pack("<20sIIIIIBbHH", name("EOS"), 0, 0, 0, 0, 0, 0, 0, 0, 0)),
    ])  # fmt: skip
    body = b"sfbk" + lst(b"INFO", info) + lst(b"sdta", smpl) + lst(b"pdta", pdta)
    path.write_bytes(b"RIFF" + struct.pack("<I", len(body)) + body)
    return path


@pytest.fixture(scope="module")
def fixture_sources(tmp_path_factory: pytest.TempPathFactory) -> tuple[Source, ...]:
    """Four tiny sources in a temporary folder (see the module docstring)."""
    root = tmp_path_factory.mktemp("packages")
    speech = root / "speech"
    (speech / "fr").mkdir(parents=True)
    # two words separated by 1.5 s of silence -> two clips
    words = np.concatenate(
        [
            _burst(0.6, 22050, 300, 1),
            np.zeros(int(1.5 * 22050), np.float32),
            _burst(0.8, 22050, 350, 2),
        ]
    )
    sf.write(speech / "fr" / "words.wav", words, 22050)
    shutil.copy(speech / "fr" / "words.wav", speech / "fr" / "words_copy.wav")  # duplicate
    sf.write(speech / "fr" / "silence.wav", np.zeros(16000, np.float32), 8000)
    (speech / "fr" / "broken.wav").write_bytes(b"RIFF\x10\x00\x00\x00WAVEjunkjunkjunk" + bytes(64))
    sf.write(speech / "long.flac", _burst(25.0, 16000, 220, 3), 16000)  # one 25 s region
    music = root / "music"
    music.mkdir()
    sf.write(music / "theme.opus", _burst(3.0, 48000, 440, 4), 48000, format="OGG", subtype="OPUS")
    game = root / "game"
    game.mkdir()
    ogg = game / "bang.ogg"
    sf.write(ogg, _burst(1.0, 44100, 880, 5), 44100, format="OGG", subtype="VORBIS")
    with zipfile.ZipFile(game / "0snd.pk3", "w") as z:
        z.write(ogg, "sound/weapons/bang.ogg")
        z.writestr("sound/readme.txt", "not audio")
    ogg.unlink()
    sfdir = root / "sf2"
    sfdir.mkdir()
    pcm = (_burst(0.5, 32000, 440, 6) * 32767).astype(np.int16)
    write_sf2(sfdir / "tone.sf2", pcm, 32000)
    return (
        Source("t-speech", "t-speech-pkg", "files", "speech", "GPL-2+", roots=(str(speech),),
               rules=(Rule(r"long", category="music", licence="CC0"),)),
        Source("t-music", "t-music-pkg", "files", "music", "CC-BY-3.0", roots=(str(music),)),
        Source("t-zip", "t-zip-pkg", "zip", "effects", "GPL-2", roots=(str(game),)),
        Source("t-sf2", "t-sf2-pkg", "sf2", "notes", "MIT", roots=(str(sfdir / "tone.sf2"),)),
    )  # fmt: skip


@pytest.fixture(scope="module")
def corpus(fixture_sources: tuple[Source, ...], tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("corpus")
    build(out, fixture_sources, jobs=1, leak_guard=False, progress=False)
    return out


def test_manifest_fields_and_audio(corpus: Path) -> None:
    rows = read_manifest(corpus)
    assert {r.source for r in rows} == {"t-speech", "t-music", "t-zip", "t-sf2"}
    for r in rows:
        assert r.category in CATEGORIES and r.licence and r.package and r.group.startswith(r.source)
        info = sf.info(str(corpus / r.path))
        assert (info.samplerate, info.channels) == (SAMPLE_RATE, 1)
        assert abs(info.frames / SAMPLE_RATE - r.duration) < 1e-3
        assert 0 < r.duration <= MAX_CLIP_S
    by_source = {r.source: r for r in rows}
    zipped = by_source["t-zip"]
    assert zipped.group == "t-zip:0snd.pk3/sound/weapons/bang.ogg" and zipped.category == "effects"
    assert by_source["t-music"].group.endswith("theme.opus")
    note = by_source["t-sf2"]
    assert (note.midi, note.program, note.instrument) == (69, 0, "ToneInst")  # zone, not header


def test_silence_is_dropped_and_files_are_cut(corpus: Path) -> None:
    rows = read_manifest(corpus)
    words = [r for r in rows if r.group == "t-speech:fr/words.wav"]
    assert len(words) == 2  # the 1.5 s pause splits the file; silence itself is not kept
    assert sum(r.duration for r in words) < 2.0
    assert words[1].start > words[0].start + 1.5
    long = [r for r in rows if r.group == "t-speech:long.flac"]
    assert len(long) == 3 and all(r.duration <= MAX_CLIP_S for r in long)
    assert {(r.category, r.licence) for r in long} == {("music", "CC0")}  # per-path rule
    assert not [r for r in rows if "silence" in r.group]


def test_duplicates_are_dropped(corpus: Path) -> None:
    rows = read_manifest(corpus)
    assert len({r.sha1 for r in rows}) == len(rows)
    assert not [r for r in rows if "words_copy" in r.group]


def test_broken_file_is_skipped_with_a_log_line(
    fixture_sources: tuple[Source, ...], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="codec.data.corpus"):
        report = build(tmp_path, fixture_sources[:1], leak_guard=False, progress=False)
    assert any("broken.wav" in s for s in report.skipped)
    assert any("skip" in m and "broken.wav" in m for m in caplog.messages)
    assert report.duplicates == 2  # words_copy.wav: both of its clips


def test_build_is_deterministic(
    fixture_sources: tuple[Source, ...], corpus: Path, tmp_path: Path
) -> None:
    """Another folder and two worker processes: the same manifest, byte for byte."""
    build(tmp_path, fixture_sources, jobs=2, leak_guard=False, progress=False)
    assert (tmp_path / MANIFEST_NAME).read_bytes() == (corpus / MANIFEST_NAME).read_bytes()


def test_manifest_is_written_last(
    fixture_sources: tuple[Source, ...], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A build that dies half-way leaves no manifest, so nobody trains on a partial corpus."""
    import codec.data.corpus.build as B

    calls, real = [], B.run_task

    def dying(task, root):  # noqa: ANN001, ANN202
        calls.append(task)
        if len(calls) > 3:  # broken, silence, words: then it dies
            raise KeyboardInterrupt
        return real(task, root)

    monkeypatch.setattr(B, "run_task", dying)
    with pytest.raises(KeyboardInterrupt):
        build(tmp_path, fixture_sources, leak_guard=False, progress=False)
    assert list(tmp_path.rglob("*.flac")) and not (tmp_path / MANIFEST_NAME).exists()


def test_reserved_packages_are_never_built(tmp_path: Path) -> None:
    assert set(RESERVED_PACKAGES) == {
        "timgm6mb-soundfont", "musescore-general-soundfont", "fillets-ng-data-nl", "qabcs-data",
    }  # fmt: skip
    assert not {s.package for s in DEFAULT_SOURCES} & set(RESERVED_PACKAGES)
    check_sources(DEFAULT_SOURCES)
    for pkg in RESERVED_PACKAGES:
        bad = Source("x", pkg, "files", "speech", "?", roots=(str(tmp_path),))
        with pytest.raises(ValueError, match="reserved"):
            build(tmp_path, [bad], leak_guard=False, progress=False)
        with pytest.raises(ValueError, match="reserved"):
            package_files(pkg)
    assert not (tmp_path / MANIFEST_NAME).exists()


def test_default_sources_cover_the_issue() -> None:
    packages = {s.package for s in DEFAULT_SOURCES}
    for pkg in ("fluid-soundfont-gm", "fillets-ng-data-cs", "klettres-data", "ktuberling-data",
                "gcin-voice", "ufoai-sound", "hedgewars-data", "scratch", "colobot-common-sounds",
                "avldrums.lv2-soundfont", "hydrogen-drumkits-effects", "warzone2100-music",
                "wesnoth-1.16-music", *(f"asterisk-core-sounds-{x}-wav"
                                        for x in ("en", "es", "fr", "it", "ru"))):  # fmt: skip
        assert pkg in packages
    assert {s.kind for s in DEFAULT_SOURCES if s.package == "fluid-soundfont-gm"} == {
        "sf2",
        "render",
    }
    fillets = next(s for s in DEFAULT_SOURCES if s.package == "fillets-ng-data-cs")
    assert fillets.include == r"/cs/"  # never the Dutch (reserved) voices in the same tree


def test_sf2_pitch_comes_from_the_zone(tmp_path: Path) -> None:
    pcm = (_burst(0.2, 22050, 440, 7) * 32767).astype(np.int16)
    with_root = read_soundfont(write_sf2(tmp_path / "a.sf2", pcm, 22050, 60, 69))
    without = read_soundfont(write_sf2(tmp_path / "b.sf2", pcm, 22050, 64, None))
    assert [p.midi for p in pitched_samples(with_root)] == [69]
    assert [p.midi for p in pitched_samples(without)] == [64]  # header pitch as the fallback
    np.testing.assert_allclose(with_root.read_sample(with_root.samples[0]), pcm / 32768.0)
    assert with_root.key_range(0, 0) == (60, 80) and with_root.samples_for_note(0, 0, 59) == set()


def test_leak_guard_leaves_out_demo_eval_notes(fixture_sources: tuple[Source, ...]) -> None:
    sf2 = fixture_sources[3].roots[0]
    render = Source("t-render", "t-sf2-pkg", "render", "notes", "MIT", roots=(sf2,))
    free = {t.midi for t in plan_source(render, set())}
    guarded = {t.midi for t in plan_source(render, {(0, 69)})}
    assert 69 in free and guarded == free - {69}
    assert plan_source(fixture_sources[3], {(0, 69)}) == []  # the raw sample plays A4 too
    assert len(plan_source(fixture_sources[3], {(0, 90)})) == 1


def test_demo_eval_notes_are_found() -> None:
    from codec.data.corpus.leakguard import demo_eval_notes

    notes = demo_eval_notes()
    assert len(notes) > 20 and all(0 <= p < 128 and 0 <= m < 128 for p, m in notes)


def test_rendered_notes_have_three_velocities(
    fixture_sources: tuple[Source, ...], tmp_path: Path
) -> None:
    pytest.importorskip("tinysoundfont")
    render = Source("t-render", "t-sf2-pkg", "render", "notes", "MIT",
                    roots=(fixture_sources[3].roots[0],))  # fmt: skip
    build(tmp_path, [render], leak_guard=False, progress=False)
    rows = read_manifest(tmp_path)
    a4 = [r for r in rows if r.midi == 69]
    assert sorted(r.velocity for r in a4) == [48, 80, 112]
    assert len({r.group for r in a4}) == 1


def test_regions_and_cuts() -> None:
    x = np.zeros(SAMPLE_RATE * 3, np.float32)
    x[SAMPLE_RATE : 2 * SAMPLE_RATE] = 0.5
    (a, b), = sounding_regions(x)  # fmt: skip
    assert (
        abs(a - SAMPLE_RATE) <= 0.06 * SAMPLE_RATE
        and abs(b - 2 * SAMPLE_RATE) <= 0.06 * SAMPLE_RATE
    )
    long = np.full(int(SAMPLE_RATE * 21), 0.1, np.float32)
    pieces = cut(long)
    assert len(pieces) == 3 and sum(len(p) for _, p in pieces) == len(long)
    assert sounding_regions(np.zeros(SAMPLE_RATE, np.float32)) == []


def test_cli_stats_and_list(corpus: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert corpus_main(["stats", "--out", str(corpus)]) == 0
    out = capsys.readouterr().out
    assert "speech" in out and "t-zip-pkg" in out and "total" in out
    assert corpus_main(["list"]) == 0
    out = capsys.readouterr().out
    assert "warzone2100-music" in out and "reserved (never built): timgm6mb-soundfont" in out
    assert corpus_main(["stats", "--out", str(corpus / "nope")]) == 2
    assert "no corpus manifest" in capsys.readouterr().err


def test_heldout_pitches_are_off_the_demo_grid() -> None:
    from codec.data.corpus.heldout import SOUNDFONTS, off_grid
    from codec.data.corpus.leakguard import load_render_demo

    rd = load_render_demo()
    for _, lo, hi in rd.INSTRUMENTS.values():
        pitches = off_grid(lo, hi)
        assert pitches and not set(pitches) & set(rd.note_grid(lo, hi, []))
    assert "FluidR3" not in " ".join(SOUNDFONTS.values())


def test_install_script_lists_every_source_package() -> None:
    """scripts/install_corpus_packages.sh installs what `build` reads, reserved ones on request."""
    import re

    text = (Path(__file__).resolve().parents[1] / "scripts/install_corpus_packages.sh").read_text()

    def array(name: str) -> set[str]:
        m = re.search(rf"^{name}=\((.*?)\)", text, re.S | re.M)
        assert m, name
        return set(m.group(1).split())

    sources = array("SOURCES")
    wanted = {s.package for s in DEFAULT_SOURCES} - {"espeak-ng-data"} | {"espeak-ng"}
    assert sources == wanted
    assert array("EXTRA") == {s.package for s in EXTRA_SOURCES}
    assert array("RESERVED") == set(RESERVED_PACKAGES) and not sources & set(RESERVED_PACKAGES)


def test_opl3_is_an_extra_source_and_not_reserved() -> None:
    opl3 = source_by_name("opl3-render")
    assert opl3 in EXTRA_SOURCES and opl3.name not in {s.name for s in DEFAULT_SOURCES}
    assert (opl3.package, opl3.kind, opl3.category) == ("opl3-soundfont", "render", "notes")
    assert opl3.roots == (OPL3_SF2,) and opl3.package not in RESERVED_PACKAGES
    check_sources(DEFAULT_SOURCES + EXTRA_SOURCES)
    for name in ("TimGM6mb.sf2", "timgm6mb-copy.sf2", "MuseScore_General.sf3",
                 "musescore-general-hq.sf2"):  # fmt: skip
        assert is_reserved_name(name)
    for name in (OPL3_SF2, "FluidR3_GM.sf2", "Black_Pearl_4_LV2.sf2"):
        assert not is_reserved_name(name)
    assert preset_label("000", 0) == "Acoustic Grand Piano" and preset_label("073", 73) == "Flute"
    assert preset_label("Yamaha Grand Piano", 0) == "Yamaha Grand Piano"


def test_reserved_soundfonts_are_refused_by_name_and_by_inam(
    fixture_sources: tuple[Source, ...], tmp_path: Path
) -> None:
    """A copy of a reserved soundfont never feeds a source, whatever its package says: by file
    name (or the name a symlink points at), by the INAM inside, left out of a folder root."""
    sf2 = Path(fixture_sources[3].roots[0])
    copy = tmp_path / "TimGM6mb.sf2"
    shutil.copy(sf2, copy)
    link = tmp_path / "innocent.sf2"
    link.symlink_to(copy)
    pcm = (_burst(0.5, 32000, 440, 6) * 32767).astype(np.int16)
    renamed = write_sf2(tmp_path / "renamed.sf2", pcm, 32000, inam="TimGM6mb1.sf2")
    out = tmp_path / "out"
    for root in (copy, link, renamed):
        for kind in ("render", "sf2"):
            src = Source("x", "opl3-soundfont", kind, "notes", "?", roots=(str(root),))
            with pytest.raises(ValueError, match="reserved"):
                build(out, [src], leak_guard=False, progress=False)
    assert not (out / MANIFEST_NAME).exists()
    fonts = tmp_path / "fonts"
    fonts.mkdir()
    shutil.copy(sf2, fonts / "ok.sf2")
    shutil.copy(sf2, fonts / "MuseScore_General.sf2")
    tasks = plan_source(Source("x", "p", "sf2", "notes", "?", roots=(str(fonts),)), set())
    assert tasks and {Path(t.ref).name for t in tasks} == {"ok.sf2"}


def test_extra_source_builds_into_its_own_folder_with_a_val_split(
    corpus: Path, tmp_path: Path
) -> None:
    """Like `build --only opl3-render --out data/corpus_opl3`: a numbered-preset soundfont's
    notes get GM labels and a grouped split of their own; building it into a folder whose
    manifest lists other sources is refused and leaves that manifest as it was."""
    pytest.importorskip("tinysoundfont")
    pcm = (_burst(0.5, 32000, 440, 8) * 32767).astype(np.int16)
    fm = write_sf2(tmp_path / "fm.sf2", pcm, 32000, preset="000", inam="OPL-3 FM 128M")
    src = Source("t-fm-render", "t-fm-pkg", "render", "notes", "CC-BY-SA-4.0", roots=(str(fm),))
    before = (corpus / MANIFEST_NAME).read_bytes()
    with pytest.raises(ValueError, match="also lists sources"):
        build(corpus, [src], leak_guard=False, progress=False)
    assert (corpus / MANIFEST_NAME).read_bytes() == before
    out = tmp_path / "corpus_fm"
    build(out, [src], leak_guard=False, progress=False)
    rows = read_manifest(out)
    notes = render_grid(60, 80)
    assert len(rows) == 3 * len(notes) and {r.midi for r in rows} == set(notes)
    assert {(r.source, r.label, r.instrument, r.program) for r in rows} == {
        ("t-fm-render", "Acoustic Grand Piano", "Acoustic Grand Piano", 0)
    }
    parts = {s: list_items("corpus", out, s) for s in ("train", "val", "test")}
    groups = {s: {it.group for it in items} for s, items in parts.items()}
    assert parts["val"] and parts["train"] and not groups["train"] & groups["val"]
    assert not groups["val"] & groups["test"] and not groups["train"] & groups["test"]
    assert all(len([r for r in rows if r.group == g]) == 3 for g in groups["val"])  # 3 velocities
    build(out, [src], leak_guard=False, progress=False)  # its own folder: a rebuild is fine


def test_cli_knows_the_extra_sources(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert corpus_main(["list"]) == 0
    assert "opl3-render" in capsys.readouterr().out
    assert corpus_main(["build", "--out", str(tmp_path), "--only", "opl3-rendr"]) == 2
    assert "opl3-render" in capsys.readouterr().err  # the known names are listed
