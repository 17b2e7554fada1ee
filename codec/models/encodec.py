"""EnCodec backend: the `encodec` package's SEANet encoder/decoder and RVQ behind `Codec`.

Two ways to get weights (see `load_encodec`):
  * the official pretrained 24 kHz file `encodec_24khz-d7cc33bc.th` (a torch state dict whose
    sha256 starts with d7cc33bc; the only file this project ever reads with `torch.load`, and
    then with `weights_only=True`);
  * a checkpoint folder of ours (safetensors + config.json), e.g. the same-data baseline trained
    with our loop from `EnCodecCodec.from_config`.

Shapes: continuous latents are the SEANet encoder output `[B, D, T]` (D = 128, T = ceil(N / 320),
i.e. 75 Hz); quantized latents are the sum of the first n RVQ codewords, n set by the bandwidth
(0.75 / 1.5 / 3 / 6 / 12 / 24 kbps -> 1 / 2 / 4 / 8 / 16 / 32 codebooks of 1024 entries, 750 bit/s
each; the official model offers 1.5 and up, a checkpoint of ours what its config's
`target_bandwidths` lists). The package's `normalize` and `segment` options are not used (the
24 kHz model has neither).
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
import random
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import nn

from codec.checkpoint import CheckpointError, load_checkpoint, load_state_strict, module_hash
from codec.models.base import (
    SAMPLE_RATE,
    Codec,
    CodecSetting,
    Encoded,
    FrameFrontend,
    TrainOutput,
    fit_length,
)
from codec.models.init import OUTPUT_INIT_SCALE, he_init_, scale_output_conv_
from codec.models.seanet import build_seanet
from codec.models.vocos import VocosConfig, VocosDecoder, remap_settings
from codec.schema import ConfigError, build_dataclass

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from encodec.quantization import ResidualVectorQuantizer

log = logging.getLogger(__name__)
_he_init_ = he_init_  # the former name (codec/models/init.py holds the init helpers now)

OFFICIAL_NAME = "encodec_24khz-d7cc33bc.th"
OFFICIAL_SHA256_PREFIX = "d7cc33bc"
OFFICIAL_URL = "https://dl.fbaipublicfiles.com/encodec/v0/" + OFFICIAL_NAME
REPO_ROOT = Path(__file__).resolve().parents[2]


class EnCodecWeightsError(CheckpointError):
    """No usable EnCodec weights: missing, corrupt or of the wrong hash."""


@dataclass
class EnCodecConfig:
    """Everything that rebuilds an `EnCodecCodec` (the defaults are the official 24 kHz model).

    Attributes:
        dimension: latent channels D.
        n_filters: base width of the SEANet encoder/decoder.
        n_residual_layers: residual blocks per resolution.
        ratios: up-sampling ratios of the decoder (the encoder uses them reversed); hop = product.
        lstm: LSTM layers at the bottleneck (0 for none).
        causal: causal convolutions (the official 24 kHz model is causal).
        norm: convolution normalisation of the package ("weight_norm", "none", ...).
        n_q: RVQ codebooks in the model.
        bins: entries per codebook (a power of two).
        target_bandwidths: the selectable bandwidths in kbps.
        bandwidth: the bandwidth used by `encode` (kbps, one of `target_bandwidths`).
        train_bandwidths: bandwidths drawn uniformly per training batch, as EnCodec does; a
            single entry trains at a fixed bandwidth.
        decay: EMA decay of the codebooks.
        kmeans_iters: k-means iterations of the lazy codebook init (first training batch).
        threshold_ema_dead_code: EMA cluster size under which a code is replaced.
        decoder: the decoder after the RVQ: "seanet" (EnCodec's own) or "vocos" (ConvNeXt at
            the frame rate + inverse STFT, conditioned on the bandwidth; `codec.models.vocos`).
        vocos: the Vocos decoder's architecture (used when `decoder` is "vocos").
    """

    dimension: int = 128
    n_filters: int = 32
    n_residual_layers: int = 1
    ratios: list[int] = field(default_factory=lambda: [8, 5, 4, 2])
    lstm: int = 2
    causal: bool = True
    norm: str = "weight_norm"
    n_q: int = 32
    bins: int = 1024
    target_bandwidths: list[float] = field(default_factory=lambda: [1.5, 3.0, 6.0, 12.0, 24.0])
    bandwidth: float = 1.5
    train_bandwidths: list[float] = field(default_factory=lambda: [1.5, 3.0, 6.0, 12.0, 24.0])
    decay: float = 0.99
    kmeans_iters: int = 50
    threshold_ema_dead_code: int = 2
    decoder: Literal["seanet", "vocos"] = "seanet"
    vocos: VocosConfig = field(default_factory=VocosConfig)

    @classmethod
    def from_dict(cls, d: dict[str, Any], prefix: str = "") -> EnCodecConfig:
        """Build and validate from a dict (`codec.schema`): an unknown key, a wrong type or an
        inconsistent value is a `ConfigError` naming the key (`n_q: ...`, or `<prefix>.n_q`)."""
        return build_dataclass(cls, d, prefix)

    @property
    def hop_length(self) -> int:
        return math.prod(self.ratios)

    @property
    def frame_rate(self) -> float:
        return SAMPLE_RATE / self.hop_length

    def codebooks_for(self, bandwidth: float) -> int:
        """Codebooks used at `bandwidth` kbps: floor(bw / (frame_rate * log2(bins) / 1000))."""
        per_q = self.frame_rate * math.log2(self.bins) / 1000
        return max(1, int(math.floor(bandwidth / per_q + 1e-9)))

    def validate(self) -> None:
        """Raise ConfigError naming the first inconsistent field (relative: `n_q: ...`)."""
        # Upper bounds far above any real EnCodec: a config.json asking for n_q = 1e9 or
        # dimension = 2**40 is refused here instead of hanging or exhausting memory.
        for key, low, high in (
            ("dimension", 1, 8192), ("n_filters", 1, 1024), ("n_q", 1, 64), ("bins", 1, 65536),
            ("n_residual_layers", 0, 16), ("lstm", 0, 16), ("kmeans_iters", 0, 10_000),
        ):  # fmt: skip
            value = getattr(self, key)
            if not low <= value <= high:
                raise ConfigError(f"{key}: must be in [{low}, {high}], got {value}")
        if not 1 <= len(self.ratios) <= 16 or any(not 1 <= r <= 64 for r in self.ratios):
            raise ConfigError(f"ratios: must be 1 to 16 ints in [1, 64], got {self.ratios}")
        if 2 ** int(math.log2(self.bins)) != self.bins:
            raise ConfigError(f"bins: must be a power of two, got {self.bins}")
        for key in ("decay", "bandwidth"):
            if not math.isfinite(getattr(self, key)):
                raise ConfigError(f"{key}: must be a finite number, got {getattr(self, key)}")
        if not self.target_bandwidths:
            raise ConfigError("target_bandwidths: must not be empty")
        for bw in self.target_bandwidths:
            if bw <= 0 or self.codebooks_for(bw) > self.n_q:
                raise ConfigError(
                    f"target_bandwidths: {bw} kbps needs {self.codebooks_for(bw)} codebooks but "
                    f"n_q is {self.n_q}"
                )
        if self.bandwidth not in self.target_bandwidths:
            raise ConfigError(
                f"bandwidth: {self.bandwidth} is not in target_bandwidths {self.target_bandwidths}"
            )
        if not self.train_bandwidths or any(
            bw not in self.target_bandwidths for bw in self.train_bandwidths
        ):
            raise ConfigError(
                f"train_bandwidths: {self.train_bandwidths} must be a non-empty subset of "
                f"target_bandwidths {self.target_bandwidths}"
            )


class EnCodecCodec(Codec):
    """EnCodec (SEANet + RVQ) as a `Codec`; `window` is accepted and ignored everywhere.

    Attributes:
        config: the `EnCodecConfig`.
        bandwidth: kbps used by `encode` (change with `set_bandwidth`).
        weights_source: "official:<path>", "checkpoint:<path>" or "random-init".
        checkpoint_hash: short hash of the weights (file sha256 for the official file).
    """

    name = "encodec"

    def __init__(self, config: EnCodecConfig | dict[str, Any] | None = None) -> None:
        super().__init__()
        if config is None:
            config = EnCodecConfig()
        elif isinstance(config, dict):
            config = EnCodecConfig.from_dict(config)
        config.validate()
        self.config = config
        c = config
        self.encoder, seanet_decoder = build_seanet(
            c.dimension, c.n_filters, c.n_residual_layers, c.ratios, c.norm, c.causal, c.lstm
        )
        self.decoder: nn.Module = seanet_decoder
        if c.decoder == "vocos":
            self.decoder = VocosDecoder(
                c.dimension, c.hop_length, len(c.target_bandwidths), c.vocos
            )
        self.quantizer = ResidualVectorQuantizer(
            dimension=c.dimension,
            n_q=c.n_q,
            bins=c.bins,
            decay=c.decay,
            kmeans_init=True,
            kmeans_iters=c.kmeans_iters,
            threshold_ema_dead_code=c.threshold_ema_dead_code,
        )
        self.bandwidth = float(c.bandwidth)
        # Training bandwidths come from a private, fixed-seed stream: under torch.distributed
        # every rank then uses the same number of codebooks per step, which the package's RVQ
        # needs (its k-means init and dead-code expiry broadcast buffers per layer).
        self._bandwidth_rng = random.Random(0)
        self._weights_source: str | None = None
        self.checkpoint_hash = "random-init"  # load_checkpoint / load_official overwrite it
        he_init_(self.encoder)
        if c.decoder == "seanet":
            he_init_(self.decoder)
            # He-normal alone starts the decoder ~100x louder than its input and L1 training
            # then collapsed to an input-independent tone; a 0.01 output conv starts near the
            # input level (measured: see codec/models/init.py).
            scale_output_conv_(self.decoder, OUTPUT_INIT_SCALE)

    @property
    def weights_source(self) -> str:
        """ "official:<path>", "checkpoint:<path>" (set by the loaders), else "random-init" or,
        after a plain `load_checkpoint`, "checkpoint (hash <h>)"."""
        if self._weights_source is not None:
            return self._weights_source
        if self.checkpoint_hash == "random-init":
            return "random-init"
        return f"checkpoint (hash {self.checkpoint_hash})"

    @weights_source.setter
    def weights_source(self, value: str) -> None:
        self._weights_source = value

    # --- description -------------------------------------------------------------------------
    @property
    def latent_dim(self) -> int:
        return self.config.dimension

    @property
    def num_codebooks(self) -> int:
        return self.config.codebooks_for(self.bandwidth)

    @property
    def codebook_size(self) -> int:
        return self.config.bins

    @property
    def hop_length(self) -> int:
        return self.config.hop_length

    def frame_rate(self, window: int | None = None) -> float:
        """75 Hz for the official model, whatever the window."""
        return self.config.frame_rate

    def num_frames(self, num_samples: int, window: int | None = None) -> int:
        """ceil(N / hop) = ceil(N * 75 / 24000), in exact integer arithmetic."""
        return -(-int(num_samples) // self.hop_length)

    def set_bandwidth(self, kbps: float) -> None:
        """Select the bandwidth (and so the number of codebooks) used by `encode`."""
        kbps = float(kbps)
        if kbps not in self.config.target_bandwidths:
            raise ValueError(
                f"EnCodec supports bandwidths {self.config.target_bandwidths} kbps, got {kbps}"
            )
        self.bandwidth = kbps

    def setting(self) -> CodecSetting:
        """The bandwidth in kbps (the configured `target_bandwidths`); the default is the
        bandwidth in use."""
        choices = tuple(float(b) for b in self.config.target_bandwidths)
        return CodecSetting("bandwidth", choices, float(self.bandwidth))

    def apply_setting(self, value: float) -> float:
        """`set_bandwidth(value)`; returns the previous bandwidth."""
        before = self.bandwidth
        self.set_bandwidth(value)
        return before

    def latent_config_dict(self) -> dict[str, Any]:
        """The config less the bandwidths: they select codebooks, never change the latents."""
        d = self.config_dict()
        for key in ("bandwidth", "train_bandwidths"):
            d.pop(key, None)
        return d

    def encode_modules(self) -> list[nn.Module]:
        """Encoder and RVQ: the decoder (SEANet or Vocos) never changes a code."""
        return [self.encoder, self.quantizer]

    def encode_config_dict(self) -> dict[str, Any]:
        """The latents' config less what only the decoder uses (its kind, its Vocos settings
        and the bandwidths its norms are conditioned on)."""
        d = self.latent_config_dict()
        for key in ("decoder", "vocos", "target_bandwidths"):
            d.pop(key, None)
        return d

    # --- inference ---------------------------------------------------------------------------
    def encode(self, wav: torch.Tensor, window: int | None = None) -> Encoded:
        """`wav` `[B, 1, N]` -> latents `[B, D, T]`, quantized `[B, D, T]`, codes `[B, n, T]`.

        T = ceil(N / hop): the input is zero-padded to whole frames first (see `_pad_to_hop`).
        """
        _check_wav(wav)
        latents = self.encoder(self._pad_to_hop(wav))
        codes, quantized = self._quantize_eval(latents, self.num_codebooks)
        return Encoded(latents, quantized, codes, None, int(wav.shape[-1]))

    def _pad_to_hop(self, wav: torch.Tensor) -> torch.Tensor:
        """Zero-pad `[B, 1, N]` to a whole number of frames, ceil(N / hop) * hop.

        The package's convolutions otherwise reflect-pad a partial last frame, which makes the
        last frame depend on how much padding a batch adds. With whole frames, a causal model
        gives a clip the same codes alone or zero-padded inside a batch.
        """
        rem = wav.shape[-1] % self.hop_length
        return F.pad(wav, (0, self.hop_length - rem)) if rem else wav

    def _quantize_eval(self, latents: torch.Tensor, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Nearest-codeword RVQ in float32 (also under autocast): codes `[B, n, T]`, quantized."""
        with torch.autocast(latents.device.type, enabled=False):
            x = latents.float()
            codes = self.quantizer.vq.encode(x, n_q=n)  # [n, B, T]
            quantized = self.quantizer.vq.decode(codes)
        return codes.transpose(0, 1), quantized

    def decode(
        self, latents: torch.Tensor, window: int | None = None, num_samples: int | None = None
    ) -> torch.Tensor:
        """Any latents `[B, D, T]` (encoded, quantized or interpolated) -> waveform `[B, 1, N]`."""
        if latents.dim() != 3 or latents.shape[1] != self.latent_dim:
            raise ValueError(
                f"EnCodec decode expects latents [B, {self.latent_dim}, T], "
                f"got {tuple(latents.shape)}"
            )
        return fit_length(self._run_decoder(latents, self.bandwidth), num_samples)

    @torch.no_grad()
    def quantize(self, latents: torch.Tensor, window: int | None = None) -> torch.Tensor:
        """Quantize `[B, D, T]` latents at the current bandwidth: `[B, D, T]`."""
        return self._quantize_eval(latents, self.num_codebooks)[1]

    def codes_to_latents(self, codes: torch.Tensor, window: int | None = None) -> torch.Tensor:
        """Codes `[B, n, T]` (any n <= n_q, e.g. from another bandwidth) -> `[B, D, T]`."""
        if codes.dim() != 3 or not 1 <= codes.shape[1] <= self.config.n_q:
            raise ValueError(
                f"EnCodec codes must be [B, n, T] with 1 <= n <= {self.config.n_q}, "
                f"got {tuple(codes.shape)}"
            )
        if codes.numel() and (int(codes.min()) < 0 or int(codes.max()) >= self.codebook_size):
            raise ValueError(f"EnCodec codes must lie in [0, {self.codebook_size})")
        with torch.autocast(codes.device.type, enabled=False):
            return self.quantizer.vq.decode(codes.long().transpose(0, 1))

    # --- training ----------------------------------------------------------------------------
    def forward(
        self,
        wav: torch.Tensor,
        window: int | None = None,
        stage: int = 2,
        frames: torch.Tensor | None = None,
    ) -> TrainOutput:
        """Training pass: `wav` `[B, 1, N]` -> `TrainOutput(recon [B, 1, N], losses, codes)`.

        Stage 1 is a plain autoencoder (no quantizer, codes None); stage 2 quantizes with n
        codebooks: in training mode n is drawn per batch from `config.train_bandwidths` with a
        fixed-seed stream (the same on every rank), in eval mode it follows `bandwidth`. In
        training mode the RVQ k-means-initialises lazily on its first batch and then follows
        its EMA updates (under DDP keep broadcast_buffers on). losses hold "loss/commit".
        Stage 3 (the decoder stage) draws n the same way but keeps the encoder and the RVQ
        frozen (nearest codewords, no EMA update); `frames`: the encoder's latents `[B, D, T]`
        of `wav` from a latent cache, used instead of running the encoder.
        """
        if stage not in (1, 2, 3):
            raise ValueError(f"stage must be 1, 2 or 3, got {stage}")
        _check_wav(wav)
        if stage == 3:
            return self._decoder_stage(wav, frames)
        latents = self.encoder(self._pad_to_hop(wav))
        if stage == 1:
            top = max(self.config.target_bandwidths)  # continuous: the richest setting
            recon = fit_length(self._run_decoder(latents, top), wav.shape[-1])
            return TrainOutput(recon, {}, None, {})
        if self.training:
            bw = self._bandwidth_rng.choice(self.config.train_bandwidths)
        else:
            bw = self.bandwidth
        n = self.config.codebooks_for(bw)
        with torch.autocast(latents.device.type, enabled=False):
            x = latents.float()
            if self.training:
                quantized, codes, layer_losses = self.quantizer.vq(x, n_q=n)
                commit = layer_losses.mean()
                codes = codes.transpose(0, 1)
            else:
                codes, quantized = self._quantize_eval(x, n)
                commit = _commit_loss(self.quantizer, x, codes)
        recon = fit_length(self._run_decoder(quantized, bw), wav.shape[-1])
        stats = {"stats/bandwidth": float(bw), "stats/n_q": float(n)}
        for i in range(n):
            used = torch.unique(codes[:, i]).numel()
            stats[f"stats/codebook_usage_{i}"] = used / self.codebook_size
        return TrainOutput(recon, {"loss/commit": commit}, codes, stats)

    def _decoder_stage(self, wav: torch.Tensor, frames: torch.Tensor | None) -> TrainOutput:
        """Stage 3: frozen encoder (or cached `frames`) and RVQ at a bandwidth drawn per
        batch; only the decoder sees gradients."""
        bw = self.bandwidth
        if self.training:
            bw = self._bandwidth_rng.choice(self.config.train_bandwidths)
        n = self.config.codebooks_for(bw)
        with torch.no_grad():
            latents = self.encoder(self._pad_to_hop(wav)) if frames is None else frames
            codes, quantized = self._quantize_eval(latents, n)
        recon = fit_length(self._run_decoder(quantized, bw), wav.shape[-1])
        stats = {"stats/bandwidth": n * self.config.frame_rate * math.log2(self.config.bins) / 1e3}
        return TrainOutput(recon, {}, codes, {**stats, "stats/n_q": float(n)})

    def _run_decoder(self, latents: torch.Tensor, bandwidth: float) -> torch.Tensor:
        """The decoder on `[B, D, T]` latents; a Vocos decoder is told the bandwidth (its
        adaptive norms' setting index), SEANet ignores it."""
        if isinstance(self.decoder, VocosDecoder):
            return self.decoder(latents, self.config.target_bandwidths.index(bandwidth))
        return self.decoder(latents)

    def decoder_parameters(self) -> list[torch.nn.Parameter]:
        """Stage 3 trains the decoder alone (everything after the RVQ)."""
        return list(self.decoder.parameters())

    def load_start_state(
        self, state: dict[str, torch.Tensor], where: str, config: dict[str, Any] | None = None
    ) -> list[str]:
        """Strict, except for a Vocos decoder:

        - over a checkpoint that holds another decoder (SEANet) it starts fresh: the encoder
          and the RVQ load strictly, the decoder's tensors keep their initialisation and are
          returned;
        - over a Vocos decoder trained for other `target_bandwidths` (read from `config`, the
          checkpoint's config.json `model`), e.g. [1.5, 3, 6] -> [0.75, 1.5, 3, 6]: each
          adaptive norm's row of a bandwidth in both is copied by value, a new bandwidth's row
          from the nearest trained one (`codec.models.vocos.remap_settings`; logged), and the
          re-indexed tables are returned. A bandwidth the checkpoint has and this model has
          not is a CheckpointError, and everything else loads strictly."""
        own = self.state_dict()
        decoder_keys = [k for k in own if k.startswith("decoder.")]
        if not isinstance(self.decoder, VocosDecoder):
            return super().load_start_state(state, where)
        if not all(k in state for k in decoder_keys):
            kept = {k: v for k, v in state.items() if not k.startswith("decoder.")}
            load_state_strict(self, {**kept, **{k: own[k] for k in decoder_keys}}, where)
            return decoder_keys
        source = [float(b) for b in (config or {}).get("target_bandwidths") or []]
        target = [float(b) for b in self.config.target_bandwidths]
        if not source or source == target:
            return super().load_start_state(state, where)
        try:
            state, origin = remap_settings(self.decoder, state, "decoder.", source, target)
        except ValueError as e:
            raise CheckpointError(
                f"{where}: its Vocos decoder is trained for bandwidths {source} kbps, this "
                f"model's target_bandwidths are {target}: {e}"
            ) from None
        load_state_strict(self, state, where)
        kept = [f"{t:g}" for t, s in origin.items() if t == s]
        new = [f"{t:g} (from {s:g})" for t, s in origin.items() if t != s]
        log.info(
            "%s: Vocos decoder bandwidths %s -> %s kbps: %s copied by value; %s initialised "
            "from the nearest trained bandwidth", where, source, target,
            ", ".join(kept) or "none", ", ".join(new) or "none",
        )  # fmt: skip
        return [k for k in decoder_keys if k.endswith((".scale.weight", ".shift.weight"))]

    def cached_frontend(self, stage: int) -> FrameFrontend | None:
        """In stage 3 the encoder is frozen: a latent cache may hold its output."""
        return _FrozenEncoder(self) if stage == 3 else None

    # --- serialisation -----------------------------------------------------------------------
    def config_dict(self) -> dict[str, Any]:
        d = asdict(self.config)
        d["bandwidth"] = self.bandwidth
        return d

    @classmethod
    def training_args(
        cls, preset: str | None, base_args: dict[str, Any], mae_args: dict[str, Any]
    ) -> dict[str, Any]:
        """`base_args` is the `EnCodecConfig` (validated; keys `base_args.n_q: ...`)."""
        args = super().training_args(preset, base_args, mae_args)
        EnCodecConfig.from_dict(args, prefix="base_args")
        return args

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> EnCodecCodec:
        """A randomly initialised model (He-normal convs, zero biases, lazy k-means RVQ)."""
        return cls(EnCodecConfig.from_dict(config))


