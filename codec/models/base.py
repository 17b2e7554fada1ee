"""The Codec interface that every backend implements.

`analysis/` and `app/` use nothing but this surface, so ALMTokenizer and EnCodec are
interchangeable there. A codec is an `nn.Module` whose whole state is its `state_dict()` plus
the JSON-serialisable dict returned by `config_dict()`; `save_pretrained` / `from_pretrained`
(in `codec.checkpoint`) turn that pair into a checkpoint folder.
"""

from __future__ import annotations

import contextlib
import math
import threading
import weakref
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol

import torch
from torch import nn

from codec.checkpoint import load_checkpoint, load_state_strict, save_codec
from codec.schema import ConfigError

SAMPLE_RATE = 24000
# 1: the autoencoder; 2: the bottleneck on the frozen encoder; 3: the decoder on the codec's
# own tokens (encoder and quantizer frozen)
STAGES = (1, 2, 3)
WINDOWS: tuple[int, ...] = tuple(range(2, 11))  # the paper's window sizes w
SettingKind = Literal["window", "bandwidth", "none"]


@dataclass(frozen=True)
class CodecSetting:
    """The one inference knob a codec offers, for UIs and CLIs.

    Attributes:
        kind: "window" (ALMTokenizer: frames per token, passed to encode/decode), "bandwidth"
            (EnCodec: kbps, i.e. how many RVQ codebooks `encode` uses; model state) or "none".
        choices: the allowed values (windows 2..10, bandwidths in kbps); empty for "none".
        default: the value a UI starts at (for a bandwidth: the one in use now).
    """

    kind: SettingKind
    choices: tuple[float, ...] = ()
    default: float | None = None

    def check(self, value: Any) -> float | None:
        """`value` as an allowed choice (int for windows); ValueError naming the choices."""
        if self.kind == "none":
            return None
        text = str(value).replace("kbps", "").strip() if value is not None else ""
        try:
            v = float(text)
        except ValueError:
            v = math.nan
        if self.kind == "window" and v == round(v):
            v = int(v)
        if v not in self.choices:
            allowed = ", ".join(f"{c:g}" for c in self.choices)
            unit = " kbps" if self.kind == "bandwidth" else ""
            raise ValueError(f"{self.kind} must be one of {allowed}{unit}, got {value!r}")
        return v

    def label(self, value: float | None) -> str:
        """ "w=6", "1.5 kbps" or "default"."""
        if self.kind == "window" and value is not None:
            return f"w={int(value)}"
        if self.kind == "bandwidth" and value is not None:
            return f"{value:g} kbps"
        return "default"

    def window(self, value: float | None) -> int | None:
        """The `window` argument of encode/decode for this setting value (None unless the
        setting is a window)."""
        return int(value) if self.kind == "window" and value is not None else None


_SETTING_LOCKS: weakref.WeakKeyDictionary[nn.Module, threading.RLock] = weakref.WeakKeyDictionary()
_LOCKS_LOCK = threading.Lock()


def _setting_lock(module: nn.Module) -> threading.RLock:
    with _LOCKS_LOCK:
        lock = _SETTING_LOCKS.get(module)
        if lock is None:
            lock = _SETTING_LOCKS[module] = threading.RLock()
        return lock


@dataclass
class Encoded:
    """What `Codec.encode` returns.

    Attributes:
        latents: continuous latents before quantization, `[B, D, T]`.
        quantized: quantized latents (sum of the RVQ codewords), `[B, D, T]`.
        codes: integer codes, `[B, n_q, T]` (int64).
        window: the window size used (None for codecs without one, e.g. EnCodec).
        num_samples: length of the input waveform, so `decode` can trim padding.
    """

    latents: torch.Tensor
    quantized: torch.Tensor
    codes: torch.Tensor
    window: int | None
    num_samples: int


@dataclass
class TrainOutput:
    """What a trainable codec's `forward(wav, window, stage)` returns.

    Attributes:
        recon: reconstructed waveform `[B, 1, N]` (same N as the input).
        losses: unweighted auxiliary losses by namespaced key (`"loss/commit"`, `"loss/mae"`,
            `"loss/ar"`); the trainer weights them with the config's lambdas.
        codes: codes `[B, n_q, T]` or None (stage 1 has no quantizer in the path).
        stats: detached scalars to log (`"stats/codebook_usage_0"`, ...).
    """

    recon: torch.Tensor
    losses: dict[str, torch.Tensor]
    codes: torch.Tensor | None = None
    stats: dict[str, float] | None = None


