"""The training side of the corpus: the "corpus" dataset and its split by source file, weighted
mixing of datasets, loader-side augmentation (gain, polarity, crop), config keys, and that all of
it is deterministic for resume."""

from __future__ import annotations

from collections import Counter
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
import yaml

from codec.data import Augment, CropDataset, MixedDataset, build_dataset, list_items
from codec.data.corpus.manifest import ManifestRow, write_manifest
from codec.schema import build_dataclass
from codec.training.config import ConfigError, DataloaderConfig, TrainConfig
from codec.training.data import build_loaders

SR = 24000
REPO = Path(__file__).resolve().parents[1]


def make_corpus(root: Path, files_per_source: int = 20, clips_per_file: int = 2) -> Path:
    """A built-looking corpus: 3 sources x `files_per_source` files x `clips_per_file` clips."""
    rng = np.random.default_rng(0)
    rows = []
    for source, category in (("s-speech", "speech"), ("s-fx", "effects"), ("s-music", "music")):
        for f in range(files_per_source):
            for c in range(clips_per_file):
                rel = f"audio/{source}_{f}_{c}.flac"
                (root / rel).parent.mkdir(parents=True, exist_ok=True)
                sf.write(root / rel, 0.2 * rng.standard_normal(SR).astype(np.float32), SR)
                row = ManifestRow(rel, f"{source}{f}{c}", source, "pkg", "MIT", category, 1.0)
                rows.append(replace(row, group=f"{source}:file{f}", start=float(c)))
    write_manifest(root, rows)
    return root


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_corpus(tmp_path_factory.mktemp("corpus"))


def test_corpus_split_is_grouped_by_source_file(corpus: Path) -> None:
    parts = {s: list_items("corpus", corpus, s) for s in ("train", "val", "test")}
    groups = {s: {it.group for it in items} for s, items in parts.items()}
    assert not groups["train"] & groups["val"] and not groups["train"] & groups["test"]
    assert not groups["val"] & groups["test"]
    assert sum(len(v) for v in parts.values()) == len(list_items("corpus", corpus, "all")) == 120
    for split in ("val", "test"):  # stratified: 1 of the 20 files of each source
        assert Counter(it.source for it in parts[split]) == {"s-speech": 2, "s-fx": 2, "s-music": 2}
    assert len(parts["train"]) == 3 * 18 * 2  # 90% of the files of each source


