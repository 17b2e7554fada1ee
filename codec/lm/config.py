"""The token LM's training configuration: YAML -> typed dataclasses, validated before any work.

    model:     the architecture and scheme (`codec.lm.model.LMModelConfig`)
    data:      shard folders, context in seconds, the held-out rule (`codec.lm.data`)
    training:  steps, optimiser, precision, logging, checkpoints

Built by `codec.schema.build_dataclass`, the mechanism of every config in the project: an
unknown key, a wrong type or a bad value raises `ConfigError` naming the dotted key
(`model.dropuot: unknown key (did you mean 'dropout'?)`). `load_config(path, overrides)` applies
`key.path=value` overrides (values parsed as YAML) as `python -m codec.training` does.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from codec.lm.model import LMModelConfig
from codec.schema import ConfigError, build_dataclass
from codec.training.config import DEVICE_PATTERN, MAX_SEED, apply_overrides

__all__ = ["ConfigError", "LMConfig", "LMDataConfig", "LMTrainingConfig", "load_config"]

MAX_CONTEXT_SECONDS = 600.0


def _require(ok: bool, key: str, message: str) -> None:
    if not ok:
        raise ConfigError(f"{key}: {message}")


@dataclass
class LMDataConfig:
    """`data:` which tokens to train on and how much audio the model sees at once.

    Attributes:
        shards: tokenized folders (or folders of them), all from one tokenizer.
        context_seconds: the context in seconds of audio; frames = seconds * frame rate (from
            the manifest), so every codec gets the same audio context.
        held_out_fraction, group_by, split_seed: the split of folders tokenized with
            `--split all` (`codec.lm.data`); folders of `--split train/val/test` keep theirs.
        train_fraction: a stable, nested subset of the training clips (a data-size curve:
            the clips kept at 0.25 are kept at 0.5); the held-out clips stay whole.
        eval_chunks: held-out chunks of `context` frames scored at each evaluation during
            training (null: all of them); `python -m codec.lm.evaluate` scores all.
        num_workers: DataLoader workers.
    """

    shards: list[str] = field(default_factory=list)
    context_seconds: float = 4.0
    held_out_fraction: float = 0.1
    group_by: Literal["clip", "folder"] = "clip"
    split_seed: int = 0
    train_fraction: float = 1.0
    eval_chunks: int | None = 64
    num_workers: int = 0

    def validate(self) -> None:
        _require(len(self.shards) > 0, "shards", "needs at least one tokenized folder")
        _require(
            0 < self.context_seconds <= MAX_CONTEXT_SECONDS,
            "context_seconds",
            f"must be in (0, {MAX_CONTEXT_SECONDS:g}], got {self.context_seconds}",
        )
        _require(
            0 <= self.held_out_fraction < 1,
            "held_out_fraction",
            f"must be in [0, 1), got {self.held_out_fraction}",
        )
        _require(0 <= self.split_seed <= MAX_SEED, "split_seed", "must be in [0, 2**32 - 1]")
        _require(
            0 < self.train_fraction <= 1,
            "train_fraction",
            f"must be in (0, 1], got {self.train_fraction}",
        )
        _require(
            self.eval_chunks is None or self.eval_chunks > 0,
            "eval_chunks",
            "must be positive or null",
        )
        _require(self.num_workers >= 0, "num_workers", "must be >= 0")

    def context_frames(self, frame_rate: float) -> int:
        """Frames of `context_seconds` at `frame_rate` (rounded, at least 1)."""
        return max(1, round(self.context_seconds * frame_rate))


@dataclass
class LMTrainingConfig:
    """`training:` the loop: AdamW with linear warm-up and cosine decay, logging, checkpoints."""

    max_steps: int = 20000
    batch_size: int = 16
    lr: float = 3.0e-4
    min_lr_ratio: float = 0.1  # the cosine ends at lr * min_lr_ratio
    warmup_steps: int = 500
    betas: list[float] = field(default_factory=lambda: [0.9, 0.95])
    weight_decay: float = 0.1  # on matrices and embeddings, not on norms and biases
    grad_clip: float | None = 1.0
    seed: int = 0
    device: str = "auto"
    threads: int | None = None
    amp: bool = True  # bf16 autocast on CUDA
    amp_cpu: bool = False  # bf16 autocast on the CPU (python -m bench.bench_lm measures it)
    log_freq: int = 50
    eval_freq: int = 1000
    checkpoint_freq: int = 1000
    max_minutes: float | None = None
    writer_dir: str = "runs/lm"
    checkpoint_dir: str = "work_dirs/lm"

    def validate(self) -> None:
        for name in ("max_steps", "batch_size", "log_freq", "eval_freq", "checkpoint_freq",
                     "threads", "max_minutes", "lr"):  # fmt: skip
            v = getattr(self, name)
            _require(v is None or v > 0, name, f"must be positive, got {v}")
        _require(self.warmup_steps >= 0, "warmup_steps", "must be >= 0")
        _require(self.weight_decay >= 0, "weight_decay", "must be >= 0")
        _require(0 <= self.min_lr_ratio <= 1, "min_lr_ratio", "must be in [0, 1]")
        _require(
            len(self.betas) == 2 and all(0 <= b < 1 for b in self.betas),
            "betas",
            f"expected 2 entries in [0, 1), got {self.betas}",
        )
        _require(self.grad_clip is None or self.grad_clip > 0, "grad_clip", "must be > 0 or null")
        _require(0 <= self.seed <= MAX_SEED, "seed", f"must be in [0, 2**32 - 1], got {self.seed}")
        _require(
            DEVICE_PATTERN.fullmatch(self.device) is not None,
            "device",
            f"must be auto, cpu, cuda or cuda:N, got {self.device!r}",
        )


@dataclass
class LMConfig:
    """The whole `configs/lm_*.yaml`."""

    model: LMModelConfig = field(default_factory=LMModelConfig)
    data: LMDataConfig = field(default_factory=LMDataConfig)
    training: LMTrainingConfig = field(default_factory=LMTrainingConfig)

    def to_dict(self) -> dict[str, Any]:
        """Plain nested dict, the inverse of `from_dict`."""
        return asdict(self)

    @classmethod
    def from_dict(cls, raw: dict[str, Any], check_paths: bool = True) -> LMConfig:
        """Validate a nested dict; raises `ConfigError` naming the offending key."""
        cfg = build_dataclass(cls, raw)
        if check_paths:
            for i, entry in enumerate(cfg.data.shards):
                _require(Path(entry).exists(), f"data.shards[{i}]", f"{entry} does not exist")
        return cfg


def load_config(
    path: str | Path | None, overrides: list[str] | tuple[str, ...] = (), check_paths: bool = True
) -> LMConfig:
    """Read a YAML file (None: the defaults), apply `key.path=value` overrides, validate."""
    raw: Any = {}
    if path is not None:
        p = Path(path)
        if not p.is_file():
            raise ConfigError(f"config file {p} does not exist")
        try:
            raw = yaml.safe_load(p.read_text(encoding="utf-8")) or {}
        except yaml.YAMLError as e:
            raise ConfigError(f"config file {p} is not valid YAML: {e}") from e
        except (UnicodeDecodeError, OSError) as e:
            raise ConfigError(f"config file {p} cannot be read: {e}") from e
        if not isinstance(raw, dict):
            raise ConfigError(f"config file {p} must hold a mapping at the top level")
    # apply_overrides copies the tree with a node budget (YAML alias bombs are refused)
    return LMConfig.from_dict(apply_overrides(raw, overrides), check_paths=check_paths)