class _FrozenEncoder:
    """EnCodec's encoder seen as a frozen front end (`FrameFrontend`) for the decoder stage's
    latent cache: frames are the continuous latents `[B, D, T]` before the RVQ."""

    def __init__(self, codec: EnCodecCodec) -> None:
        self.codec = codec
        self.hop_length = codec.hop_length

    @torch.no_grad()
    def patchify(self, wav: torch.Tensor) -> torch.Tensor:
        return self.codec.encoder(self.codec._pad_to_hop(wav))

    def weights_hash(self) -> str:
        return module_hash(self.codec.encoder)


def _check_wav(wav: torch.Tensor) -> None:
    if not isinstance(wav, torch.Tensor) or wav.dim() != 3 or wav.shape[1] != 1:
        shape = tuple(wav.shape) if isinstance(wav, torch.Tensor) else type(wav).__name__
        raise ValueError(f"EnCodec expects a mono waveform [B, 1, N], got {shape}")
    if wav.shape[-1] < 1:
        raise ValueError("EnCodec cannot encode an empty waveform")


def _commit_loss(
    rvq: ResidualVectorQuantizer, x: torch.Tensor, codes: torch.Tensor
) -> torch.Tensor:
    """Mean over layers of MSE(codeword, residual), as the package computes in training."""
    residual, losses = x, []
    for i in range(codes.shape[1]):
        q = rvq.vq.layers[i].decode(codes[:, i])
        losses.append(F.mse_loss(q, residual))
        residual = residual - q
    return torch.stack(losses).mean()


