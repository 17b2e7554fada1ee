"""The training configuration: YAML -> typed dataclasses, validated before any work starts.

The schema keeps the keys users of the reference reproduction know (`model`, `discriminator`,
`dataloader`, `training` with `lambdas`). Every problem raises `ConfigError` naming the key:

    training.lambdas.mell: unknown key (did you mean 'mel'?)
    dataloader.batch_size: expected int, got str 'big'
    discriminator.win_lengths: has 5 entries but n_fft has 6 (one entry per discriminator)
    model.base_args.dim: 250 must split into 4 heads of even size

Built by `codec.schema.build_dataclass`, the mechanism of every config: each section validates
its own values (`validate()`, keys relative to the section) and the model section hands
`base_args` / `mae_args` to the codec's own config (`ALMConfig`, `EnCodecConfig`), so a key
reads the same in a checkpoint's config.json and, prefixed with `model.`, here.

`load_config(path, overrides)` applies `key.path=value` overrides (values parsed as YAML, so
`training.num_epochs=3` is an int and `training.betas=[0.5,0.9]` a list) before validating.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from codec.data.timbre_augment import Brightness, Detune, EqTilt, Room, TimbreAugment
from codec.models.trainable import STAGES
from codec.schema import ConfigError, build_dataclass, config_section

__all__ = [
    "LOSS_KEYS", "AugmentConfig", "ConfigError", "DataloaderConfig", "DiscriminatorConfig",
    "LambdasConfig", "MixConfig",
    "ModelConfig", "TrainConfig", "TrainingConfig", "apply_overrides", "load_config",
    "resolve_model_args",
]  # fmt: skip

DATASETS = ("fsd50k", "goodsounds", "demo", "folder", "corpus")
LOSS_KEYS = ("time", "mel", "stft", "adv", "feat", "commit", "mae", "ar", "latent", "pitch")
# YAML aliases share one object per anchor, so a tiny file can expand to billions of values
# ("billion laughs"); copying refuses more values, or deeper nesting, than any real config has.
MAX_CONFIG_NODES = 100_000
MAX_CONFIG_DEPTH = 64
# NumPy's seed range; the seeds derived from it (seed * 100_003 + epoch) stay within torch's.
MAX_SEED = 2**32 - 1
DEVICE_PATTERN = re.compile(r"auto|cpu|cuda(:\d+)?")


# ------------------------------------------------------------------------------------------------
# schema
# ------------------------------------------------------------------------------------------------
@dataclass
class ModelConfig:
    """`model:` which codec to train and its arguments.

    For `almtokenizer`, `base_args` / `mae_args` override the fields of
    `codec.models.almtokenizer.preset(preset)` and are validated by `ALMConfig.from_dict`. For
    `encodec`, `base_args` go to `EnCodecCodec.from_config` (`preset` is ignored) and `mae_args`
    must be empty; its stage 1 is a plain autoencoder and stage 2 the quantized baseline.
    """

    type: str = "almtokenizer"  # a codec of the registry (codec.models.registry.codec_class)
    preset: str | None = "paper"
    base_args: dict[str, Any] = field(default_factory=dict)
    mae_args: dict[str, Any] = field(default_factory=dict)

    def validate(self) -> None:
        """The type names a registered codec; its own config validates `base_args` /
        `mae_args` (`base_args.dim: ...`)."""
        from codec.models.registry import codec_class

        try:
            codec_class(self.type)
        except ValueError as e:
            raise ConfigError(f"type: {e}") from None
        self.codec_args()

    def codec_args(self) -> dict[str, Any]:
        """The dict that `from_config` of the chosen codec receives
        (`Codec.training_args`); ConfigError keys are relative to this section."""
        from codec.models.registry import codec_class

        return codec_class(self.type).training_args(self.preset, self.base_args, self.mae_args)


@dataclass
class DiscriminatorConfig:
    """`discriminator:` one spectrogram discriminator per (n_fft, hop, win) entry: of the log-mel
    spectrogram (`kind: mel`) or of the complex STFT (`kind: stft`, EnCodec's MS-STFT
    discriminator; `n_mels` unused)."""

    kind: Literal["mel", "stft"] = "mel"

    hop_lengths: list[int] = field(default_factory=lambda: [32, 64, 128, 256, 512, 1024])
    n_fft: list[int] = field(default_factory=lambda: [128, 256, 512, 1024, 2048, 4096])
    win_lengths: list[int] = field(default_factory=lambda: [128, 256, 512, 1024, 2048, 4096])
    n_mels: int | list[int] = field(default_factory=lambda: [32, 48, 64, 80, 80, 80])
    filters: int = 32
    filters_scale: int = 1
    max_filters: int = 256
    dilations: list[int] = field(default_factory=lambda: [1, 2, 4])
    loss: Literal["hinge", "lsgan"] = "hinge"

    @property
    def n_mels_list(self) -> list[int]:
        """`n_mels` as one entry per discriminator."""
        if isinstance(self.n_mels, int):
            return [self.n_mels] * len(self.n_fft)
        return list(self.n_mels)

    def validate(self) -> None:
        n = len(self.n_fft)
        _require(n >= 1, "n_fft", "needs at least one entry")
        lists = ["hop_lengths", "win_lengths"] + (
            ["n_mels"] if isinstance(self.n_mels, list) and self.kind == "mel" else []
        )
        for name in lists:
            got = len(getattr(self, name))
            msg = f"has {got} entries but n_fft has {n} (one entry per discriminator)"
            _require(got == n, name, msg)
        for i, (nf, hop, win) in enumerate(zip(self.n_fft, self.hop_lengths, self.win_lengths)):
            _require(hop > 0, f"hop_lengths[{i}]", f"must be positive, got {hop}")
            _require(0 < win <= nf, f"win_lengths[{i}]", f"must be in (0, n_fft={nf}], got {win}")
        for i, nm in enumerate(self.n_mels_list):
            _require(nm > 0, f"n_mels[{i}]", f"must be positive, got {nm}")
        for name in ("filters", "filters_scale", "max_filters"):
            v = getattr(self, name)
            _require(v > 0, name, f"must be positive, got {v}")
        _require(all(x > 0 for x in self.dilations), "dilations", "must be positive")


DatasetName = Literal["fsd50k", "goodsounds", "demo", "folder", "corpus"]


@dataclass
class MixConfig:
    """`dataloader.mix[i]:` one more training dataset, drawn with this weight."""

    dataset: DatasetName
    dataset_path: str | None = None  # null only for the bundled demo set
    weight: float = 1.0
    # corpus only: draw just these categories (notes, speech, effects, music), e.g. to raise
    # speech's share; the split is the whole corpus's, so val/test clips stay held out
    categories: list[str] | None = None

    def validate(self) -> None:
        _require(self.weight > 0, "weight", f"must be positive, got {self.weight}")
        if self.categories is not None:
            from codec.data.corpus.sources import CATEGORIES

            _require(self.dataset == "corpus", "categories", "only the corpus has categories")
            bad = [c for c in self.categories if c not in CATEGORIES]
            msg = f"must be a non-empty list of {list(CATEGORIES)}, got {self.categories}"
            _require(not bad and bool(self.categories), "categories", msg)
        _require(
            self.dataset_path is not None or self.dataset == "demo",
            "dataset_path",
            f"dataset {self.dataset} needs a path",
        )


@dataclass
class AugmentConfig:
    """`dataloader.augment:` seeded augmentation of training crops: gain and polarity
    (codec.data.Augment) and timbre (codec.data.timbre_augment), each effect with its own
    probability `p` and range, all off by default:

        augment:
          gain_db: [-6.0, 6.0]
          polarity: 0.5
          eq_tilt: {p: 0.5, db_per_octave: [-3.0, 3.0], pivot_hz: 1000}
          brightness: {p: 0.5, gain_db: [-6.0, 6.0], freq_hz: 3000}
          detune: {p: 0.5, cents: [-50.0, 50.0]}
          room: {p: 0.3, rt60_s: [0.1, 0.6], wet: [0.05, 0.3]}
    """

    gain_db: list[float] = field(default_factory=lambda: [0.0, 0.0])  # [low, high] dB
    polarity: float = 0.0  # probability of a polarity flip
    eq_tilt: EqTilt = field(default_factory=EqTilt)
    brightness: Brightness = field(default_factory=Brightness)
    detune: Detune = field(default_factory=Detune)
    room: Room = field(default_factory=Room)

    def validate(self) -> None:
        g = self.gain_db
        _require(len(g) == 2 and g[0] <= g[1], "gain_db",
                 f"expected [low, high] with low <= high, got {g}")  # fmt: skip
        _require(0 <= self.polarity <= 1, "polarity", "must be in [0, 1]")

    def timbre(self) -> TimbreAugment:
        """The timbre effects as one `TimbreAugment` (inactive when every `p` is 0)."""
        return TimbreAugment(self.eq_tilt, self.brightness, self.detune, self.room)


@dataclass
class DataloaderConfig:
    """`dataloader:` which clips to train and evaluate on.

    `dataset` is drawn with `weight` and each `mix` entry with its own weight (for example
    corpus 0.7, demo 0.3); `epoch_size` draws make an epoch (null: all their training clips).
    The held-out set is the `eval_split` of every dataset, grouped by sound / source file.
    """

    dataset: DatasetName = "fsd50k"
    dataset_path: str = "data/FSD50K"
    weight: float = 1.0
    mix: list[MixConfig] = field(default_factory=list)
    epoch_size: int | None = None
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    batch_size: int = 16
    train_subset_size: int | None = None
    test_subset_size: int | None = None
    nsecs: float = 1.0
    num_workers: int = 0
    shuffle: bool = True
    eval_split: Literal["val", "test"] = "val"

    def validate(self) -> None:
        _require(self.batch_size > 0, "batch_size", f"must be positive, got {self.batch_size}")
        _require(self.nsecs > 0, "nsecs", f"must be positive, got {self.nsecs}")
        _require(self.num_workers >= 0, "num_workers", "must be >= 0")
        for name in ("train_subset_size", "test_subset_size", "epoch_size"):
            v = getattr(self, name)
            _require(v is None or v > 0, name, f"must be positive or null, got {v}")
        _require(self.weight > 0, "weight", f"must be positive, got {self.weight}")


@dataclass
class LambdasConfig:
    """`training.lambdas:` the weight of each loss; 0 skips computing it."""

    time: float = 0.1
    mel: float = 15.0
    # Multi-resolution STFT (spectral convergence + log magnitude),
    # `codec.training.losses.mrstft_loss`.
    stft: float = 0.0
    adv: float = 1.0
    feat: float = 2.0
    commit: float = 1.0
    mae: float = 0.1
    ar: float = 0.1
    # Stage 2 only: MSE between the mask-token decoder's frames and the frozen patchify frames
    # e. Not in the paper's loss list; a direct, cheap target that speeds up CPU training.
    latent: float = 0.0
    # Stage 2, ALMTokenizer with base_args.pitch_head: cross-entropy of each quantized token's
    # semitone against its clip's f0 (`codec.models.almtokenizer.pitch_head`).
    pitch: float = 0.0

    def weight(self, key: str) -> float:
        """The lambda of a namespaced loss key (`"loss/mel"` -> `mel`)."""
        return float(getattr(self, key.split("/", 1)[-1]))

    def validate(self) -> None:
        for k in LOSS_KEYS:
            v = getattr(self, k)
            _require(v >= 0, k, f"must be >= 0, got {v}")


@dataclass
class TrainingConfig:
    """`training:` the loop, its optimisers, logging and checkpoints."""

    stage: int = 1
    stage1_checkpoint: str | None = None
    # ALMTokenizer stage 2: root folder of the disk cache of the frozen autoencoder's latents
    # (`codec.training.latent_cache`; null: encode every batch) and crops cached per clip.
    latent_cache: str | None = None
    latent_cache_crops: int = 4
    num_epochs: int = 100
    max_steps: int | None = None
    max_minutes: float | None = None
    discriminator_train_freq: int = 1
    disc_start_step: int = 0
    # The discriminator trains alone for this many steps after disc_start_step before the
    # generator's adversarial terms join: under the balancer, a discriminator that has not
    # learnt yet gives near-zero gradients that the balancer scales up to their full share
    # (measured: mel distance rose while loss/disc stayed at 2.000).
    disc_warmup_steps: int = 0
    checkpoint_freq: int = 1000
    # Every N steps also write the model alone (no optimiser) to checkpoint_dir/step_N, to select
    # by a measure the trainer does not compute (e.g. bench.speech_band); null = never.
    keep_every: int | None = None
    eval_freq: int = 1000
    log_freq: int = 10
    start_checkpoint: str | None = None
    writer_dir: str = "runs/almtokenizer"
    checkpoint_dir: str = "work_dirs/almtokenizer"
    lr_generator: float = 1.0e-4
    lr_discriminator: float = 1.0e-4
    betas: list[float] = field(default_factory=lambda: [0.5, 0.9])
    weight_decay: float = 1.0e-5
    grad_clip: float | None = 1.0
    # EnCodec's loss balancer: the reconstruction losses' gradients at the output are scaled
    # to norms proportional to their lambdas (codec.training.loop.Trainer._balanced_backward).
    balancer: bool = False
    balancer_decay: float = 0.99
    # Losses kept OUT of the balancer, added as a plain weighted sum (lambda x raw gradient)
    # next to the balanced reconstruction losses, as Vocos, HiFi-GAN and DAC train their
    # adversarial terms: e.g. [adv, feat]. Only with `balancer: true`.
    unbalanced: list[str] = field(default_factory=list)
    # Parameter-name prefixes kept frozen on top of what the stage freezes, e.g. [encoder]:
    # fine-tune an autoencoder's decoder while its latents (and codecs trained on them) stay.
    freeze: list[str] = field(default_factory=list)
    warmup_steps: int = 0
    lr_decay: float = 1.0
    seed: int = 0
    device: str = "auto"
    threads: int | None = None
    amp: bool = True  # bf16 autocast on CUDA
    # bf16 autocast on the CPU too (AVX512-BF16 / AMX): measured 1.16-1.57x per step on one
    # thread here (`python -m bench.bench_precision`); off by default, check validation first
    amp_cpu: bool = False
    find_unused_parameters: bool = False
    mel_scales: list[list[int]] = field(
        default_factory=lambda: [[512, 128, 64], [1024, 256, 80], [2048, 512, 128]]
    )
    # First-order pre-emphasis `y[n] - a * y[n - 1]` of both signals inside the MR-STFT loss's
    # spectral-convergence term (0 = off). Spectral convergence is linear in magnitude, so
    # speech's loud fundamentals outweigh its 1-4 kHz formants; a = 0.9 lifts 2 kHz 14 dB over
    # 100 Hz. The log-magnitude term is unchanged (a per-bin gain cancels in a log difference).
    stft_preemphasis: float = 0.0
    eval_windows: list[int] = field(default_factory=lambda: [3, 6, 10])
    eval_batches: int | None = 8
    audio_clips: int = 2
    lambdas: LambdasConfig = field(default_factory=LambdasConfig)

    def validate(self) -> None:
        _require(self.stage in STAGES, "stage", f"must be one of {STAGES}, got {self.stage}")
        _require(
            self.stage != 3 or self.start_checkpoint is not None,
            "start_checkpoint",
            "stage 3 (the decoder stage) starts from a trained codec: give its checkpoint folder",
        )
        for name in ("num_epochs", "discriminator_train_freq", "checkpoint_freq", "eval_freq",
                     "log_freq", "max_steps", "max_minutes", "threads", "keep_every",
                     "latent_cache_crops", "lr_generator", "lr_discriminator"):  # fmt: skip
            v = getattr(self, name)
            _require(v is None or v > 0, name, f"must be positive, got {v}")
        for name in (
            "disc_start_step",
            "disc_warmup_steps",
            "weight_decay",
            "warmup_steps",
            "audio_clips",
        ):
            _require(getattr(self, name) >= 0, name, "must be >= 0")
        _require(len(self.betas) == 2, "betas", f"needs 2 entries, got {len(self.betas)}")
        _require(all(0 <= b < 1 for b in self.betas), "betas", "entries must be in [0, 1)")
        _require(self.grad_clip is None or self.grad_clip > 0, "grad_clip", "must be > 0 or null")
        _require(0 < self.lr_decay <= 1, "lr_decay", "must be in (0, 1]")
        _require(
            DEVICE_PATTERN.fullmatch(self.device) is not None,
            "device",
            f"must be auto, cpu, cuda or cuda:N, got {self.device!r}",
        )
        _require(0 <= self.seed <= MAX_SEED, "seed", f"must be in [0, 2**32 - 1], got {self.seed}")
        _require(len(self.mel_scales) > 0, "mel_scales", "needs at least one scale")
        for i, s in enumerate(self.mel_scales):
            _require(
                len(s) == 3 and all(x > 0 for x in s) and s[1] <= s[0],
                f"mel_scales[{i}]",
                f"expected [n_fft, hop, n_mels] with 0 < hop <= n_fft, got {s}",
            )
        _require(
            0.0 <= self.stft_preemphasis < 1.0,
            "stft_preemphasis",
            f"must be in [0, 1), got {self.stft_preemphasis}",
        )
        _require(len(self.eval_windows) > 0, "eval_windows", "needs at least one window")
        _require(all(w > 0 for w in self.eval_windows), "eval_windows", "must be positive")
        _require(self.eval_batches is None or self.eval_batches > 0, "eval_batches", "must be > 0")
        _require(0 <= self.balancer_decay < 1, "balancer_decay", "must be in [0, 1)")
        for name in self.unbalanced:
            _require(name in LOSS_KEYS, "unbalanced", f"unknown loss {name!r}; losses: {LOSS_KEYS}")
        _require(
            self.balancer or not self.unbalanced,
            "unbalanced",
            "needs balancer: true (without the balancer every loss is a plain weighted sum)",
        )
        _require(all(p.strip() for p in self.freeze), "freeze", "entries must not be empty")


@dataclass
class TrainConfig:
    """The whole `config.yaml`."""

    model: ModelConfig = field(default_factory=ModelConfig)
    discriminator: DiscriminatorConfig = field(default_factory=DiscriminatorConfig)
    dataloader: DataloaderConfig = field(default_factory=DataloaderConfig)
    training: TrainingConfig = field(default_factory=TrainingConfig)

    def to_dict(self) -> dict[str, Any]:
        """Plain nested dict (YAML/JSON-serialisable), the inverse of `from_dict`."""
        return asdict(self)

    def validate(self) -> None:
        """Rules across sections (each section validates its own values)."""
        from codec.models.registry import codec_class

        t, m = self.training, self.model
        with config_section("model"):
            codec_class(m.type).check_training(m.codec_args(), t.stage, t.stage1_checkpoint)

    @classmethod
    def from_dict(cls, raw: dict[str, Any], check_paths: bool = True) -> TrainConfig:
        """Validate a nested dict; raises `ConfigError` naming the offending key."""
        cfg = build_dataclass(cls, raw)
        t = cfg.training
        for name in ("writer_dir", "checkpoint_dir", "stage1_checkpoint"):
            value = getattr(t, name)
            if value is not None:
                setattr(t, name, expand_placeholders(value, cfg))
        if check_paths:
            _check_paths(cfg)
        return cfg


def expand_placeholders(path: str, cfg: TrainConfig) -> str:
    """`{model}` -> model.type and `{stage}` -> training.stage in a path, so one config file
    serves both stages and both codecs (e.g. `work_dirs/{model}_fsd50k/stage{stage}`)."""
    return path.replace("{model}", cfg.model.type).replace("{stage}", str(cfg.training.stage))


# ------------------------------------------------------------------------------------------------
# loading and overrides
# ------------------------------------------------------------------------------------------------
def load_config(
    path: str | Path | None, overrides: list[str] | tuple[str, ...] = (), check_paths: bool = True
) -> TrainConfig:
    """Read a YAML file (or start from defaults when `path` is None), apply overrides, validate."""
    raw: dict[str, Any] = {}
    if path is not None:
        p = Path(path)
        if not p.is_file():
            raise ConfigError(f"config file {p} does not exist")
        try:
            loaded = yaml.safe_load(p.read_text(encoding="utf-8"))
        except yaml.YAMLError as e:
            raise ConfigError(f"config file {p} is not valid YAML: {e}") from e
        except UnicodeDecodeError as e:
            raise ConfigError(f"config file {p} is not UTF-8 text: {e}") from e
        except OSError as e:
            raise ConfigError(f"config file {p} cannot be read: {e.strerror or e}") from e
        if loaded is None:
            loaded = {}
        if not isinstance(loaded, dict):
            raise ConfigError(f"config file {p} must hold a mapping at the top level")
        raw = _deep_copy(loaded, f"config file {p}")
    raw = apply_overrides(raw, overrides)
    return TrainConfig.from_dict(raw, check_paths=check_paths)


def apply_overrides(raw: dict[str, Any], overrides: list[str] | tuple[str, ...]) -> dict[str, Any]:
    """Return a copy of `raw` with each `a.b.c=value` set (value parsed as YAML)."""
    out = _deep_copy(raw)
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override {item!r}: expected key.path=value")
        key, text = item.split("=", 1)
        key = key.strip()
        parts = key.split(".")
        if not key or any(not p for p in parts):
            raise ConfigError(f"override {item!r}: empty key")
        try:
            value = yaml.safe_load(text) if text.strip() else None
        except yaml.YAMLError as e:
            raise ConfigError(f"{key}: override value {text!r} is not valid YAML: {e}") from e
        node = out
        for i, part in enumerate(parts[:-1]):
            nxt = node.get(part)
            if nxt is None:
                nxt = node[part] = {}
            elif not isinstance(nxt, dict):
                raise ConfigError(f"{'.'.join(parts[: i + 1])}: is not a section; cannot set {key}")
            node = nxt
        node[parts[-1]] = value
    return out


def _deep_copy(d: Any, where: str = "config") -> Any:
    """Copy nested dicts/lists, refusing more than MAX_CONFIG_NODES values or MAX_CONFIG_DEPTH
    levels once YAML aliases are expanded (fails fast: it stops counting at the budget)."""
    budget = MAX_CONFIG_NODES

    def copy(x: Any, depth: int) -> Any:
        nonlocal budget
        budget -= 1
        if budget < 0:
            raise ConfigError(
                f"{where}: more than {MAX_CONFIG_NODES} values once YAML aliases are expanded"
            )
        if depth > MAX_CONFIG_DEPTH:
            raise ConfigError(f"{where}: nested deeper than {MAX_CONFIG_DEPTH} levels")
        if isinstance(x, dict):
            return {k: copy(v, depth + 1) for k, v in x.items()}
        if isinstance(x, list):
            return [copy(v, depth + 1) for v in x]
        return x

    return copy(d, 0)


# ------------------------------------------------------------------------------------------------
# semantic checks
# ------------------------------------------------------------------------------------------------
def _require(ok: bool, key: str, message: str) -> None:
    if not ok:
        raise ConfigError(f"{key}: {message}")


def _check_paths(cfg: TrainConfig) -> None:
    dl, t = cfg.dataloader, cfg.training
    _require(
        Path(dl.dataset_path).exists(),
        "dataloader.dataset_path",
        f"{dl.dataset_path} does not exist",
    )
    for i, mx in enumerate(dl.mix):
        _require(
            mx.dataset_path is None or Path(mx.dataset_path).exists(),
            f"dataloader.mix[{i}].dataset_path",
            f"{mx.dataset_path} does not exist",
        )
    if t.stage == 2 and t.stage1_checkpoint is not None:
        _require(
            Path(t.stage1_checkpoint).is_dir(),
            "training.stage1_checkpoint",
            f"{t.stage1_checkpoint} is not a checkpoint folder",
        )
    if t.start_checkpoint is not None:
        _require(
            Path(t.start_checkpoint).is_dir(),
            "training.start_checkpoint",
            f"{t.start_checkpoint} is not a checkpoint folder",
        )


# ------------------------------------------------------------------------------------------------
# model arguments
# ------------------------------------------------------------------------------------------------
def resolve_model_args(m: ModelConfig) -> dict[str, Any]:
    """The dict that `from_config` of the chosen codec receives (`ModelConfig.codec_args`);
    ConfigError keys start with `model.` (`model.base_args.dim: ...`)."""
    with config_section("model"):
        return m.codec_args()
