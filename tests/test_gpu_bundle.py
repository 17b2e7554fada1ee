"""scripts/gpu_bundle.py: a GPU bundle from a tiny repository holds what training needs, reports
its size per part, refuses to exceed its limit; gpu_bundle_pack.py returns a run within the
device tool's limits."""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import shutil
import sqlite3
import sys
from dataclasses import replace
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
import soundfile as sf
import torch
import yaml
from safetensors.torch import load_file, save_file

from codec.data import list_items
from codec.data.corpus.manifest import ManifestRow, write_manifest
from tests.fixtures import make_goodsounds

REPO = Path(__file__).resolve().parents[1]
SR = 24000
MiB = 1 << 20


def _load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, REPO / "scripts" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


gb = _load("gpu_bundle")
pack = _load("gpu_bundle_pack")


def make_repo(root: Path) -> Path:
    """A repository in miniature: codec/, configs/, a checkpoint, a corpus and a demo set."""
    (root / "codec").mkdir(parents=True)
    (root / "codec" / "__init__.py").write_text('"""stub"""\n')
    (root / "codec" / "__pycache__").mkdir()
    (root / "codec" / "__pycache__" / "x.pyc").write_bytes(b"0" * 1000)
    ck = root / "checkpoints" / "tiny"
    ck.mkdir(parents=True)
    (ck / "config.json").write_text('{"codec": "encodec"}')
    save_file({"w": torch.randn(256, 256), "n": torch.arange(4)}, str(ck / "model.safetensors"))
    rng, rows = np.random.default_rng(0), []
    for source, category in (("s-speech", "speech"), ("s-music", "music")):
        for f in range(20):
            rel = f"audio/{source}_{f}.flac"
            (root / "data/corpus" / rel).parent.mkdir(parents=True, exist_ok=True)
            sf.write(root / "data/corpus" / rel, 0.1 * rng.standard_normal(SR // 4), SR)
            row = ManifestRow(rel, f"{source}{f}", source, "pkg", "MIT", category, 0.25)
            rows.append(replace(row, group=f"{source}:file{f}"))
    write_manifest(root / "data/corpus", rows)
    make_goodsounds(root / "data/demo", midis=(57, 60, 64, 67, 69, 72), microphones=("akg",),
                    n_scales=0, extra_klass=None, seconds=0.25, sr=SR)  # fmt: skip
    cfg = yaml.safe_load((REPO / "configs" / "decoder_encodec.yaml").read_text())
    cfg["training"]["start_checkpoint"] = "checkpoints/tiny"
    (root / "configs").mkdir()
    (root / "configs" / "tiny.yaml").write_text(yaml.safe_dump(cfg))
    (root / "wheels").mkdir()
    (root / "wheels" / "soundfile-0.0-py3-none-any.whl").write_bytes(b"PK" * 100)
    return root


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_repo(tmp_path_factory.mktemp("repo"))


def build(repo: Path, out: Path, **kw: object):
    kw = {"repo": repo, "wheels": repo / "wheels", "data_mib": 0.1, **kw}
    return gb.build_bundle(out, repo / "configs" / "tiny.yaml", ["checkpoints/tiny"], **kw)


def test_bundle_holds_what_training_needs_and_reports_its_size(repo: Path, tmp_path: Path) -> None:
    out = tmp_path / "bundle"
    report = build(repo, out)
    for rel in ("codec/__init__.py", "configs/tiny.yaml", "checkpoints/tiny/model.safetensors",
                "checkpoints/tiny/config.json", "gpu_bundle_pack.py", "bundle.json",
                "wheels/soundfile-0.0-py3-none-any.whl"):  # fmt: skip
        assert (out / rel).is_file(), rel
    assert not (out / "codec" / "__pycache__").exists()
    assert os.access(out / "run_gpu.sh", os.X_OK)
    assert {"soundfile==0.14.0", "encodec==0.1.1"} <= set(
        (out / "requirements-gpu.txt").read_text().split()
    )
    # the report adds up to the bytes on disk; bundle.json carries the same parts
    on_disk = sum(f.stat().st_size for f in out.rglob("*") if f.is_file())
    assert report.total == on_disk <= report.limit
    info = json.loads((out / "bundle.json").read_text())
    assert [p["name"] for p in info["parts"]] == [p.name for p in report.parts[:-1]]
    assert "total" in report.lines()[-1]
    # data: within the budget, drawn from the train splits only, readable by the loaders
    data = sum(f.stat().st_size for f in (out / "data").rglob("*") if f.is_file())
    assert data <= 0.1 * MiB + 100_000  # + the two small index files
    full_train = {it.row.path for it in list_items("corpus", repo / "data/corpus", "train")}
    bundled = list_items("corpus", out / "data/corpus", "all")
    assert bundled and {it.row.path for it in bundled} <= full_train
    demo = list_items("demo", out / "data/demo", "all")
    full_demo = {it.take_id for it in list_items("demo", repo / "data/demo", "train")}
    assert demo and {it.take_id for it in demo} <= full_demo
    assert all(it.path.suffix == ".flac" and it.path.is_file() for it in demo)
    with sqlite3.connect(out / "data/demo/database.sqlite") as conn:
        assert conn.execute("SELECT COUNT(*) FROM takes").fetchone()[0] == len(demo)
    # a second build replaces the first; --half stores the weights as fp16
    half = build(repo, out, half=True)
    ck = [p for p in half.parts if p.name.startswith("checkpoints/tiny")][0]
    assert "fp16" in ck.name and ck.nbytes < 0.6 * (256 * 256 * 4)
    w = load_file(str(out / "checkpoints/tiny/model.safetensors"))
    assert w["w"].dtype == torch.float16 and w["n"].dtype == torch.int64


def test_over_the_limit_is_refused_and_nothing_is_written(
    repo: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch
) -> None:
    probe = build(repo, tmp_path / "probe")
    fixed = sum(p.nbytes for p in probe.parts if not p.name.startswith(("data/", "bundle")))
    shutil.rmtree(tmp_path / "probe")
    out = tmp_path / "bundle"
    with pytest.raises(gb.BundleError, match="does not fit"):
        build(repo, out, limit_mib=0.2)  # the checkpoint alone is 0.25 MiB
    # audio fills its budget exactly; the indexes and bundle.json then go over
    monkeypatch.setattr(gb, "HEADROOM_MIB", 0.0)
    with pytest.raises(gb.BundleError, match="over --limit-mib"):
        build(repo, out, limit_mib=(fixed + 60_000) / MiB, data_mib=None)
    assert list(tmp_path.iterdir()) == []  # no bundle, no staging folder
    argv = ["--repo", str(repo), "--config", str(repo / "configs/tiny.yaml"), "--checkpoint",
            "checkpoints/tiny", "--out", str(out), "--limit-mib", "0.2"]  # fmt: skip
    with caplog.at_level(logging.ERROR):
        assert gb.main(argv) == 2
    assert "does not fit" in caplog.text and not out.exists()


def test_a_config_whose_checkpoint_is_not_bundled_is_refused(repo: Path, tmp_path: Path) -> None:
    with pytest.raises(gb.BundleError, match="add --checkpoint checkpoints/tiny"):
        gb.build_bundle(tmp_path / "b", repo / "configs/tiny.yaml", [], repo=repo, data_mib=0.1)
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "keep.txt").write_text("not a bundle")
    with pytest.raises(gb.BundleError, match="not a bundle"):
        build(repo, tmp_path / "other")


def test_pack_returns_a_flat_run_within_the_limits(tmp_path: Path, monkeypatch) -> None:
    from torch.utils.tensorboard import SummaryWriter

    work, out = tmp_path / "work", tmp_path / "out"
    for name in ("best", "latest"):
        (work / "ckpt" / name).mkdir(parents=True)
        save_file({"w": torch.randn(128, 128)}, str(work / "ckpt" / name / "model.safetensors"))
        (work / "ckpt" / name / "config.json").write_text("{}")
    save_file({"d": torch.randn(4)}, str(work / "ckpt/latest/discriminator.safetensors"))
    writer = SummaryWriter(str(work / "tb"))
    for step in range(3):
        writer.add_scalar("loss/mel", 1.0 / (step + 1), step)
    writer.close()
    (work / "train.log").write_text("done: 3 steps\n")
    monkeypatch.setattr(pack, "FILE_LIMIT", 50_000)  # the fp32 model (65 KB) must shrink
    assert pack.main(["--work", str(work), "--out", str(out), "--rc", "0", "--", "a.b=1"]) == 0
    names = sorted(p.name for p in out.iterdir())
    assert names == ["config.json", "discriminator.safetensors", "model.safetensors",
                     "result.json", "scalars.csv", "train.log"]  # fmt: skip
    assert all(p.is_file() and p.stat().st_size <= 50_000 for p in out.iterdir())
    assert load_file(str(out / "model.safetensors"))["w"].dtype == torch.float16
    result = json.loads((out / "result.json").read_text())
    assert result["checkpoint"] == "best" and result["model"] == "float16"
    assert result["overrides"] == ["a.b=1"] and result["last_scalars"]["loss/mel"] == pytest.approx(
        1 / 3
    )
    assert len((out / "scalars.csv").read_text().splitlines()) == 4