# --- weights -----------------------------------------------------------------------------------
def official_weight_candidates() -> list[Path]:
    """Where torch hub caches the official file: $TORCH_HOME/hub/checkpoints, ~/.cache/torch/..."""
    dirs = []
    if os.environ.get("TORCH_HOME"):
        dirs.append(Path(os.environ["TORCH_HOME"]) / "hub" / "checkpoints")
    dirs.append(Path.home() / ".cache" / "torch" / "hub" / "checkpoints")
    return [d / OFFICIAL_NAME for d in dirs]


def bundled_checkpoints() -> list[Path]:
    """Checkpoint folders of ours under `checkpoints/` whose config names the encodec codec
    (a folder called `encodec` first)."""
    import json

    root = REPO_ROOT / "checkpoints"
    found = []
    for cfg in sorted(root.glob("*/config.json")) if root.is_dir() else []:
        try:
            if json.loads(cfg.read_text()).get("codec") == EnCodecCodec.name:
                found.append(cfg.parent)
        except (OSError, ValueError, AttributeError):
            continue
    return sorted(found, key=lambda p: (p.name != "encodec", p.name))


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def load_official(path: str | Path, check_hash: bool = True) -> EnCodecCodec:
    """Build the official 24 kHz architecture and load the official state dict strictly.

    Raises:
        EnCodecWeightsError: missing file, sha256 not starting with d7cc33bc (when
            `check_hash`), unreadable file or a state dict of another architecture.
    """
    path = Path(path)
    if not path.is_file():
        raise EnCodecWeightsError(f"EnCodec weights file {path} does not exist")
    digest = sha256_file(path)
    if check_hash and not digest.startswith(OFFICIAL_SHA256_PREFIX):
        raise EnCodecWeightsError(
            f"{path}: sha256 {digest[:8]}... does not match the official EnCodec 24 kHz weights "
            f"({OFFICIAL_SHA256_PREFIX}...); the file is corrupt or another model. "
            f"Download it again from {OFFICIAL_URL}"
        )
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises several types for truncated or foreign files
        raise EnCodecWeightsError(f"{path} is not a readable torch state dict: {e}") from e
    if not isinstance(state, dict):
        raise EnCodecWeightsError(f"{path} holds a {type(state).__name__}, not a state dict")
    model = EnCodecCodec(EnCodecConfig())
    load_state_strict(model, state, str(path))
    model.eval()
    model.weights_source = f"official:{path}"
    model.checkpoint_hash = digest[:16]
    return model


