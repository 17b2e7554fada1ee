"""Corpus composition: hours per category and per source, as a table or a dict."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

from codec.data.corpus.manifest import ManifestRow


@dataclass(frozen=True)
class Composition:
    """Per key: (clips, hours); plus the licence of every source."""

    by_category: dict[str, tuple[int, float]]
    by_source: dict[str, tuple[int, float]]
    packages: dict[str, str]
    licences: dict[str, list[str]]

    @property
    def total(self) -> tuple[int, float]:
        clips = sum(c for c, _ in self.by_category.values())
        return clips, sum(h for _, h in self.by_category.values())


def composition(rows: Iterable[ManifestRow]) -> Composition:
    cat: dict[str, list[float]] = defaultdict(lambda: [0, 0.0])
    src: dict[str, list[float]] = defaultdict(lambda: [0, 0.0])
    packages: dict[str, str] = {}
    licences: dict[str, set[str]] = defaultdict(set)
    for r in rows:
        for table, key in ((cat, r.category), (src, r.source)):
            table[key][0] += 1
            table[key][1] += r.duration / 3600
        packages[r.source] = r.package
        licences[r.source].add(r.licence)
    return Composition(
        {k: (int(v[0]), v[1]) for k, v in sorted(cat.items())},
        {k: (int(v[0]), v[1]) for k, v in src.items()},
        packages,
        {k: sorted(v) for k, v in licences.items()},
    )


def format_composition(c: Composition) -> str:
    """A plain-text table (what `python -m codec.data.corpus stats` prints)."""
    lines = [f"{'category':<10} {'clips':>7} {'hours':>7}"]
    for k, (n, h) in c.by_category.items():
        lines.append(f"{k:<10} {n:>7} {h:>7.2f}")
    n, h = c.total
    lines += [f"{'total':<10} {n:>7} {h:>7.2f}", ""]
    lines.append(f"{'source':<16} {'package':<28} {'clips':>7} {'hours':>7}  licence")
    for k, (n, h) in c.by_source.items():
        lic = "; ".join(c.licences[k])
        lines.append(f"{k:<16} {c.packages[k]:<28} {n:>7} {h:>7.2f}  {lic}")
    return "\n".join(lines)
