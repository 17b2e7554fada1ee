"""Typed configuration of the ALMTokenizer model: `BaseArgs`, `MAEArgs`, `ALMConfig`, presets.

The field names follow the `model:` section of config.yaml (`base_args`, `mae_args`), which in
turn follows the reference reproduction. `ALMConfig.from_dict` is strict (`codec.schema`): an
unknown key, a wrong type or an inconsistent value is a `ConfigError` (a ValueError) that names
the key, before any model is built.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any, Literal

from codec.models.base import SAMPLE_RATE
from codec.models.vocos import VocosConfig
from codec.schema import ConfigError, build_dataclass, config_section

FRONTENDS: tuple[str, ...] = ("encodec",)
# Upper bounds far above any real model: a config.json asking for 1e9 layers or codebooks is
# refused by `validate` instead of hanging or exhausting memory while the model is built.
MAX_LAYERS, MAX_DIM, MAX_FFN_DIM = 64, 8192, 32768
MAX_CODEBOOKS, MAX_CODEBOOK_SIZE, MAX_ITERS = 64, 65536, 10_000


def _check_max(obj: Any, names: tuple[str, ...], high: int) -> None:
    for name in names:
        value = getattr(obj, name)
        if value is not None and value > high:
            raise ConfigError(f"{name}: must be <= {high}, got {value}")


@dataclass
class BaseArgs:
    """Sizes of the main path: front end, query transformers, RVQ and the depth-AR head.

    Attributes:
        frontend: patchify/unpatchify implementation; "encodec" (the only one): a frozen
            EnCodec-architecture autoencoder (SEANet encoder/decoder with LSTM), continuous
            latents before its RVQ.
        frontend_checkpoint: where the frozen autoencoder's weights come from: one of our
            EnCodec checkpoint folders (e.g. `checkpoints/encodec_demo`), the official
            `encodec_24khz-d7cc33bc.th` file, or "official" (that file in the torch hub cache).
            Only read when a model is set up for training (`load_frontend_checkpoint`); an
            ALMTokenizer checkpoint folder carries the front-end weights itself.
        frame_rate: patch frames per second: sample_rate / prod(encodec_ratios) (75 Hz).
        patch_dim: d, the channel size of the patch frames `e` (the autoencoder's dimension).
        encodec_n_filters, encodec_residual_layers, encodec_ratios, encodec_lstm,
            encodec_causal, encodec_norm: the autoencoder's architecture (`EnCodecConfig`'s
            n_filters, n_residual_layers, ratios, lstm, causal, norm), so a checkpoint rebuilds
            strictly. Filled from `frontend_checkpoint` by `resolve_frontend_args`.
        standardize: standardise frames per channel (statistics of the training data, stored
            as buffers) before the transformers, de-standardise before unpatchify.
        dim: D, the width of the query transformers and of the tokens `h`.
        n_heads: attention heads of the encoder and decoder transformers.
        n_layers: encoder transformer layers.
        decoder_n_layers: decoder transformer layers.
        ffn_dim: hidden size of the transformer feed-forward blocks.
        causal: causal attention (window-granular in the decoder).
        attn_span: sliding-window attention span of the query/mask transformers, in positions
            of the interleaved sequence (the reference reproduction uses 16); None: unlimited.
        n_codebooks: n_q, RVQ depth.
        codebook_size: K, entries per codebook.
        codebook_dim: dimension of the codewords (projections D -> codebook_dim -> D); None: D.
        ema_decay: EMA decay of the codebook updates.
        dead_code_steps: a codeword unused for this many training steps is replaced by a
            vector of the current batch.
        kmeans_iters: Lloyd iterations of the k-means codebook initialisation.
        quantizer_warmup_steps: training steps that pass the tokens unquantized while their
            vectors are collected; the codebooks are then k-means-initialised on ~8k vectors
            of a trained encoder instead of on one batch of an untrained one (0: first batch).
        kmeans_features_path: optional `.npy` / `.safetensors` file of precomputed features
            `[N, codebook_dim]` (the "semantic prior"); k-means over them initialises the first
            codebook. None: every codebook is initialised by k-means on the first training batch.
        window_min, window_max: training range of the window size w (drawn per batch);
            window_max also bounds the w accepted at inference (one mask vector per position).
        window_summary: a direct path from the start of training: each query input is the
            query vector plus the mean of its own group's frames, and each decoder mask vector
            is added to its group's token. The bottleneck is unchanged (the decoder still only
            sees the tokens); without it the query and mask attention must first find their
            group, which stalled stage 2 (bench/results/pilot_stage2.md).
        group_linear: position-wise linear paths between a group's frames and its token, on
            both sides (codec.models.almtokenizer.group_linear), zero-initialised: a checkpoint
            without them loads and starts out unchanged.
        default_window: w used when `encode`/`decode`/`frame_rate` get `window=None`.
        ar_layers: layers of the depth-AR transformer; 0 disables the AR loss.
        ar_dim, ar_n_heads: width and heads of the depth-AR transformer.
        pitch_head: the auxiliary pitch head on the quantized tokens (training only; its loss
            is `training.lambdas.pitch`; `codec.models.almtokenizer.pitch_head`).
        acoustic_decoder: unpatchify's decoder: "seanet" (the autoencoder's own, from
            `frontend_checkpoint`) or "vocos" (`codec.models.vocos`, told the window; it
            starts untrained and learns in the decoder stage, training.stage 3).
        vocos: the Vocos decoder's architecture (used when `acoustic_decoder` is "vocos").
    """

    frontend: str = "encodec"
    frontend_checkpoint: str | None = None
    frame_rate: int = 75
    patch_dim: int = 128
    encodec_n_filters: int = 32
    encodec_residual_layers: int = 1
    encodec_ratios: list[int] = field(default_factory=lambda: [8, 5, 4, 2])
    encodec_lstm: int = 2
    encodec_causal: bool = True
    encodec_norm: str = "weight_norm"
    standardize: bool = True
    dim: int = 256
    n_heads: int = 4
    n_layers: int = 4
    decoder_n_layers: int = 4
    ffn_dim: int = 1024
    causal: bool = True
    attn_span: int | None = None
    n_codebooks: int = 3
    codebook_size: int = 2048
    codebook_dim: int | None = 64
    ema_decay: float = 0.99
    dead_code_steps: int = 200
    kmeans_iters: int = 10
    quantizer_warmup_steps: int = 0
    kmeans_features_path: str | None = None
    window_min: int = 2
    window_max: int = 10
    window_summary: bool = True
    group_linear: bool = False
    default_window: int = 6
    ar_layers: int = 2
    ar_dim: int = 128
    ar_n_heads: int = 4
    pitch_head: bool = False
    acoustic_decoder: Literal["seanet", "vocos"] = "seanet"
    vocos: VocosConfig = field(default_factory=VocosConfig)

    @property
    def hop_length(self) -> int:
        """Waveform samples per patch frame."""
        return SAMPLE_RATE // self.frame_rate

    def validate(self) -> None:
        """Raise ConfigError naming the first inconsistent field (relative: `dim: ...`)."""
        if self.frontend not in FRONTENDS:
            raise ConfigError(
                f"frontend: {self.frontend!r} is not one of {FRONTENDS} (the stft and "
                "seanet front ends were removed: train an EnCodec autoencoder instead)"
            )
        if self.frame_rate <= 0 or SAMPLE_RATE % self.frame_rate:
            raise ConfigError(
                f"frame_rate: {self.frame_rate} must divide the sample rate {SAMPLE_RATE}"
            )
        for name in ("patch_dim", "dim", "n_heads", "n_layers", "decoder_n_layers", "ffn_dim",
                     "n_codebooks", "codebook_size", "kmeans_iters", "dead_code_steps",
                     "encodec_n_filters", "ar_dim", "ar_n_heads"):  # fmt: skip
            if getattr(self, name) <= 0:
                raise ConfigError(f"{name}: must be positive, got {getattr(self, name)}")
        for name in ("encodec_residual_layers", "encodec_lstm", "ar_layers",
                     "quantizer_warmup_steps"):  # fmt: skip
            if getattr(self, name) < 0:
                raise ConfigError(f"{name}: must be >= 0, got {getattr(self, name)}")
        _check_max(self, ("n_layers", "decoder_n_layers", "ar_layers",
                   "encodec_residual_layers", "encodec_lstm"), MAX_LAYERS)  # fmt: skip
        _check_max(self, ("patch_dim", "dim", "codebook_dim", "ar_dim",
                   "encodec_n_filters", "n_heads", "ar_n_heads"), MAX_DIM)  # fmt: skip
        _check_max(self, ("ffn_dim",), MAX_FFN_DIM)
        _check_max(self, ("n_codebooks",), MAX_CODEBOOKS)
        _check_max(self, ("codebook_size",), MAX_CODEBOOK_SIZE)
        _check_max(self, ("kmeans_iters",), MAX_ITERS)
        if self.dim % self.n_heads or (self.dim // self.n_heads) % 2:
            raise ConfigError(f"dim: {self.dim} must split into {self.n_heads} heads of even size")
        if self.attn_span is not None and not 1 <= self.attn_span <= 65536:
            raise ConfigError(f"attn_span: must be in 1..65536 or null, got {self.attn_span}")
        if self.codebook_dim is not None and self.codebook_dim <= 0:
            raise ConfigError(f"codebook_dim: must be positive, got {self.codebook_dim}")
        if not 0.0 < self.ema_decay < 1.0:
            raise ConfigError(f"ema_decay: must be in (0, 1), got {self.ema_decay}")
        if not 1 <= self.window_min <= self.window_max:
            raise ConfigError(
                f"window_min/window_max: need 1 <= {self.window_min} <= {self.window_max}"
            )
        if not self.window_min <= self.default_window <= self.window_max:
            raise ConfigError(
                f"default_window: {self.default_window} outside "
                f"[{self.window_min}, {self.window_max}]"
            )
        if self.ar_layers and (
            self.ar_dim % self.ar_n_heads or (self.ar_dim // self.ar_n_heads) % 2
        ):
            raise ConfigError(f"ar_dim: {self.ar_dim} must split into {self.ar_n_heads} even heads")
        ratios = self.encodec_ratios
        if not 1 <= len(ratios) <= 16 or any(not 1 <= r <= 64 for r in ratios):
            raise ConfigError(f"encodec_ratios: need 1 to 16 ints in [1, 64], got {ratios}")
        if math.prod(ratios) != self.hop_length:
            raise ConfigError(
                f"encodec_ratios: product {math.prod(ratios)} must equal the hop "
                f"{self.hop_length} (sample_rate / frame_rate {self.frame_rate})"
            )


@dataclass
class MAEArgs:
    """The MAE branch (training only).

    Attributes:
        dim: width of the MAE transformer decoder.
        n_heads: its attention heads.
        n_layers: its layers (0 disables the branch and its loss).
        mask_ratio: fraction of encoder input frames replaced by the mask vector.
    """

    dim: int = 256
    n_heads: int = 4
    n_layers: int = 2
    mask_ratio: float = 0.3

    def validate(self) -> None:
        """Raise ConfigError naming the first inconsistent field (relative: `dim: ...`)."""
        if not 0.0 <= self.mask_ratio < 1.0:
            raise ConfigError(f"mask_ratio: must be in [0, 1), got {self.mask_ratio}")
        if self.n_layers < 0:
            raise ConfigError(f"n_layers: must be >= 0, got {self.n_layers}")
        for name in ("dim", "n_heads"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"{name}: must be positive, got {getattr(self, name)}")
        _check_max(self, ("n_layers",), MAX_LAYERS)
        _check_max(self, ("dim", "n_heads"), MAX_DIM)
        if self.n_layers and (self.dim % self.n_heads or (self.dim // self.n_heads) % 2):
            raise ConfigError(f"dim: {self.dim} must split into {self.n_heads} even heads")


@dataclass
class ALMConfig:
    """Everything needed to rebuild an ALMTokenizer (without weights)."""

    base_args: BaseArgs = field(default_factory=BaseArgs)
    mae_args: MAEArgs = field(default_factory=MAEArgs)

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Raise ConfigError naming the first inconsistent field (`base_args.dim: ...`)."""
        with config_section("base_args"):
            self.base_args.validate()
        with config_section("mae_args"):
            self.mae_args.validate()

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable nested dict: `{"base_args": {...}, "mae_args": {...}}`."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any], prefix: str = "") -> ALMConfig:
        """Strict inverse of `to_dict`; missing keys take their defaults.

        Raises:
            ConfigError: an unknown key, a wrong type or an inconsistent value, naming the key
                (`base_args.dim: ...`, or `<prefix>.base_args.dim: ...`).
        """
        return build_dataclass(cls, d, prefix)