class FrameFrontend(Protocol):
    """A frozen front end between the waveform and the frames a codec compresses
    (ALMTokenizer's EnCodec autoencoder): what training needs of it.

    Attributes:
        hop_length: waveform samples per frame.
    """

    hop_length: int

    def patchify(self, wav: torch.Tensor) -> torch.Tensor:
        """Waveform `[B, 1, N]` -> frames `[B, d, ceil(N / hop)]`."""
        ...

    def weights_hash(self) -> str:
        """A short hash of its weights (the key of latent caches)."""
        ...


class Codec(nn.Module, ABC):
    """Abstract audio codec: waveform <-> latents <-> codes.

    Subclasses set `name` (the `codec` field of config.json) and implement the abstract methods.

    Attributes:
        checkpoint_hash: content hash of the checkpoint a loader read (set by
            `codec.models.registry.load_codec` and the backends' loaders; absent on unsaved models).
        weights_source: where the weights came from ("checkpoint:<path>", "official:<path>",
            "random-init (untrained)"), for pages and logs; absent when unknown.
    """

    name: str = "codec"
    sample_rate: int = SAMPLE_RATE
    # Its decoder was trained on quantized latents only: edited latents (timbre transfers)
    # decode as the codec would only after `quantize` (ALMTokenizer's tokens).
    decodes_quantized_only: bool = False
    checkpoint_hash: str
    weights_source: str

    # --- description -------------------------------------------------------------------------
    @property
    @abstractmethod
    def latent_dim(self) -> int:
        """D, the channel size of `Encoded.latents`."""

    @property
    @abstractmethod
    def num_codebooks(self) -> int:
        """n_q, the number of RVQ codebooks in use."""

    @property
    @abstractmethod
    def codebook_size(self) -> int:
        """K, the entries per codebook."""

    @abstractmethod
    def frame_rate(self, window: int | None = None) -> float:
        """Latent vectors (tokens per codebook) per second at this window size."""

    def bitrate(self, window: int | None = None) -> float:
        """Bits per second: frame_rate(window) * n_q * log2(K)."""
        return self.frame_rate(window) * self.num_codebooks * math.log2(self.codebook_size)

    def num_frames(self, num_samples: int, window: int | None = None) -> int:
        """Number of latent frames T for a waveform of `num_samples` samples."""
        return math.ceil(num_samples * self.frame_rate(window) / self.sample_rate)

    # --- the setting a codec offers ----------------------------------------------------------
    def setting(self) -> CodecSetting:
        """The inference knob this codec offers. Default: a window 2..10 when the frame rate
        depends on it (ALMTokenizer), else none. Backends with another knob override this and
        `apply_setting` (EnCodec: bandwidth)."""
        if len({float(self.frame_rate(w)) for w in (WINDOWS[0], WINDOWS[-1])}) > 1:
            return CodecSetting("window", tuple(float(w) for w in WINDOWS), 6)
        return CodecSetting("none")

    def apply_setting(self, value: float) -> float | None:
        """Make a stateful setting (not a window) current; returns the previous value.
        Codecs whose setting is a call argument (window) or that have none keep this no-op."""
        return None

    @contextlib.contextmanager
    def use_setting(self, value: Any) -> Iterator[int | None]:
        """Run a block at setting `value`; yields the `window` argument for encode/decode.

        A stateful setting (EnCodec's bandwidth) is applied under a per-model lock, held for
        the whole block so concurrent users never see each other's value, and restored after.

            with codec.use_setting(1.5) as window:
                enc = codec.encode(wav, window)

        Raises:
            ValueError: `value` is not one of `setting().choices`.
        """
        spec = self.setting()
        v = spec.check(value)
        if spec.kind != "bandwidth" or v is None:
            yield spec.window(v)
            return
        with _setting_lock(self):
            before = self.apply_setting(v)
            try:
                yield None
            finally:
                if before is not None:
                    self.apply_setting(before)

    def latent_config_dict(self) -> dict[str, Any]:
        """`config_dict()` less the settings that never change the continuous latents (e.g.
        EnCodec's bandwidth, which only selects codebooks); the identity of unsaved models."""
        return self.config_dict()

    # --- inference ---------------------------------------------------------------------------
    @abstractmethod
    def encode(self, wav: torch.Tensor, window: int | None = None) -> Encoded:
        """Encode `wav` `[B, 1, N]` (float, 24 kHz) into latents and codes."""

    @abstractmethod
    def decode(
        self, latents: torch.Tensor, window: int | None = None, num_samples: int | None = None
    ) -> torch.Tensor:
        """Decode continuous or quantized latents `[B, D, T]` to a waveform `[B, 1, N]`.

        Accepts points no encoder produced (interpolations, shifted centroids). When
        `num_samples` is given the output is trimmed or zero-padded to exactly that length.
        """

    @abstractmethod
    def codes_to_latents(self, codes: torch.Tensor, window: int | None = None) -> torch.Tensor:
        """Look up codes `[B, n_q, T]` in the codebooks: quantized latents `[B, D, T]`."""

    def quantize(self, latents: torch.Tensor, window: int | None = None) -> torch.Tensor:
        """Snap continuous latents `[B, D, T]` (e.g. shifted or interpolated ones) onto the
        codebooks: the quantized latents `[B, D, T]` that `decode` would see after encoding."""
        raise NotImplementedError(f"{type(self).__name__} has no public quantize step")

    def decode_codes(
        self, codes: torch.Tensor, window: int | None = None, num_samples: int | None = None
    ) -> torch.Tensor:
        """Decode integer codes `[B, n_q, T]` to a waveform `[B, 1, N]`."""
        return self.decode(self.codes_to_latents(codes, window), window, num_samples)

    @torch.no_grad()
    def reconstruct(self, wav: torch.Tensor, window: int | None = None) -> torch.Tensor:
        """encode -> quantize -> decode, trimmed to the input length: `[B, 1, N]`."""
        enc = self.encode(wav, window)
        return self.decode(enc.quantized, window, num_samples=wav.shape[-1])

    # --- training ----------------------------------------------------------------------------
    # What the training loop asks of a codec. The defaults fit a codec that trains every
    # parameter in both stages (EnCodec: stage 1 a plain autoencoder, stage 2 quantized).
    @classmethod
    def training_args(
        cls, preset: str | None, base_args: dict[str, Any], mae_args: dict[str, Any]
    ) -> dict[str, Any]:
        """The `from_config` dict for the training config's `model:` section, validated.

        Default: `base_args` is the whole config, `preset` is ignored, `mae_args` must be
        empty. Raises ConfigError with keys relative to the section (`base_args.n_q: ...`).
        """
        if mae_args:
            raise ConfigError(f"mae_args: must be empty for model.type {cls.name}")
        return dict(base_args)

    @classmethod
    def check_training(
        cls, config: dict[str, Any], stage: int, stage1_checkpoint: str | None
    ) -> None:
        """Refuse a training setup this codec cannot run (ConfigError, keys relative to the
        `model:` section); `stage1_checkpoint` is the folder stage 2 starts from, if any."""

    @classmethod
    def for_training(
        cls, config: dict[str, Any], stage: int, zero_weight_losses: frozenset[str]
    ) -> Codec:
        """An untrained model to train in `stage` (default: `from_config`). Backends that stand
        on pretrained parts load them here; `zero_weight_losses` (short names such as "mae")
        lets them leave out training-only branches whose loss has weight 0."""
        return cls.from_config(config)

    @classmethod
    def decoder_stage_args(
        cls, saved: dict[str, Any], base_args: dict[str, Any], mae_args: dict[str, Any]
    ) -> dict[str, Any]:
        """The `from_config` dict of the decoder stage (3): the trained model's config
        (`saved`, its config.json `model`) with the training config's `base_args` merged over
        it (default: a flat config; `mae_args` must be empty)."""
        if mae_args:
            raise ConfigError(f"mae_args: must be empty for model.type {cls.name}")
        return {**saved, **base_args}

    def training_windows(self) -> tuple[int, int] | None:
        """(low, high): the range a training batch draws its window from; None for a codec
        without a window."""
        return None

    def trainable_parameters(self, stage: int) -> list[nn.Parameter]:
        """Freeze what `stage` does not train and return the parameters it optimises.

        Stage 3 (the decoder stage) trains `decoder_parameters()` alone: the encoder and the
        quantizer stay frozen, so every code the codec ever wrote stays valid.

        Raises:
            ConfigError: the codec does not train in `stage` (the message says why).
        """
        if stage not in STAGES:
            raise ConfigError(f"stage must be one of {STAGES}, got {stage}")
        if stage == 3:
            params = self.decoder_parameters()
            self.requires_grad_(False)
            for p in params:
                p.requires_grad_(True)
            return params
        return [p for p in self.parameters() if p.requires_grad]

    def decoder_parameters(self) -> list[nn.Parameter]:
        """Everything after the quantizer (what stage 3 trains on the codec's own tokens).

        Raises:
            ConfigError: the codec has no decoder stage.
        """
        raise ConfigError(f"{self.name} has no decoder stage (stage 3)")

    def cached_frontend(self, stage: int) -> FrameFrontend | None:
        """The frozen part before the quantizer whose frames a latent cache may hold in
        `stage` (None: nothing is cached). Default: the frame front end in stages 2 and 3."""
        return self.frame_frontend() if stage in (2, 3) else None

    def load_start_state(self, state: dict[str, torch.Tensor], where: str) -> list[str]:
        """Load the weights a training run starts from (`training.start_checkpoint`); returns
        the names of tensors the file did not hold and this model initialised itself.
        Default: strict, nothing initialised (CheckpointError naming `where` on a mismatch)."""
        load_state_strict(self, state, where)
        return []

    def stage1_state_keys(self) -> list[str]:
        """State-dict keys that stage 2 takes over from a stage-1 checkpoint (default: all)."""
        return list(self.state_dict())

    @torch.no_grad()
    def load_stage1(self, source: Codec, where: str) -> int:
        """Copy the `stage1_state_keys` of `source` (a stage-1 model read from `where`) into
        this model; returns the number of tensors copied.

        Raises:
            ValueError: `source` is another codec or its state does not match (names `where`).
        """
        if source.name != self.name:
            raise ValueError(f"{where} holds a {source.name!r} model, not {self.name!r}")
        src, own = source.state_dict(), self.state_dict()
        keys = self.stage1_state_keys()
        missing = [k for k in keys if k not in src]
        shapes = [k for k in keys if k in src and src[k].shape != own[k].shape]
        if missing or shapes:
            raise ValueError(
                f"the stage-1 state in {where} does not match this model's config "
                f"(missing {missing[:3]}, shape mismatch {shapes[:3]})"
            )
        for k in keys:
            own[k].copy_(src[k])
        return len(keys)

    def frame_frontend(self) -> FrameFrontend | None:
        """The frozen front end whose frames the codec compresses (None: the codec works on
        the waveform itself). Stage 2 may cache its frames and fit frame statistics on them."""
        return None

    def needs_frame_statistics(self) -> bool:
        """Whether the frame statistics (`set_frame_statistics`) are still unset."""
        return False

    def set_frame_statistics(self, mean: torch.Tensor, std: torch.Tensor) -> None:
        """Store per-channel statistics `[d]` of the front end's frames."""
        raise NotImplementedError(f"{type(self).__name__} has no frame statistics")

    def relative_frame_error(self, wav: torch.Tensor, window: int | None) -> torch.Tensor | None:
        """Per clip `[B]`: ||z_hat - z||^2 / ||z||^2 of the frames `z` of `wav` `[B, 1, N]`
        rebuilt through the codes; None for a codec without a frame front end."""
        return None

    # --- serialisation -----------------------------------------------------------------------
    @abstractmethod
    def config_dict(self) -> dict[str, Any]:
        """JSON-serialisable arguments that rebuild this model (without weights)."""

    @classmethod
    @abstractmethod
    def from_config(cls, config: dict[str, Any]) -> Codec:
        """Build an untrained model from `config_dict()` output."""

    def save_pretrained(self, path: str | Path, meta: dict[str, Any] | None = None) -> Path:
        """Write `path/model.safetensors` + `path/config.json` atomically."""
        return save_codec(self, path, meta=meta)

    @classmethod
    def from_pretrained(cls, path: str | Path) -> Codec:
        """Load a checkpoint folder written by `save_pretrained` of this class (strict);
        `CheckpointError` when it holds another codec (`codec.models.registry.load_codec`
        picks the class for any folder)."""
        return load_checkpoint(cls, path)


def fit_length(wav: torch.Tensor, num_samples: int | None) -> torch.Tensor:
    """Trim or zero-pad the last axis of `wav` to `num_samples` (no-op for None)."""
    if num_samples is None:
        return wav
    n = wav.shape[-1]
    if n > num_samples:
        return wav[..., :num_samples]
    if n < num_samples:
        return nn.functional.pad(wav, (0, num_samples - n))
    return wav
