"""A small SoundFont 2 reader: raw samples with their real pitch, and which samples a note uses.

    RIFF 'sfbk'
      LIST 'INFO'  INAM: the soundfont's name (checked against the reserved soundfonts)
      LIST 'sdta'  smpl: every sample's 16-bit PCM, back to back
      LIST 'pdta'  phdr/pbag/pgen: presets (bank, GM program) -> zones -> instrument (gen 41)
                   inst/ibag/igen: instruments -> zones -> sample (gen 53), keyRange (gen 43),
                                   overridingRootKey (gen 58)
                   shdr: sample headers (start, end, rate, originalPitch, link, type)

The sample header's `originalPitch` is often a dummy 60; an instrument zone's overridingRootKey,
when present, is the pitch the sample was recorded at. Only what the corpus needs is parsed.
"""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

GEN_KEY_RANGE = 43
GEN_INSTRUMENT = 41
GEN_SAMPLE_ID = 53
GEN_ROOT_KEY = 58
SAMPLE_RIGHT, SAMPLE_LEFT = 2, 4
PERCUSSION_BANK = 128


class SF2Error(ValueError):
    """A file that is not a SoundFont 2 this reader understands."""


@dataclass(frozen=True)
class Zone:
    """One zone: a key range that points at an instrument (preset zone) or a sample."""

    target: int
    key_lo: int = 0
    key_hi: int = 127
    root_key: int | None = None


@dataclass(frozen=True)
class SampleHeader:
    """One `shdr` record; `start`/`end` are sample-frame indices into the smpl chunk."""

    index: int
    name: str
    start: int
    end: int
    sample_rate: int
    original_pitch: int
    link: int
    kind: int


@dataclass
class SoundFont:
    """Parsed SoundFont: its name, presets `{(bank, program): (name, zones)}`, instruments and
    samples."""

    path: Path
    smpl_offset: int
    name: str = ""  # INFO INAM
    presets: dict[tuple[int, int], tuple[str, list[Zone]]] = field(default_factory=dict)
    instruments: list[tuple[str, list[Zone]]] = field(default_factory=list)
    samples: list[SampleHeader] = field(default_factory=list)

    def read_sample(self, s: SampleHeader) -> np.ndarray:
        """The sample's PCM as float32 `[N]` in [-1, 1]."""
        n = max(s.end - s.start, 0)
        with open(self.path, "rb") as f:
            f.seek(self.smpl_offset + 2 * s.start)
            raw = f.read(2 * n)
        return np.frombuffer(raw, dtype="<i2").astype(np.float32) / 32768.0

    def samples_for_note(self, bank: int, program: int, midi: int) -> set[int]:
        """Indices of the samples that preset (bank, program) plays for key `midi`."""
        out: set[int] = set()
        _, pzones = self.presets.get((bank, program), ("", []))
        for pz in pzones:
            if not pz.key_lo <= midi <= pz.key_hi or pz.target >= len(self.instruments):
                continue
            for iz in self.instruments[pz.target][1]:
                if iz.key_lo <= midi <= iz.key_hi:
                    out.add(iz.target)
        return out

    def key_range(self, bank: int, program: int) -> tuple[int, int] | None:
        """The lowest and highest key that preset (bank, program) maps to some sample."""
        keys = [m for m in range(128) if self.samples_for_note(bank, program, m)]
        return (keys[0], keys[-1]) if keys else None


def _name(raw: bytes) -> str:
    return raw.split(b"\0", 1)[0].decode("latin-1").strip()


def _chunks(data: bytes, start: int, end: int) -> dict[str, tuple[int, int]]:
    """{chunk id (or LIST type): (data offset, size)} for the chunks in data[start:end]."""
    out: dict[str, tuple[int, int]] = {}
    pos = start
    while pos + 8 <= end:
        cid, size = (
            data[pos : pos + 4].decode("latin-1"),
            struct.unpack_from("<I", data, pos + 4)[0],
        )
        body = pos + 8
        if cid == "LIST":
            out[data[body : body + 4].decode("latin-1")] = (body + 4, size - 4)
        else:
            out[cid] = (body, size)
        pos = body + size + (size & 1)
    return out


def _zones(
    bags: list[tuple[int, int]], gens: list[tuple[int, int]], first: int, last: int, term: int
) -> list[Zone]:
    """Zones of bags [first, last); a leading zone without the terminal generator is global."""
    zones: list[Zone] = []
    g_lo, g_hi, g_root = 0, 127, None
    for b in range(first, last):
        lo, hi, root, target = g_lo, g_hi, g_root, None
        for op, amount in gens[bags[b][0] : bags[b + 1][0]]:
            if op == GEN_KEY_RANGE:
                lo, hi = amount & 0xFF, amount >> 8
            elif op == GEN_ROOT_KEY:
                root = amount if amount < 128 else None
            elif op == term:
                target = amount
        if target is None:
            if b == first:
                g_lo, g_hi, g_root = lo, hi, root
            continue
        zones.append(Zone(target, lo, hi, root))
    return zones


