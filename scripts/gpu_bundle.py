"""Build a self-contained GPU training bundle that fits what the lent GPU machine receives.

The `device` tool sends the session's working tree plus the ignored paths named in `carry`, at
most 64 MiB together, and returns at most 8 files of 16 MiB from `$OUT`. This script writes,
into one git-ignored folder, what `python -m codec.training` needs there and nothing more:

    gpu_bundle/
      codec/                   the package (not app/, analysis/, bench/, tests/)
      configs/*.yaml           every training config, unchanged
      checkpoints/NAME/        config.json + model.safetensors of each --checkpoint (--half: fp16)
      data/corpus/             manifest.jsonl + FLAC clips drawn from the corpus's *train* split
      data/demo/               database.sqlite + FLAC takes drawn from the demo set's train split
      wheels/                  what the GPU image lacks (KINDS.md): soundfile (+ cffi, pycparser),
                               encodec (EnCodec's SEANet and RVQ modules)
      requirements-gpu.txt     the same, by name
      run_gpu.sh, gpu_bundle_pack.py, bundle.json

Data: the datasets of --config (`dataloader.dataset` and `mix`, corpus or demo), each given
its weight's share of the data budget (--data-mib; default: what is left under --limit-mib).
Clips come from each dataset's own train split only, so the bundle never trains on the clips
that the project's gates hold out; inside the bundle the loader splits the subset again, so
its `eval/*` scalars are measured on clips the start checkpoint may have trained on: gate the
returned checkpoint here (`python -m bench.gates`). The report prints each part's size and the
total, and the build is refused (exit 2, nothing written) over --limit-mib.

Usage (here, then on the lent machine through the device tool):

    python scripts/gpu_bundle.py --config configs/autoencoder_speech.yaml \\
        --checkpoint checkpoints/encodec_demo --download-wheels --limit-mib 64
    # device run: command "bash gpu_bundle/run_gpu.sh configs/autoencoder_speech.yaml
    #   dataloader.batch_size=32", carry ["gpu_bundle"], timeout_s 600 (MINUTES=6 of training)
    bash gpu_bundle/run_gpu.sh CONFIG [key=value ...]   # locally: OUT=... DEVICE=cpu

The bundle travels *beside* the working tree, whose tracked files count towards the same
64 MiB: pass `--limit-mib` = 64 minus the tree's size (docs/training.md, "A lent GPU").
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import random
import shutil
import sqlite3
import subprocess
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # `python scripts/gpu_bundle.py` from the repo root
    sys.path.insert(0, str(REPO))

log = logging.getLogger("gpu_bundle")

MiB = 1 << 20
DEFAULT_LIMIT_MIB = 64.0
HEADROOM_MIB = 1.0  # left free under the limit when the data budget is implicit
# absent from the GPU image (KINDS.md) but imported by training: audio I/O, and EnCodec's SEANet
# and RVQ (codec/models/seanet.py, encodec.py); encodec ships as an sdist only: built here
GPU_BINARY_WHEELS = ("soundfile==0.14.0", "cffi", "pycparser")
GPU_SOURCE_WHEELS = ("encodec==0.1.1",)
GPU_REQUIREMENTS = GPU_BINARY_WHEELS + GPU_SOURCE_WHEELS
PIP_PLATFORMS = ("manylinux_2_28_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64")
BUNDLED_DATASETS = ("corpus", "demo")
RUN_FILES = {"gpu_bundle_run.sh": "run_gpu.sh", "gpu_bundle_pack.py": "gpu_bundle_pack.py"}


class BundleError(Exception):
    """A bundle that cannot be built as asked (the message says what to change)."""


@dataclass
class Part:
    """One part of the bundle and its size on disk."""

    name: str
    nbytes: int

    @property
    def mib(self) -> float:
        return self.nbytes / MiB


@dataclass
class Component:
    """One dataset that the config draws from, with its share of the data budget."""

    dataset: str
    rel: Path  # dataset root relative to the repo (and to the bundle)
    weight: float
    categories: list[str] | None = None


@dataclass
class Report:
    """What `build_bundle` wrote: the parts, the total and the limit (in bytes)."""

    out: Path
    parts: list[Part] = field(default_factory=list)
    limit: int = 0
    clips: dict[str, int] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return sum(p.nbytes for p in self.parts)

    def lines(self) -> list[str]:
        rows = [f"  {p.name:<40} {p.mib:8.2f} MiB" for p in self.parts]
        rows.append(f"  {'total':<40} {self.total / MiB:8.2f} MiB (limit {self.limit / MiB:.1f})")
        return rows


def folder_bytes(path: Path) -> int:
    """Bytes of every file under `path` (or of the file itself)."""
    if path.is_file():
        return path.stat().st_size
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def repo_relative(repo: Path, path: str | Path) -> Path:
    """`path` (as a config or the command line writes it) relative to `repo`, symlinks kept."""
    full = Path(os.path.abspath(repo / path))
    try:
        return full.relative_to(os.path.abspath(repo))
    except ValueError:
        raise BundleError(f"{path} is outside {repo}: give a path inside the repository") from None


# ------------------------------------------------------------------------------------------------
# code, configs, checkpoints, wheels
# ------------------------------------------------------------------------------------------------
def copy_code(repo: Path, out: Path, config: Path) -> list[Part]:
    """codec/ (no caches), configs/*.yaml, and `config` into configs/ when it lives elsewhere."""
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.pyo")
    shutil.copytree(repo / "codec", out / "codec", ignore=ignore)
    (out / "configs").mkdir()
    for cfg in sorted((repo / "configs").glob("*.yaml")):
        shutil.copy2(cfg, out / "configs" / cfg.name)
    dst = out / "configs" / config.name
    if not dst.exists():
        shutil.copy2(config, dst)
    elif dst.read_bytes() != config.read_bytes():
        raise BundleError(f"--config {config}: configs/{config.name} differs; rename the file")
    return [Part("code (codec/)", folder_bytes(out / "codec")),
            Part("configs/", folder_bytes(out / "configs"))]  # fmt: skip


def copy_checkpoint(repo: Path, folder: str, out: Path, half: bool) -> Part:
    """config.json + model.safetensors of a checkpoint folder, at its repo-relative path;
    `half` stores floating tensors as float16 (they load into float32 models as they are)."""
    from safetensors import safe_open
    from safetensors.torch import save_file

    rel = repo_relative(repo, folder)
    src, dst = repo / rel, out / rel
    for name in ("config.json", "model.safetensors"):
        if not (src / name).is_file():
            raise BundleError(f"--checkpoint {folder}: {src / name} is missing")
    dst.mkdir(parents=True)
    shutil.copy2(src / "config.json", dst / "config.json")
    if half:
        with safe_open(str(src / "model.safetensors"), framework="pt") as f:
            meta = f.metadata()
            tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118
        tensors = {k: v.half() if v.is_floating_point() else v for k, v in tensors.items()}
        save_file({k: v.contiguous() for k, v in tensors.items()}, str(dst / "model.safetensors"),
                  metadata=meta)  # fmt: skip
    else:
        shutil.copy2(src / "model.safetensors", dst / "model.safetensors")
    return Part(f"{rel}/ ({'fp16' if half else 'fp32'})", folder_bytes(dst))


def copy_wheels(out: Path, wheels: Path | None, download: bool) -> Part:
    """wheels/ for what the GPU image lacks, and requirements-gpu.txt naming them."""
    dst = out / "wheels"
    dst.mkdir()
    (out / "requirements-gpu.txt").write_text(
        "# installed by run_gpu.sh from wheels/ (no network on the GPU machine); the rest\n"
        "# (torch, torchaudio, numpy, scipy, PyYAML, safetensors, tqdm, tensorboard, einops)\n"
        + "\n".join(GPU_REQUIREMENTS)
        + "\n"  # fmt: skip
    )
    if download:
        plats = [a for p in PIP_PLATFORMS for a in ("--platform", p)]
        pip = [sys.executable, "-m", "pip"]
        cmds = [
            [*pip, "download", "-q", "--no-deps", "--only-binary=:all:", "--python-version",
             "3.12", "--implementation", "cp", *plats, "-d", str(dst), *GPU_BINARY_WHEELS],
            [*pip, "wheel", "-q", "--no-deps", "-w", str(dst), *GPU_SOURCE_WHEELS],
        ]  # fmt: skip
        for cmd in cmds:
            if subprocess.run(cmd, check=False).returncode != 0:
                raise BundleError(f"{' '.join(cmd[2:4])} of the GPU wheels failed (see above)")
    elif wheels is not None:
        found = sorted(wheels.glob("*.whl"))
        if not found:
            raise BundleError(f"--wheels {wheels}: no .whl files there")
        for whl in found:
            shutil.copy2(whl, dst / whl.name)
    else:
        log.warning("no --wheels: the GPU image lacks %s", ", ".join(GPU_REQUIREMENTS))
    return Part("wheels/ + requirements-gpu.txt",
                folder_bytes(dst) + (out / "requirements-gpu.txt").stat().st_size)  # fmt: skip


# ------------------------------------------------------------------------------------------------
# data
# ------------------------------------------------------------------------------------------------
def config_components(repo: Path, config: Path) -> tuple[list[Component], object]:
    """The datasets that `config` trains on (and the parsed config)."""
    from codec.training.config import ConfigError, load_config

    try:
        cfg = load_config(config, check_paths=False)
    except ConfigError as e:
        raise BundleError(f"--config {config}: {e}") from e
    dl = cfg.dataloader
    raw = [(dl.dataset, dl.dataset_path, dl.weight, None)]
    raw += [(m.dataset, m.dataset_path, m.weight, m.categories) for m in dl.mix]
    out = []
    for name, path, weight, cats in raw:
        if name not in BUNDLED_DATASETS:
            raise BundleError(f"--config {config}: dataset {name!r} is not bundled "
                              f"(only {', '.join(BUNDLED_DATASETS)})")  # fmt: skip
        rel = repo_relative(repo, path if path is not None else "data/demo")
        out.append(Component(name, rel, weight, cats))
    return out, cfg


def _pick(items: list, sizes: list[int], budget: int, max_clips: int | None, seed: int) -> list:
    """A seeded random subset of `items` whose sizes fit in `budget` bytes."""
    order = random.Random(seed).sample(range(len(items)), len(items))
    picked, used = [], 0
    for i in order:
        if max_clips is not None and len(picked) >= max_clips:
            break
        if used + sizes[i] <= budget:
            picked.append(i)
            used += sizes[i]
    return [items[i] for i in sorted(picked)]


def bundle_corpus(repo: Path, comps: list[Component], budgets: list[int], out: Path,
                  max_clips: int | None, seed: int) -> tuple[int, float]:  # fmt: skip
    """Train-split clips of one corpus (each entry's categories and budget) -> out/<rel>;
    returns (clips, seconds)."""
    from codec.data import filter_categories, list_items
    from codec.data.corpus.manifest import write_manifest

    root, chosen = repo / comps[0].rel, {}
    train = list_items("corpus", root, "train")
    for comp, budget in zip(comps, budgets):
        items = filter_categories(train, comp.categories)
        sizes = [it.path.stat().st_size for it in items]
        for it in _pick(items, sizes, budget, max_clips, seed):
            chosen[it.row.path] = it.row
    dst = out / comps[0].rel
    for rel in chosen:
        (dst / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(root / rel, dst / rel)
    order = {it.row.path: i for i, it in enumerate(train)}
    write_manifest(dst, sorted(chosen.values(), key=lambda r: order[r.path]))
    return len(chosen), sum(r.duration for r in chosen.values())


def bundle_demo(repo: Path, comp: Component, budget: int, out: Path, max_clips: int | None,
                seed: int) -> tuple[int, float]:  # fmt: skip
    """Train-split takes of a Good-sounds-layout set, re-encoded as FLAC (0.56x the WAV size
    on data/demo), with its database pruned to them -> out/<rel>; returns (clips, seconds)."""
    import soundfile as sf

    from codec.data import list_items

    root, dst = repo / comp.rel, out / comp.rel
    items = list_items("demo", root, "train")
    keep: list[tuple[str, int]] = []  # (new filename, take id)
    used, seconds = 0, 0.0
    for i in random.Random(seed).sample(range(len(items)), len(items)):
        if max_clips is not None and len(keep) >= max_clips:
            break
        rel = items[i].path.relative_to(root).with_suffix(".flac")
        x, sr = sf.read(items[i].path, dtype="int16")
        (dst / rel).parent.mkdir(parents=True, exist_ok=True)
        sf.write(dst / rel, x, sr, format="FLAC", subtype="PCM_16")
        size = (dst / rel).stat().st_size
        if used + size > budget:
            (dst / rel).unlink()
            continue
        keep.append((str(rel), items[i].take_id))
        used, seconds = used + size, seconds + len(x) / sr
    dst.mkdir(parents=True, exist_ok=True)
    shutil.copy2(root / "database.sqlite", dst / "database.sqlite")
    conn = sqlite3.connect(dst / "database.sqlite")
    try:
        conn.execute("CREATE TEMP TABLE keep (filename TEXT, id INTEGER PRIMARY KEY)")
        conn.executemany("INSERT INTO keep VALUES (?, ?)", keep)
        conn.execute("DELETE FROM takes WHERE id NOT IN (SELECT id FROM keep)")
        conn.execute("UPDATE takes SET filename = (SELECT filename FROM keep WHERE id = takes.id)")
        conn.execute("DELETE FROM sounds WHERE id NOT IN (SELECT sound_id FROM takes)")
        conn.commit()
        conn.execute("VACUUM")
    finally:
        conn.close()
    return len(keep), seconds


def bundle_data(repo: Path, comps: list[Component], budget: int, out: Path,
                max_clips: int | None, seed: int) -> tuple[list[Part], dict[str, int]]:  # fmt: skip
    """Each dataset root once, sharing the budget by weight; the demo sets go first (they are
    small: what one leaves unused goes to the next)."""
    by_root: dict[Path, list[Component]] = {}
    for c in comps:
        by_root.setdefault(c.rel, []).append(c)
    roots = sorted(by_root, key=lambda r: by_root[r][0].dataset != "demo")
    weight_left = sum(c.weight for c in comps)
    parts, clips = [], {}
    for rel in roots:
        cs = by_root[rel]
        if len({c.dataset for c in cs}) > 1:
            raise BundleError(f"{rel} is read as {sorted({c.dataset for c in cs})}: one kind only")
        share = [int(budget * c.weight / weight_left) for c in cs]
        if cs[0].dataset == "corpus":
            n, secs = bundle_corpus(repo, cs, share, out, max_clips, seed)
        else:
            n, secs = bundle_demo(repo, cs[0], sum(share), out, max_clips, seed)
        if n == 0:
            raise BundleError(f"{rel}: no clip fits in its share of the data budget")
        part = Part(f"{rel}/ ({n} clips, {secs / 60:.1f} min)", folder_bytes(out / rel))
        parts.append(part)
        clips[str(rel)] = n
        budget -= part.nbytes
        weight_left -= sum(c.weight for c in cs)
    return parts, clips


# ------------------------------------------------------------------------------------------------
# the bundle
# ------------------------------------------------------------------------------------------------
def needed_checkpoints(cfg: object) -> list[str]:
    """Checkpoint folders that the config names (start, stage 1, ALMTokenizer's front end)."""
    t = cfg.training  # type: ignore[attr-defined]
    front = cfg.model.base_args.get("frontend_checkpoint")  # type: ignore[attr-defined]
    paths = [t.start_checkpoint, t.stage1_checkpoint, front]
    return [p for p in paths if isinstance(p, str) and p != "official"]


def build_bundle(
    out: Path,
    config: Path,
    checkpoints: list[str],
    *,
    repo: Path = REPO,
    limit_mib: float = DEFAULT_LIMIT_MIB,
    data_mib: float | None = None,
    max_clips: int | None = None,
    half: bool = False,
    wheels: Path | None = None,
    download_wheels: bool = False,
    seed: int = 0,
) -> Report:
    """Write the bundle into `out` (replacing an earlier bundle there) and return its report.

    Raises:
        BundleError: a bad argument, or the bundle would exceed `limit_mib` (nothing written).
    """
    if out.exists() and not (out / "bundle.json").is_file():
        raise BundleError(f"{out} exists and is not a bundle: choose another --out")
    limit = int(limit_mib * MiB)
    comps, cfg = config_components(repo, config)
    staging = out.with_name(f".{out.name}.staging-{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    try:
        report = Report(out, limit=limit)
        report.parts += copy_code(repo, staging, config)
        for ck in checkpoints:
            report.parts.append(copy_checkpoint(repo, ck, staging, half))
        for need in needed_checkpoints(cfg):
            if not (staging / repo_relative(repo, need) / "model.safetensors").is_file():
                raise BundleError(f"{config} needs the checkpoint {need}: add --checkpoint {need}")
        for src, name in RUN_FILES.items():
            shutil.copy2(REPO / "scripts" / src, staging / name)
        run_bytes = sum(folder_bytes(staging / n) for n in RUN_FILES.values())
        report.parts.append(Part("run_gpu.sh + gpu_bundle_pack.py", run_bytes))
        report.parts.append(copy_wheels(staging, wheels, download_wheels))
        left = limit - report.total - int(HEADROOM_MIB * MiB)
        budget = left if data_mib is None else int(data_mib * MiB)
        if budget <= 0 or budget > left + int(HEADROOM_MIB * MiB):
            raise BundleError(
                f"the data budget ({budget / MiB:.1f} MiB) does not fit: code, checkpoints and "
                f"wheels take {report.total / MiB:.1f} of --limit-mib {limit_mib:g} "
                "(use --half, a smaller --data-mib or a larger limit)"
            )
        data_parts, report.clips = bundle_data(repo, comps, budget, staging, max_clips, seed)
        report.parts += data_parts
        write_bundle_json(staging, repo, report, config, checkpoints, half)
        report.parts.append(Part("bundle.json", (staging / "bundle.json").stat().st_size))
        if report.total > limit:
            raise BundleError(
                f"the bundle is {report.total / MiB:.2f} MiB, over --limit-mib {limit_mib:g}:\n"
                + "\n".join(report.lines())
            )
        if out.exists():
            shutil.rmtree(out)
        os.replace(staging, out)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return report


def write_bundle_json(out: Path, repo: Path, report: Report, config: Path,
                      checkpoints: list[str], half: bool) -> None:  # fmt: skip
    """bundle.json: where the bundle came from and what it holds (returned with each run)."""
    git = subprocess.run(["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True,
                         text=True, check=False)  # fmt: skip
    dirty = subprocess.run(["git", "-C", str(repo), "status", "--porcelain", "codec", "configs"],
                           capture_output=True, text=True, check=False)  # fmt: skip
    info = {
        "commit": git.stdout.strip() or None,
        "codec_or_configs_modified": bool(dirty.stdout.strip()),
        "config": str(config),
        "checkpoints": checkpoints,
        "half": half,
        "clips": report.clips,
        "parts": [asdict(p) for p in report.parts],
        "limit_bytes": report.limit,
    }
    (out / "bundle.json").write_text(json.dumps(info, indent=2) + "\n")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python scripts/gpu_bundle.py",
        description="Build a self-contained GPU training bundle (code, configs, a start "
        "checkpoint, a data subset, wheels, run_gpu.sh) under a size limit.",
    )
    add = p.add_argument
    add("--config", type=Path, required=True, help="the config whose datasets are bundled")
    add("--checkpoint", action="append", default=[], help="a checkpoint folder (repeatable)")
    add("--out", type=Path, default=REPO / "gpu_bundle", help="default: gpu_bundle/")
    add("--limit-mib", type=float, default=DEFAULT_LIMIT_MIB, help="refuse a larger bundle")
    add("--data-mib", type=float, help="audio budget (default: what the limit leaves, - 1 MiB)")
    add("--max-clips", type=int, help="at most N clips per dataset entry")
    add("--half", action="store_true", help="store the checkpoints' weights as fp16")
    add("--wheels", type=Path, help="a folder holding the GPU-side wheels")
    add("--download-wheels", action="store_true", help="fetch them with pip (cp312, x86-64)")
    add("--seed", type=int, default=0, help="seed of the clip draw")
    add("--repo", type=Path, default=REPO, help="the repository to bundle (default: this one)")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        report = build_bundle(
            args.out, args.config, args.checkpoint, repo=args.repo, limit_mib=args.limit_mib,
            data_mib=args.data_mib, max_clips=args.max_clips, half=args.half,
            wheels=args.wheels, download_wheels=args.download_wheels, seed=args.seed,
        )  # fmt: skip
    except BundleError as e:
        log.error("%s", e)
        return 2
    log.info("bundle %s:\n%s", report.out, "\n".join(report.lines()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