def missing_weights_message() -> str:
    where = ", ".join(str(p) for p in official_weight_candidates())
    return (
        "no EnCodec weights found. Either (1) download the official 24 kHz weights "
        f"({OFFICIAL_URL}) into one of: {where}, or pass its path (--encodec-weights / "
        "weights=...); or (2) train the same-data baseline with our loop (python -m codec.training "
        "with an encodec model config) and pass its checkpoint folder (--checkpoint / "
        f"checkpoint=...), or put it under {REPO_ROOT / 'checkpoints' / 'encodec'}."
    )


def load_encodec(
    weights: str | Path | None = None,
    checkpoint: str | Path | None = None,
    bandwidth: float = 1.5,
    check_hash: bool = True,
) -> EnCodecCodec:
    """Load EnCodec weights, in this order:

    1. `weights`: an official state-dict file given by the user;
    2. `checkpoint`: a checkpoint folder of ours given by the user;
    3. the official file in the torch hub cache ($TORCH_HOME/hub/checkpoints or
       ~/.cache/torch/hub/checkpoints/encodec_24khz-d7cc33bc.th);
    4. a bundled checkpoint folder under `checkpoints/` (see `bundled_checkpoints`);
    5. else `EnCodecWeightsError` explaining how to get either.

    Explicit arguments win over files found on disk. The model is returned in eval mode at
    `bandwidth` kbps, with `weights_source` set and logged.
    """
    if weights is not None and checkpoint is not None:
        raise ValueError("give either EnCodec weights (official file) or a checkpoint, not both")
    if weights is not None:
        model = load_official(weights, check_hash=check_hash)
    elif checkpoint is not None:
        model = _load_ours(checkpoint)
    else:
        official = next((p for p in official_weight_candidates() if p.is_file()), None)
        bundled = bundled_checkpoints()
        if official is not None:
            model = load_official(official, check_hash=check_hash)
        elif bundled:
            model = _load_ours(bundled[0])
        else:
            raise EnCodecWeightsError(missing_weights_message())
    model.set_bandwidth(bandwidth)
    log.info("EnCodec weights: %s (%.1f kbps)", model.weights_source, model.bandwidth)
    return model


def _load_ours(path: str | Path) -> EnCodecCodec:
    model = load_checkpoint(EnCodecCodec, path)
    model.weights_source = f"checkpoint:{path}"
    return model
