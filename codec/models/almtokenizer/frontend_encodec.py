"""The `encodec` front end: a frozen EnCodec-architecture autoencoder as patchify / unpatchify.

Patchify is the SEANet encoder (continuous 75 Hz latents, before any RVQ), unpatchify the SEANet
decoder, as in the reference reproduction, or (`base_args.acoustic_decoder: vocos`) a Vocos
decoder (`codec.models.vocos`) whose adaptive norms are told the window; it starts untrained and
learns in the decoder stage (stage 3) on the model's own decoded frames.

Any size is supported: the architecture (n_filters, residual layers, ratios, LSTM layers,
causal, norm, dimension = `patch_dim`) is part of the ALMTokenizer config, so an ALMTokenizer
checkpoint folder rebuilds it strictly and carries its weights; the source checkpoint is only
read when a model is set up for training.

Weights (`BaseArgs.frontend_checkpoint`, read by `load_frontend_checkpoint`):
  * one of our EnCodec checkpoint folders (safetensors + config.json, e.g.
    `checkpoints/encodec_demo`), read by `codec.checkpoint.load_checkpoint`;
  * the official `encodec_24khz-d7cc33bc.th`, or "official" for that file in the torch hub
    cache; read by the hash-checked `codec.models.encodec.load_official`.
`resolve_frontend_args` copies the source's architecture into the config first, so the two
cannot disagree.

Causality: the `encodec` package's causal convolutions reflect-pad on the left, so the last
(frame-rate, kernel 7) conv lets frames 0..6 of a clip see up to frame 6; from frame 7 on a
frame never depends on later audio.
"""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from codec.checkpoint import module_hash
from codec.models.almtokenizer.config import BaseArgs
from codec.models.base import SAMPLE_RATE, fit_length
from codec.models.seanet import build_seanet
from codec.models.vocos import VocosDecoder

log = logging.getLogger(__name__)

OFFICIAL = "official"
REPO_ROOT = Path(__file__).resolve().parents[3]
# EnCodecConfig field -> BaseArgs field
ARCH_FIELDS = {
    "n_filters": "encodec_n_filters",
    "n_residual_layers": "encodec_residual_layers",
    "ratios": "encodec_ratios",
    "lstm": "encodec_lstm",
    "causal": "encodec_causal",
    "norm": "encodec_norm",
    "dimension": "patch_dim",
}


class EncodecFrontend(nn.Module):
    """Frozen SEANet encoder (patchify) and decoder (unpatchify) of an EnCodec autoencoder;
    the decoder is a Vocos decoder instead when `args.acoustic_decoder` is "vocos".

    Gradients still flow through `unpatchify` to its input (stage 2 trains through it).

    Args:
        args: the ALMTokenizer `BaseArgs` (its `encodec_*` fields and `patch_dim`).

    Attributes:
        hop_length: waveform samples per frame (prod(encodec_ratios)).
        patch_dim: d, the latent channels.
    """

    trainable = False

    def __init__(self, args: BaseArgs) -> None:
        super().__init__()
        self.hop_length, self.patch_dim = math.prod(args.encodec_ratios), args.patch_dim
        self.default_window = args.default_window
        self.encoder, decoder = build_seanet(
            args.patch_dim, args.encodec_n_filters, args.encodec_residual_layers,
            args.encodec_ratios, args.encodec_norm, args.encodec_causal, args.encodec_lstm,
        )  # fmt: skip
        # a Vocos decoder tells the windows 1..window_max apart (setting index w - 1)
        self.decoder: nn.Module = (
            VocosDecoder(args.patch_dim, self.hop_length, args.window_max, args.vocos)
            if args.acoustic_decoder == "vocos"
            else decoder
        )
        self.requires_grad_(False)
        self.train(False)

    def train(self, mode: bool = True) -> EncodecFrontend:
        """Always stays in eval mode: the autoencoder is frozen."""
        return super().train(False)

    def pad_to_hop(self, wav: torch.Tensor) -> torch.Tensor:
        """Zero-pad `[B, 1, N]` on the right to a multiple of the hop."""
        rem = wav.shape[-1] % self.hop_length
        return F.pad(wav, (0, self.hop_length - rem)) if rem else wav

    def patchify(self, wav: torch.Tensor) -> torch.Tensor:
        """Waveform `[B, 1, N]` -> latent frames `[B, d, T]`, T = ceil(N / hop)."""
        if wav.ndim != 3 or wav.shape[1] != 1:
            raise ValueError(f"patchify expects [B, 1, N], got {tuple(wav.shape)}")
        return self.encoder(self.pad_to_hop(wav))

    @property
    def vocos(self) -> bool:
        """Whether the decoder is a Vocos decoder (told the window) rather than SEANet."""
        return isinstance(self.decoder, VocosDecoder)

    def unpatchify(
        self, e: torch.Tensor, num_samples: int | None = None, window: int | None = None
    ) -> torch.Tensor:
        """Latent frames `[B, d, T]` -> waveform `[B, 1, T * hop]`, or exactly `num_samples`.
        `window`: the tokens' window (default `default_window`), which a Vocos decoder is told;
        SEANet ignores it."""
        if e.ndim != 3 or e.shape[1] != self.patch_dim:
            raise ValueError(f"unpatchify expects [B, {self.patch_dim}, T], got {tuple(e.shape)}")
        if self.vocos:
            w = self.default_window if window is None else window
            return fit_length(self.decoder(e, w - 1), num_samples)
        return fit_length(self.decoder(e), num_samples)

    def weights_hash(self) -> str:
        """16 hex digits of sha256 over the encoder's tensors (what the frames depend on): the
        key of latent caches, whatever file the weights came from, and unchanged when the
        decoder stage trains the decoder."""
        return module_hash(self.encoder)

    @torch.no_grad()
    def load_from_encodec(self, codec: nn.Module, where: str) -> None:
        """Copy the encoder and decoder of an `EnCodecCodec` strictly; a Vocos decoder is not
        copied (EnCodec's is told bandwidths, not windows): it keeps its initialisation.

        Raises:
            ValueError: its architecture differs from this front end's (names `where`).
        """
        parts = ("encoder", "decoder")
        if self.vocos:
            parts = ("encoder",)
            log.info("%s: the encoder only; the Vocos decoder starts untrained", where)
        for part in parts:
            own, src = getattr(self, part).state_dict(), getattr(codec, part).state_dict()
            bad = sorted(set(own) ^ set(src)) + [
                k for k in own if k in src and own[k].shape != src[k].shape
            ]
            if bad:
                raise ValueError(
                    f"{where}: its {part} does not match base_args' encodec architecture "
                    f"(first mismatching keys {bad[:3]}); run resolve_frontend_args first"
                )
            getattr(self, part).load_state_dict(src, strict=True)


