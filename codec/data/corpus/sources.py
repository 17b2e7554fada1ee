"""The corpus sources: which Debian packages, how their files are read, their category and licence.

Each `Source` names one Debian package (the unit of licence and of `stats`) and how to read it:

    kind "files"    audio files of the package (dpkg -L, or `roots` in tests), optional path filter
    kind "zip"      audio members of zip archives (.pk3) of the package
    kind "sf2"      the raw samples of a SoundFont, pitch from the instrument zones
    kind "render"   notes of every melodic GM program rendered from a SoundFont (tinysoundfont)
    kind "espeak"   sentences spoken by espeak-ng voices

Category and licence may depend on the path inside the package (`rules`: first matching regex
wins). Licences are summarised from /usr/share/doc/<package>/copyright; we train on these files,
we do not redistribute them.

RESERVED_PACKAGES are kept for independent evaluation and are never read by `build`; nor is any
file whose name matches RESERVED_NAMES (a copy of a reserved soundfont outside its package).

EXTRA_SOURCES are built only on request (`build --only NAME --out DIR`, into their own folder),
never by a default build: the corpus split draws every source's val/test files from one seeded
sequence in source-name order, so adding a source to data/corpus would move clips of the sources
named after it between train and val/test. A separate folder is mixed in by the training config
(`dataloader.mix: [{dataset: corpus, dataset_path: DIR}]`) and has its own grouped split.
"""

from __future__ import annotations

import logging
import re
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

logger = logging.getLogger(__name__)

CATEGORIES = ("notes", "speech", "effects", "music")
KINDS = ("files", "zip", "sf2", "render", "espeak")
AUDIO_EXTENSIONS = (".wav", ".ogg", ".opus", ".flac", ".mp3", ".aiff", ".aif")
RESERVED_PACKAGES = (
    "timgm6mb-soundfont",
    "musescore-general-soundfont",
    "fillets-ng-data-nl",
    "qabcs-data",
)
# file names (and SoundFont INAM names) of the reserved soundfonts, wherever a copy lies
RESERVED_NAMES = re.compile(r"tim[ _-]?gm[ _-]?6mb|muse[ _-]?score", re.IGNORECASE)
FLUID_SF2 = "/usr/share/sounds/sf2/FluidR3_GM.sf2"
OPL3_SF2 = "/usr/share/sounds/sf2/OPL-3_FM_128M.sf2"


@dataclass(frozen=True)
class Rule:
    """Paths matching `pattern` (re.search) get this category and/or licence."""

    pattern: str
    category: str | None = None
    licence: str | None = None


@dataclass(frozen=True)
class Source:
    """One corpus source (see the module docstring).

    Attributes:
        name: unique id used in the manifest and in `stats` (e.g. "asterisk-en").
        package: the Debian package the files come from.
        kind: one of KINDS.
        category: default category (one of CATEGORIES).
        licence: default licence summary.
        include: regex a file path must match (re.search) to be read; "" reads all.
        rules: per-path category / licence overrides.
        roots: read these files/folders instead of `dpkg -L package` (tests, local copies).
    """

    name: str
    package: str
    kind: str
    category: str
    licence: str
    include: str = ""
    rules: tuple[Rule, ...] = ()
    roots: tuple[str, ...] = ()
    options: dict[str, object] = field(default_factory=dict, hash=False, compare=False)

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"source {self.name}: unknown kind {self.kind!r}; expected {KINDS}")
        cats = [self.category] + [r.category for r in self.rules if r.category]
        bad = [c for c in cats if c not in CATEGORIES]
        if bad:
            raise ValueError(f"source {self.name}: unknown category {bad[0]!r}")

    def classify(self, relpath: str) -> tuple[str, str]:
        """(category, licence) of one file of this source."""
        category, licence = self.category, self.licence
        cat_done = lic_done = False
        for r in self.rules:
            if re.search(r.pattern, relpath):
                if r.category and not cat_done:
                    category, cat_done = r.category, True
                if r.licence and not lic_done:
                    licence, lic_done = r.licence, True
        return category, licence

    def files(self, extensions: tuple[str, ...] = AUDIO_EXTENSIONS) -> list[Path]:
        """The source's files with one of `extensions`, sorted, symlinks resolved, no repeats."""
        paths = _walk(self.roots) if self.roots else package_files(self.package)
        out: dict[str, Path] = {}
        for p in paths:
            if p.suffix.lower() not in extensions or not p.is_file():
                continue
            if self.include and not re.search(self.include, str(p)):
                continue
            out.setdefault(str(p.resolve()), p)
        return sorted(out.values(), key=str)


def _walk(roots: tuple[str, ...]) -> list[Path]:
    out: list[Path] = []
    for r in roots:
        p = Path(r)
        out.extend(sorted(q for q in p.rglob("*") if q.is_file()) if p.is_dir() else [p])
    return out


def package_files(package: str) -> list[Path]:
    """The files a Debian package installed (`dpkg -L`); [] with a warning when not installed."""
    if package in RESERVED_PACKAGES:
        raise ValueError(f"{package} is reserved for independent evaluation, never for training")
    try:
        res = subprocess.run(["dpkg", "-L", package], capture_output=True, text=True, check=False)
    except FileNotFoundError:
        logger.warning("dpkg not found: cannot list the files of %s", package)
        return []
    if res.returncode != 0:
        logger.warning("package %s is not installed (scripts/install_corpus_packages.sh)", package)
        return []
    return [Path(line) for line in res.stdout.splitlines() if line.startswith("/")]


