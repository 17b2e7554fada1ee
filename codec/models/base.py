"""The Codec interface that every backend implements.

`analysis/` and `app/` use nothing but this surface, so ALMTokenizer and EnCodec are
interchangeable there. A codec is an `nn.Module` whose whole state is its `state_dict()` plus
the JSON-serialisable dict returned by `config_dict()`; `save_pretrained` / `from_pretrained`
(in `codec.checkpoint`) turn that pair into a checkpoint folder.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import threading
import weakref
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch
from torch import nn

from codec.checkpoint import load_checkpoint, save_codec
from codec.models.trainable import STAGES, FrameFrontend, TrainingHooks, TrainOutput

SAMPLE_RATE = 24000
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
        names: optional names of the choices, in the same order, that pages show and `check`
            accepts too (Codec2's modes: "700C", "1200", "3200" for 0.7, 1.2, 3.2 kbps).
    """

    kind: SettingKind
    choices: tuple[float, ...] = ()
    default: float | None = None
    names: tuple[str, ...] = ()

    def check(self, value: Any) -> float | None:
        """`value` as an allowed choice (int for windows); ValueError naming the choices."""
        if self.kind == "none":
            return None
        named = dict(zip(self.names, self.choices))
        if str(value).strip() in named:
            return named[str(value).strip()]
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
            also = f" (or {', '.join(self.names)})" if self.names else ""
            raise ValueError(f"{self.kind} must be one of {allowed}{unit}{also}, got {value!r}")
        return v

    def label(self, value: float | None) -> str:
        """ "w=6", "1.5 kbps", the choice's name ("700C") or "default"."""
        if self.kind == "window" and value is not None:
            return f"w={int(value)}"
        if value in self.choices and self.names:
            return self.names[self.choices.index(value)]
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
class Reconstruction:
    """What `Codec.reconstruct_measured` returns: the audio and the bits it cost.

    Attributes:
        wav: the reconstruction, `[B, 1, N]` (the input's length).
        bits: bits of the payload actually produced for the whole batch (Opus: its packets'
            sizes), or None when the codec only knows its nominal rate.
        seconds: seconds of audio in the batch (B x N / sample rate).
        nominal: the nominal bitrate of the setting, bits per second.
    """

    wav: torch.Tensor
    bits: float | None
    seconds: float
    nominal: float

    @property
    def measured(self) -> bool:
        """True when `bitrate` counts the bits produced rather than the nominal rate."""
        return self.bits is not None and self.seconds > 0

    @property
    def bitrate(self) -> float:
        """Bits per second: measured (bits / seconds) when known, else the nominal rate."""
        return self.bits / self.seconds if self.measured else self.nominal  # type: ignore[operator]


class NoLatentsError(NotImplementedError):
    """A reference codec (Opus, Codec2) was asked for latents or codes: it only reconstructs."""


class Codec(TrainingHooks, nn.Module, ABC):
    """Abstract audio codec: waveform <-> latents <-> codes.

    Subclasses set `name` (the `codec` field of config.json) and implement the abstract methods.
    What the training loop asks of a codec (which parameters a stage trains, what it builds
    from a config) is `TrainingHooks`, with defaults for a codec that trains every parameter.

    Attributes:
        checkpoint_hash: content hash of the checkpoint a loader read (set by
            `codec.models.registry.load_codec` and the backends' loaders; absent on unsaved models).
        weights_source: where the weights came from ("checkpoint:<path>", "official:<path>",
            "random-init (untrained)"), for pages and logs; absent when unknown.
    """

    name: str = "codec"
    sample_rate: int = SAMPLE_RATE
    # False for reference codecs (Opus, Codec2: `codec.models.reference`): they reconstruct
    # audio (`reconstruct`, `reconstruct_measured`) but have no latents, codes or weights, so
    # encode/decode raise `NoLatentsError` and maps, probes, traversals and timbre transfer
    # leave them out.
    has_latents: bool = True
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

    # --- the identity of the codes -------------------------------------------------------------
    # Buffers that only training statistics use (EMA codebook counts and sums, the k-means
    # flag): they never change which code a latent gets once the codebook is trained.
    CODES_HASH_SKIP: tuple[str, ...] = ("cluster_size", "embed_avg", "inited")

    def encode_modules(self) -> list[nn.Module]:
        """The modules that turn audio into codes (default: the whole model)."""
        return [self]

    def encode_config_dict(self) -> dict[str, Any]:
        """The config entries that shape the codes (default: `latent_config_dict()`)."""
        return self.latent_config_dict()

    def codes_hash(self) -> str:
        """16 hex digits naming the codes this codec writes for a given audio: a hash of its
        name, `encode_config_dict()` and the tensors of `encode_modules()`. Two checkpoints
        with the same value write the same codes (a decoder retrained on frozen codes keeps
        it), so code shards and a token LM stay valid across them (`codec.lm.record`)."""
        h = hashlib.sha256(self.name.encode())
        h.update(json.dumps(self.encode_config_dict(), sort_keys=True, default=str).encode())
        for i, module in enumerate(self.encode_modules()):
            for key, t in sorted(module.state_dict().items()):
                if key.rsplit(".", 1)[-1] in self.CODES_HASH_SKIP:
                    continue
                h.update(f"{i}:{key}:{tuple(t.shape)}:{t.dtype}".encode())
                h.update(t.detach().cpu().contiguous().numpy().tobytes())
        return h.hexdigest()[:16]

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
        """`wav` `[B, 1, N]` through the codec at this window (and the current stateful
        setting), trimmed to the input length: `[B, 1, N]`. Latent codecs encode -> quantize
        -> decode; reference codecs override it with their own round trip."""
        enc = self.encode(wav, window)
        return self.decode(enc.quantized, window, num_samples=wav.shape[-1])

    def reconstruct_measured(self, wav: torch.Tensor, window: int | None = None) -> Reconstruction:
        """`reconstruct` plus what it cost: the bits produced when the codec can count them
        (Opus's packets; reference codecs override this), else the nominal `bitrate(window)`."""
        seconds = wav.shape[0] * wav.shape[-1] / self.sample_rate
        return Reconstruction(self.reconstruct(wav, window), None, seconds, self.bitrate(window))

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


def codes_hash_of(codec: Any) -> str | None:
    """`codec.codes_hash()`, or None for an object without one (a duck-typed tokenizer)."""
    fn = getattr(codec, "codes_hash", None)
    return str(fn()) if callable(fn) else None


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


__all__ = [
    "SAMPLE_RATE", "STAGES", "WINDOWS", "Codec", "CodecSetting", "Encoded", "FrameFrontend",
    "NoLatentsError", "Reconstruction", "TrainOutput", "fit_length",
]  # fmt: skip