def official_path(source: str) -> Path | None:
    """The official weights file for `source` ("official" or a `.th` path), else None."""
    from codec.models.encodec import official_weight_candidates

    if source == OFFICIAL:
        found = [p for p in official_weight_candidates() if p.is_file()]
        return found[0] if found else official_weight_candidates()[-1]
    return Path(source) if source.endswith(".th") else None


def source_path(source: str) -> Path:
    """A checkpoint path as given, or relative to the repository root when only that exists."""
    p = Path(source).expanduser()
    if not p.exists() and not p.is_absolute() and (REPO_ROOT / p).exists():
        return REPO_ROOT / p
    return p


def source_architecture(source: str) -> dict[str, Any]:
    """The `encodec_*` / `patch_dim` / `frame_rate` BaseArgs values of a weights source.

    Raises:
        FileNotFoundError: the folder or file does not exist (named).
        ValueError: the folder holds no EnCodec checkpoint.
    """
    from codec.models.encodec import EnCodecConfig

    official = official_path(source)
    if official is not None:
        cfg = EnCodecConfig()
    else:
        folder = source_path(source)
        cfg_file = folder / "config.json"
        if not cfg_file.is_file():
            raise FileNotFoundError(
                f"base_args.frontend_checkpoint: {folder} is neither an EnCodec checkpoint "
                "folder (config.json + model.safetensors) nor the official .th file"
            )
        raw = json.loads(cfg_file.read_text())
        if raw.get("codec") != "encodec":
            raise ValueError(
                f"base_args.frontend_checkpoint: {folder} holds a {raw.get('codec')!r} "
                "checkpoint, not an EnCodec autoencoder"
            )
        cfg = EnCodecConfig.from_dict(raw["model"])
    out: dict[str, Any] = {ours: getattr(cfg, theirs) for theirs, ours in ARCH_FIELDS.items()}
    out["encodec_ratios"] = list(cfg.ratios)
    out["frame_rate"] = SAMPLE_RATE // math.prod(cfg.ratios)
    return out


def resolve_frontend_args(base_args: dict[str, Any]) -> dict[str, Any]:
    """`base_args` (a dict) with the architecture of its `frontend_checkpoint` filled in.

    The source's architecture wins over the config's (a changed value is logged); without a
    `frontend_checkpoint` the dict is returned unchanged.
    """
    source = base_args.get("frontend_checkpoint")
    if not source:
        return dict(base_args)
    arch = source_architecture(source)
    out = dict(base_args)
    for key, value in arch.items():
        if key in out and out[key] != value:
            log.info("base_args.%s: %r -> %r (from %s)", key, out[key], value, source)
        out[key] = value
    return out


def load_frontend_checkpoint(frontend: EncodecFrontend, source: str) -> str:
    """Load the frozen autoencoder's weights from `source` into `frontend`; returns a
    description ("checkpoint:<path> (hash ...)" or "official:<path>").

    Raises:
        FileNotFoundError, ValueError, codec.checkpoint.CheckpointError: missing, unreadable or
            mismatching weights, naming the path.
    """
    from codec.checkpoint import load_checkpoint
    from codec.models.encodec import EnCodecCodec, load_official

    official = official_path(source)
    if official is not None:
        if not official.is_file():
            raise FileNotFoundError(
                f"base_args.frontend_checkpoint: the official EnCodec weights {official} are "
                "not there; download them or point to one of our EnCodec checkpoint folders"
            )
        codec = load_official(official)
        where = f"official:{official}"
    else:
        folder = source_path(source)
        codec = load_checkpoint(EnCodecCodec, folder)
        where = f"checkpoint:{folder} (hash {codec.checkpoint_hash})"
    frontend.load_from_encodec(codec, where)
    log.info("front end: frozen EnCodec autoencoder from %s", where)
    return where
