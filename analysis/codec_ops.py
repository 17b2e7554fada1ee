"""Small helpers that talk to a `codec.models.base.Codec` through its public interface only.

Everything in `analysis/` reaches models through these functions (or the Codec methods
themselves), never through a backend's internals.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from collections.abc import Sequence
from typing import Any

import torch

from codec.models.base import Codec

log = logging.getLogger(__name__)

_HEX = re.compile(r"(sd-)?[0-9a-fA-F]{8,64}")
# A bandwidth codec (EnCodec) runs by default at every bandwidth its checkpoint offers up to
# here: the official model's 12 and 24 kbps are far above every other codec's rates.
MAX_DEFAULT_KBPS = 6.0


def codec_device(codec: Codec) -> torch.device:
    """The device of the codec's first parameter or buffer (CPU for a parameterless codec)."""
    for t in codec.parameters():
        return t.device
    for t in codec.buffers():
        return t.device
    return torch.device("cpu")


def bandwidths_for(
    codec: Codec, bandwidths: Sequence[float] | None = None, label: str | None = None
) -> list[float]:
    """The bandwidths (kbps) to run a codec whose setting is a bandwidth at: with `bandwidths`
    None, each one it offers (`Codec.setting`: an EnCodec checkpoint's `target_bandwidths`)
    up to `MAX_DEFAULT_KBPS` (all of them when none is that low); else `bandwidths`, each of
    which it must offer.

    Raises:
        ValueError: a requested bandwidth the codec does not offer, naming the value, the
            codec (`label`, default its name) and the bandwidths it offers.
    """
    spec = codec.setting()
    offered = [float(b) for b in spec.choices]
    if bandwidths is None:
        return [b for b in offered if b <= MAX_DEFAULT_KBPS] or offered
    missing = [f"{float(b):g}" for b in bandwidths if float(b) not in offered]
    if missing:
        raise ValueError(
            f"{label or codec.name} does not offer {', '.join(missing)} kbps: its checkpoint "
            f"offers {', '.join(f'{c:g}' for c in offered)} kbps"
        )
    return [float(b) for b in bandwidths]


def uses_window(codec: Codec) -> bool:
    """True when the codec's setting is a window size (ALMTokenizer), False when the window is
    ignored (EnCodec). Asked through `Codec.setting()`."""
    return codec.setting().kind == "window"


def effective_window(codec: Codec, window: int | None) -> int | None:
    """`window` for codecs that use one, None for codecs that ignore it (so cache keys and
    labels do not multiply for EnCodec)."""
    return window if uses_window(codec) else None


def state_dict_hash(codec: Codec) -> str:
    """Content hash (16 hex chars) of the codec's name, its config less the settings that never
    change the latents (`Codec.latent_config_dict`) and every state tensor.

    Used as the identity of models that were never saved (no `checkpoint_hash` attribute).
    """
    h = hashlib.sha256()
    h.update(codec.name.encode())
    config = codec.latent_config_dict()
    h.update(json.dumps(config, sort_keys=True, default=str).encode())
    for key, tensor in sorted(codec.state_dict().items()):
        t = tensor.detach().cpu().contiguous()
        h.update(f"{key}:{t.dtype}:{tuple(t.shape)}".encode())
        if t.numel():
            h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()[:16]


def codec_identity(codec: Codec) -> str:
    """`codec.checkpoint_hash` when the codec was loaded from a checkpoint folder or weights
    file (a hex content hash), else a hash of its state dict (unsaved models; also backends that
    set a placeholder such as "random-init"). Equal identities mean equal latents, as long as a
    loaded model's weights are not modified in memory afterwards."""
    ident = getattr(codec, "checkpoint_hash", None)
    if isinstance(ident, str) and _HEX.fullmatch(ident):
        return f"{codec.name}-{ident}"
    return f"{codec.name}-sd-{state_dict_hash(codec)}"


def codec_label(codec: Codec, window: int | None = None, name: str | None = None) -> str:
    """Human-readable label such as "almtokenizer (w=6, 1.1 kbps)" or "encodec (1.5 kbps)";
    `name` replaces `codec.name` (e.g. "EnCodec (official)")."""
    w = effective_window(codec, window)
    kbps = codec.bitrate(w) / 1000.0
    name = name or codec.name
    return f"{name} (w={w}, {kbps:.2f} kbps)" if w is not None else f"{name} ({kbps:.2f} kbps)"


def as_batch(wav: torch.Tensor) -> torch.Tensor:
    """`[N]`, `[1, N]` or `[B, 1, N]` -> `[B, 1, N]` float32."""
    x = torch.as_tensor(wav).float()
    if x.dim() == 1:
        x = x[None, None]
    elif x.dim() == 2:
        x = x[:, None] if x.shape[0] != 1 else x[None]
    if x.dim() != 3 or x.shape[1] != 1:
        raise ValueError(
            f"expected a mono waveform [N], [1, N] or [B, 1, N], got {tuple(wav.shape)}"
        )
    return x


@torch.inference_mode()
def decode_frames(
    codec: Codec,
    frames: torch.Tensor,
    window: int | None,
    num_samples: int,
    quantize: bool | None = None,
) -> torch.Tensor:
    """Decode one latent sequence `[T, D]` (time first, as analysis stores it) to `[1, N]`.

    `quantize` snaps the latents onto the codebooks first; None (default): when the codec
    declares `decodes_quantized_only` (ALMTokenizer: measured on 12 held-out demo clips at w=6,
    its decoder kept the pitch of 9 % of unquantized encodings and 64 % of quantized ones), so
    shifted, interpolated and averaged latents decode the way its tokens would.
    """
    latents = frames.T[None].to(codec_device(codec), torch.float32)  # [1, D, T]
    if codec.decodes_quantized_only if quantize is None else quantize:
        latents = requantize(codec, latents, window)
    wav = codec.decode(latents, window, num_samples=num_samples)  # [1, 1, N]
    return wav[0].detach().cpu().float()


def requantize(codec: Codec, latents: torch.Tensor, window: int | None) -> torch.Tensor:
    """Snap continuous latents `[B, D, T]` to the codec's quantizer: quantized `[B, D, T]`.

    Uses `Codec.quantize(latents, window)` (a tensor, or an object with `.quantized`).

    Raises:
        NotImplementedError: the codec offers no quantize step.
    """
    with torch.inference_mode():
        try:
            out: Any = codec.quantize(latents.to(codec_device(codec)), window)
        except NotImplementedError:
            raise NotImplementedError(
                f"{codec.name} has no public quantize(latents, window); "
                "re-quantization is unavailable"
            ) from None
    q = getattr(out, "quantized", out)
    if isinstance(q, tuple):
        q = q[0]
    if not isinstance(q, torch.Tensor) or q.shape != latents.shape:
        raise TypeError(f"{codec.name}.quantize returned {type(out).__name__}, not [B, D, T]")
    return q