def test_corpus_dataset_crops(corpus: Path) -> None:
    ds = build_dataset("corpus", corpus, "train", 0.5, seed=3)
    assert len(ds) == 108 and ds[0].shape == (1, SR // 2)
    with pytest.raises(FileNotFoundError, match="no corpus manifest"):
        build_dataset("corpus", corpus / "missing", "train", 0.5)


def test_augment_is_seeded_and_bounded() -> None:
    wav = torch.full((1, 100), 0.5)
    aug = Augment((-6.0, 6.0), 0.5)
    outs = [aug.apply(wav, s) for s in range(200)]
    assert torch.equal(aug.apply(wav, 7), outs[7])  # same seed, same result
    peaks = torch.stack([o.abs().max() for o in outs])
    assert peaks.max() <= 1.0 + 1e-6 and peaks.min() >= 0.5 * 10 ** (-6 / 20) - 1e-6
    signs = Counter(int(torch.sign(o[0, 0])) for o in outs)
    assert 60 < signs[-1] < 140  # polarity flipped about half the time
    assert torch.equal(Augment((-6.0, 6.0), 1.0).apply(wav, 1).sign(), -wav.sign())
    loud = torch.full((1, 10), 0.99)
    assert Augment((12.0, 12.0)).apply(loud, 0).abs().max() <= 1.0  # never pushed past 0 dBFS
    with pytest.raises(ValueError, match="gain_db"):
        Augment((3.0, -3.0))
    with pytest.raises(ValueError, match="polarity"):
        Augment((0.0, 0.0), 1.5)


def test_crop_dataset_augmentation_depends_on_seed_epoch_index(corpus: Path) -> None:
    paths = sorted((corpus / "audio").glob("*.flac"))[:4]
    plain = CropDataset(paths, 0.25, seed=1)
    aug = CropDataset(paths, 0.25, seed=1, augment=Augment((-12.0, -1.0), 0.5))
    again = CropDataset(paths, 0.25, seed=1, augment=Augment((-12.0, -1.0), 0.5))
    ratio = aug[2] / plain[2]  # same crop position, one gain and sign for the whole crop
    assert torch.allclose(ratio, ratio[0, 0].expand_as(ratio), atol=1e-4)
    assert 10 ** (-12 / 20) - 1e-4 <= ratio.abs()[0, 0] <= 10 ** (-1 / 20) + 1e-4
    assert torch.equal(aug[2], again[2])
    before = aug[2]
    aug.set_epoch(1)
    assert not torch.equal(aug[2], before)  # a new epoch draws a new crop and gain
    no_op = CropDataset(paths, 0.25, seed=1, augment=Augment())
    assert torch.equal(no_op[1], plain[1])  # the defaults change nothing


def test_mixture_follows_weights_and_is_deterministic() -> None:
    a = CropDataset([REPO / "data/demo/sound_files/flute_demo/akg/0000.wav"] * 50, 0.1)
    b = CropDataset([REPO / "data/demo/sound_files/flute_demo/akg/0001.wav"] * 5, 0.1)
    mix = MixedDataset([a, b], [0.7, 0.3], epoch_size=100, seed=0)
    assert mix.counts() == [70, 30] and len(mix) == 100
    assert Counter(k for k, _, _ in mix.table) == {0: 70, 1: 30}
    draws_b = Counter(j for k, j, _ in mix.table if k == 1)
    assert set(draws_b.values()) == {6}  # 30 draws of 5 clips: every clip 6 times
    assert len({(k, j, d) for k, j, d in mix.table}) == 100  # repeats differ by draw counter
    table0 = list(mix.table)
    mix.set_epoch(1)
    assert mix.table != table0 and a.epoch == 1 and b.epoch == 1
    mix.set_epoch(0)
    assert mix.table == table0
    assert MixedDataset([a, b], [1, 1]).counts() == [28, 27]
    with pytest.raises(ValueError, match="positive"):
        MixedDataset([a, b], [1.0, 0.0])


def _cfg(corpus: Path, **dataloader: object) -> TrainConfig:
    raw = {
        "model": {"type": "encodec", "base_args": {}, "mae_args": {}},
        "dataloader": {"dataset": "corpus", "dataset_path": str(corpus), "batch_size": 4,
                       "nsecs": 0.25, "test_subset_size": 8, **dataloader},
        "training": {"stage": 1, "seed": 5},
    }  # fmt: skip
    return TrainConfig.from_dict(raw)


def test_config_mix_and_augment_keys(corpus: Path) -> None:
    cfg = _cfg(corpus, weight=0.7, mix=[{"dataset": "demo", "dataset_path": "data/demo",
                                         "weight": 0.3}],
               augment={"gain_db": [-6, 3], "polarity": 0.5}, epoch_size=40)  # fmt: skip
    assert cfg.dataloader.mix[0].weight == 0.3 and cfg.dataloader.augment.gain_db == [-6.0, 3.0]
    bad = [
        ({"mix": [{"dataset": "demo", "wieght": 1}]}, r"^dataloader\.mix\[0\]\.wieght: unknown"),
        ({"mix": [{"dataset": "corpus"}]}, r"^dataloader\.mix\[0\]\.dataset_path: "),
        ({"mix": [{"dataset": "demo", "weight": 0}]}, r"^dataloader\.mix\[0\]\.weight: "),
        ({"mix": [{"dataset": "corpus", "dataset_path": "/nope"}]}, r"^dataloader\.mix\[0\]"),
        ({"augment": {"gain_db": [3, -3]}}, r"^dataloader\.augment\.gain_db: "),
        ({"augment": {"gain": [3, 3]}}, r"^dataloader\.augment\.gain: unknown"),
        ({"augment": {"polarity": 2}}, r"^dataloader\.augment\.polarity: "),
        ({"epoch_size": 0}, r"^dataloader\.epoch_size: "),
        ({"weight": -1}, r"^dataloader\.weight: "),
    ]
    for extra, pattern in bad:
        with pytest.raises(ConfigError, match=pattern):
            _cfg(corpus, **extra)


# the codec trainer's configs (configs/lm_*.yaml are the token LM's, with their own schema)
CODEC_CONFIGS = sorted(
    f"configs/{p.name}" for p in (REPO / "configs").glob("*.yaml") if not p.name.startswith("lm_")
)


@pytest.mark.parametrize("path", ["config.yaml", *CODEC_CONFIGS])
def test_existing_dataloader_sections_still_load(path: str) -> None:
    """Every shipped dataloader section validates; one that does not use the new keys gets
    defaults that leave it as it was (one dataset, no augmentation)."""
    raw = yaml.safe_load((REPO / path).read_text())["dataloader"]
    dl = build_dataclass(DataloaderConfig, raw)
    if "mix" not in raw:
        assert dl.mix == [] and dl.weight == 1.0 and dl.epoch_size is None
    if "augment" not in raw:
        assert dl.augment.gain_db == [0.0, 0.0] and dl.augment.polarity == 0.0
    for m in dl.mix:
        assert m.weight > 0 and (m.dataset_path is not None or m.dataset == "demo")


def test_mixed_loaders_resume_exactly(corpus: Path) -> None:
    """corpus 0.7 + demo 0.3 with augmentation: the batches after a resume at batch 3 are those
    of the uninterrupted epoch, and the held-out set spans both datasets' val splits."""
    cfg = _cfg(corpus, weight=0.7, mix=[{"dataset": "demo", "dataset_path": str(REPO / "data/demo"),
                                         "weight": 0.3}],
               augment={"gain_db": [-6, 0], "polarity": 0.5}, epoch_size=40)  # fmt: skip
    loaders = build_loaders(cfg, rank=0, world_size=1)
    assert isinstance(loaders.train, MixedDataset) and len(loaders.train) == 40
    assert loaders.steps_per_epoch == 10
    full = [b.clone() for b in loaders.epoch_loader(1)]
    resumed = [b.clone() for b in build_loaders(cfg, 0, 1).epoch_loader(1, skip_batches=3)]
    assert len(resumed) == 7
    for x, y in zip(full[3:], resumed):
        assert torch.equal(x, y)
    other = [b for b in loaders.epoch_loader(2)]
    assert not torch.equal(other[0], full[0])
    held = {str(p) for p in loaders.held_out.paths}
    assert any("/data/demo/" in p for p in held) and any(str(corpus) in p for p in held)


def test_mix_entry_draws_only_its_categories(corpus: Path) -> None:
    """`mix[i].categories` raises one category's share; the split stays the whole corpus's, so
    its val clips are exactly the category's val clips of the corpus, listed once."""
    from codec.data import filter_categories
    from codec.training.data import build_held_out_dataset, build_train_dataset

    every = list_items("corpus", corpus, "train")
    cats = sorted({it.category for it in every})
    want = cats[0]
    cfg = _cfg(corpus, weight=0.5, epoch_size=60, test_subset_size=None,
               mix=[{"dataset": "corpus", "dataset_path": str(corpus), "weight": 0.5,
                     "categories": [want]}])  # fmt: skip
    train = build_train_dataset(cfg.dataloader, seed=0)
    part = train.datasets[1]  # the category-filtered draw
    assert {it.category for it in part.items} == {want}
    assert len(part.items) == len(filter_categories(every, [want])) < len(every)
    held = build_held_out_dataset(cfg.dataloader, seed=0)
    val = list_items("corpus", corpus, "val")
    assert sorted(map(str, held.paths)) == sorted(str(it.path) for it in val)  # no duplicates
    for bad, pattern in (
        ([{"dataset": "demo", "weight": 1, "categories": ["speech"]}], "only the corpus"),
        ([{"dataset": "corpus", "dataset_path": str(corpus), "categories": ["speach"]}],
         "non-empty list of"),
    ):  # fmt: skip
        with pytest.raises(ConfigError, match=pattern):
            _cfg(corpus, mix=bad)