def reserved_files() -> set[str]:
    """Resolved paths of every file the reserved packages installed (never read by `build`)."""
    out: set[str] = set()
    for pkg in RESERVED_PACKAGES:
        try:
            res = subprocess.run(["dpkg", "-L", pkg], capture_output=True, text=True, check=False)
        except FileNotFoundError:
            return out
        if res.returncode == 0:
            out.update(str(Path(x).resolve()) for x in res.stdout.splitlines() if x.startswith("/"))
    return out


def _asterisk(lang: str, licence: str) -> Source:
    return Source(f"asterisk-{lang}", f"asterisk-core-sounds-{lang}-wav", "files", "speech",
                  licence)  # fmt: skip


GPL2 = "GPL-2+"
DEFAULT_SOURCES: tuple[Source, ...] = (
    # pitched notes
    Source("fluidr3-samples", "fluid-soundfont-gm", "sf2", "notes", "MIT", roots=(FLUID_SF2,)),
    Source("fluidr3-render", "fluid-soundfont-gm", "render", "notes", "MIT", roots=(FLUID_SF2,)),
    # real speech
    Source("fillets-cs", "fillets-ng-data-cs", "files", "speech", GPL2, include=r"/cs/"),
    _asterisk("en", "CC-BY-SA-3.0"),
    _asterisk("es", "CC-BY-SA-3.0"),
    _asterisk("fr", "CC-BY-SA-3.0"),
    _asterisk("it", "CC-BY-3.0"),
    _asterisk("ru", "CC-BY-3.0"),
    Source("klettres", "klettres-data", "files", "speech", GPL2),
    Source("ktuberling", "ktuberling-data", "files", "speech", GPL2),
    Source(
        "gcin-voice",
        "gcin-voice",
        "files",
        "speech",
        "GPL-3 or LGPL-3",
        rules=(Rule(r"/5\.ogg$", licence="CC-BY-3.0"),),
    ),  # fmt: skip
    Source("espeak-ng", "espeak-ng-data", "espeak", "speech", "GPL-3+ (synthesised)"),
    # general sounds
    Source(
        "ufoai",
        "ufoai-sound",
        "zip",
        "effects",
        "GPL-2+ / CC-BY-3.0 / CC-BY-SA-3.0 / public domain (per file)",
    ),  # fmt: skip
    Source(
        "hedgewars",
        "hedgewars-data",
        "files",
        "effects",
        "GFDL-1.3",
        rules=(
            Rule(r"/Music/", "music", "GPL-2"),
            Rule(r"/Sounds/voices/", "speech"),
            Rule(r"/Droplet\d\.ogg$", licence="CC-BY-SA-3.0"),
        ),
    ),  # fmt: skip
    Source(
        "scratch",
        "scratch",
        "files",
        "effects",
        "CC-BY-SA-3.0",
        include=r"/Media/Sounds/",
        rules=(Rule(r"/(Music Loops|Vocals)/", "music"),),
    ),  # fmt: skip
    Source(
        "colobot",
        "colobot-common-sounds",
        "files",
        "effects",
        "GPL-3+",
        rules=(Rule(r"/music/", "music"),),
    ),  # fmt: skip
    Source("avldrums", "avldrums.lv2-soundfont", "sf2", "effects", "CC-BY-SA-3.0"),
    Source("hydrogen-guitar", "hydrogen-drumkits-effects", "files", "effects", "CC-BY-3.0"),
    # music
    Source("warzone2100", "warzone2100-music", "files", "music", GPL2),
    Source("wesnoth", "wesnoth-1.16-music", "files", "music", GPL2),
)


# Built on request only (see the module docstring). OPL-3 FM synthesis (Debian opl3-soundfont):
# the GM notes of fluidr3-render in a second, very different timbre, so the codecs see pitched
# notes that are not FluidR3's; synthesised, not recorded (like espeak-ng).
EXTRA_SOURCES: tuple[Source, ...] = (
    Source("opl3-render", "opl3-soundfont", "render", "notes", "CC-BY-SA-4.0", roots=(OPL3_SF2,)),
)


def source_by_name(
    name: str, sources: tuple[Source, ...] = DEFAULT_SOURCES + EXTRA_SOURCES
) -> Source:
    for s in sources:
        if s.name == name:
            return s
    raise ValueError(f"unknown source {name!r}; known: {', '.join(s.name for s in sources)}")


def check_sources(sources: tuple[Source, ...] | list[Source]) -> None:
    """Unique names and no reserved package (ValueError otherwise)."""
    names = [s.name for s in sources]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise ValueError(f"duplicate source names: {dup}")
    reserved = [s.package for s in sources if s.package in RESERVED_PACKAGES]
    reserved += [r for s in sources for r in s.roots if is_reserved_name(r)]
    if reserved:
        raise ValueError(
            f"{reserved[0]} is reserved for independent evaluation, never for training"
        )


def is_reserved_name(path: str | Path) -> bool:
    """True when the file name, or the name of the file a symlink points at, is a reserved
    soundfont's (RESERVED_NAMES)."""
    p = Path(path)
    return any(RESERVED_NAMES.search(q.name) for q in (p, p.resolve()))