def read_soundfont(path: str | Path) -> SoundFont:
    """Parse the preset, instrument and sample tables of an .sf2 file (PCM is read lazily).

    Raises:
        SF2Error: not a RIFF sfbk file, or a table is missing or malformed.
    """
    path = Path(path)
    data = path.read_bytes()
    if len(data) < 12 or data[:4] != b"RIFF" or data[8:12] != b"sfbk":
        raise SF2Error(f"{path}: not a SoundFont 2 file (no RIFF sfbk header)")
    top = _chunks(data, 12, len(data))
    if "sdta" not in top or "pdta" not in top:
        raise SF2Error(f"{path}: missing the sdta or pdta list")
    sdta = _chunks(data, top["sdta"][0], sum(top["sdta"]))
    pdta = _chunks(data, top["pdta"][0], sum(top["pdta"]))
    need = ("phdr", "pbag", "pgen", "inst", "ibag", "igen", "shdr")
    missing = [c for c in (*need,) if c not in pdta] + ([] if "smpl" in sdta else ["smpl"])
    if missing:
        raise SF2Error(f"{path}: missing chunks {missing}")

    def records(cid: str, fmt: str) -> list[tuple]:
        off, size = pdta[cid]
        rec = struct.calcsize(fmt)
        return [struct.unpack_from(fmt, data, off + i * rec) for i in range(size // rec)]

    phdr, inst = records("phdr", "<20sHHHIII"), records("inst", "<20sH")
    pbag, ibag = records("pbag", "<HH"), records("ibag", "<HH")
    pgen, igen = records("pgen", "<HH"), records("igen", "<HH")
    shdr = records("shdr", "<20sIIIIIBbHH")
    sf = SoundFont(path, sdta["smpl"][0])
    if "INFO" in top:
        inam = _chunks(data, top["INFO"][0], sum(top["INFO"])).get("INAM")
        if inam is not None:
            sf.name = _name(data[inam[0] : inam[0] + inam[1]])
    for i in range(len(inst) - 1):  # the last record is the terminal "EOI"
        zones = _zones(ibag, igen, inst[i][1], inst[i + 1][1], GEN_SAMPLE_ID)
        sf.instruments.append((_name(inst[i][0]), zones))
    for i in range(len(phdr) - 1):
        name, program, bank, bag = _name(phdr[i][0]), phdr[i][1], phdr[i][2], phdr[i][3]
        zones = _zones(pbag, pgen, bag, phdr[i + 1][3], GEN_INSTRUMENT)
        sf.presets.setdefault((bank, program), (name, zones))
    for i, (name, start, end, _ls, _le, rate, pitch, _corr, link, kind) in enumerate(shdr[:-1]):
        sf.samples.append(SampleHeader(i, _name(name), start, end, rate, pitch, link, kind))
    return sf


@dataclass(frozen=True)
class PitchedSample:
    """A raw sample with the pitch it was recorded at (None for drum-kit sounds)."""

    header: SampleHeader
    instrument: str
    midi: int | None
    program: int | None
    percussion: bool
    partner: int | None  # the other channel of a stereo pair


_CHANNEL = re.compile(r"^(.*?)([(_ -]?)([LR])(\)?)$")


def _partner(sf: SoundFont, h: SampleHeader) -> int | None:
    """The other channel of a stereo pair: by name ("X(L)" <-> "X(R)"), else by a valid link."""
    by_name = getattr(sf, "_by_name", None)
    if by_name is None:
        by_name = {s.name: s.index for s in sf.samples}
        sf._by_name = by_name  # type: ignore[attr-defined]
    m = _CHANNEL.match(h.name)
    if m:
        other = f"{m.group(1)}{m.group(2)}{'R' if m.group(3) == 'L' else 'L'}{m.group(4) or ''}"
        if other in by_name:
            return int(by_name[other])
    linked = sf.samples[h.link] if 0 <= h.link < len(sf.samples) else None
    stereo = SAMPLE_LEFT | SAMPLE_RIGHT
    if linked is not None and h.kind & stereo and linked.kind & stereo and linked.kind != h.kind:
        return linked.index
    return None


def pitched_samples(sf: SoundFont) -> list[PitchedSample]:
    """Every sample used by some instrument zone, with its real pitch.

    Pitch: the first zone's overridingRootKey when present, else the header's originalPitch
    (255 means unpitched). `program` is the lowest bank-0 GM program that plays the sample's
    instrument; samples used only by percussion kits (bank 128) have `midi` None.
    """
    inst_programs: dict[int, list[tuple[int, int]]] = {}
    for (bank, program), (_, zones) in sorted(sf.presets.items()):
        for z in zones:
            inst_programs.setdefault(z.target, []).append((bank, program))
    first_use: dict[int, tuple[int, Zone]] = {}
    for ii, (_, zones) in enumerate(sf.instruments):
        for z in zones:
            if z.target < len(sf.samples) and z.target not in first_use:
                first_use[z.target] = (ii, z)
    out = []
    for si in sorted(first_use):
        ii, z = first_use[si]
        h = sf.samples[si]
        uses = inst_programs.get(ii, [])
        melodic = sorted(p for b, p in uses if b != PERCUSSION_BANK)
        percussion = bool(uses) and not melodic
        root = z.root_key if z.root_key is not None else h.original_pitch
        midi = None if percussion or root > 127 else int(root)
        partner = _partner(sf, h)
        out.append(
            PitchedSample(h, sf.instruments[ii][0], midi, melodic[0] if melodic else None,
                          percussion, partner)
        )  # fmt: skip
    return out