DEMO_FRONTEND_CHECKPOINT = "checkpoints/encodec_demo"


def preset(name: str) -> ALMConfig:
    """Named configurations; both stand on a frozen EnCodec-architecture autoencoder (75 Hz,
    128-dim continuous latents) and differ in its size and in the transformers' size.

    - "demo": the bundled `checkpoints/encodec_demo` autoencoder (n_filters 16, one LSTM layer)
      under 4 + 4 causal transformer layers of width 256 and RVQ 3 x 2048: trainable on a CPU.
    - "paper": the official EnCodec 24 kHz architecture (n_filters 32, two LSTM layers; its
      weights from the torch hub cache when present, or one of our checkpoints of that size)
      under 8 + 8 transformer layers of width 768 and RVQ 3 x 2048 (~150 M parameters with the
      MAE and AR heads). The paper does not pin every size; these are the usual scale.
    """
    if name == "demo":
        return ALMConfig(
            BaseArgs(
                frontend_checkpoint=DEMO_FRONTEND_CHECKPOINT, encodec_n_filters=16, encodec_lstm=1
            ),
            MAEArgs(),
        )
    if name == "paper":
        return ALMConfig(
            BaseArgs(
                frontend_checkpoint="official",
                dim=768,
                n_heads=12,
                n_layers=8,
                decoder_n_layers=8,
                ffn_dim=3072,
                codebook_dim=None,
                ar_layers=2,
                ar_dim=256,
                ar_n_heads=4,
            ),
            MAEArgs(dim=512, n_heads=8, n_layers=4, mask_ratio=0.3),
        )
    raise ValueError(f"unknown preset {name!r} (known: 'demo', 'paper')")
