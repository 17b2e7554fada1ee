"""ALMTokenizer (arXiv 2504.10344): query-based compression of patch frames into RVQ tokens.

    wav [B, 1, N] --patchify (frozen EnCodec encoder)--> e [B, d, T] --standardize--> z
      --frame_proj--> [B, T, D] --interleave_queries(w)--> [B, T + T/w, D] --encoder-->
      retrieve_queries --> h [B, D, T/w] --RVQ--> quantized [B, D, T/w], codes [B, n_q, T/w]
      --interleave_masks(w)--> [B, T + T/w, D] --decoder--> retrieve_frames --frame_out-->
      z_hat [B, d, T] --de-standardize--> e_hat --unpatchify (frozen decoder)--> wav_hat [B, 1, N]

Training (`forward`, stage 2) returns the reconstruction through the frozen decoder (the trainer
adds waveform / spectral losses on it), the frame loss in standardised units, and the MAE
branch and the depth-AR loss. Cached frames can stand in for the waveform's patchify. The
window w (frames per token) is an argument of every call, so one model serves every bitrate:
frame_rate / w tokens per second, each carrying n_q * log2(K) bits.
"""

from __future__ import annotations

import logging
from typing import Any

import torch
from torch import nn

from codec.models.almtokenizer.config import ALMConfig
from codec.models.almtokenizer.config import preset as _preset
from codec.models.almtokenizer.depth_ar import DepthAR
from codec.models.almtokenizer.frontend_encodec import EncodecFrontend
from codec.models.almtokenizer.group_linear import GroupLinear
from codec.models.almtokenizer.interleave import (
    group_means,
    interleave_masks,
    interleave_queries,
    retrieve_frames,
    retrieve_queries,
)
from codec.models.almtokenizer.mae import MAEDecoder, random_frame_mask
from codec.models.almtokenizer.pitch_head import PitchHead, semitone_targets
from codec.models.almtokenizer.quantizer import ResidualVQ
from codec.models.almtokenizer.standardize import FrameStandardizer
from codec.models.almtokenizer.training_hooks import ALMTrainingHooks
from codec.models.almtokenizer.transformer import Transformer
from codec.models.base import SAMPLE_RATE, Codec, Encoded, TrainOutput

log = logging.getLogger(__name__)


class ALMTokenizer(ALMTrainingHooks, Codec):
    """The ALMTokenizer codec.

    Args:
        config: sizes and options; None: `preset("demo")`.
    """

    name = "almtokenizer"
    decodes_quantized_only = True  # the mask-token decoder only ever saw quantized tokens

    def __init__(self, config: ALMConfig | None = None) -> None:
        super().__init__()
        self.config = config if config is not None else _preset("demo")
        a, m = self.config.base_args, self.config.mae_args
        self.frontend = EncodecFrontend(a)
        self.hop_length = self.frontend.hop_length
        self.standardizer = FrameStandardizer(a.patch_dim, enabled=a.standardize)
        self.frame_proj = nn.Linear(a.patch_dim, a.dim)
        self.query_token = nn.Parameter(torch.randn(a.dim) * 0.02)
        self.encoder = Transformer(
            a.dim, a.n_layers, a.n_heads, a.ffn_dim, a.causal, attn_span=a.attn_span
        )
        self.quantizer = ResidualVQ(
            a.dim,
            a.n_codebooks,
            a.codebook_size,
            a.codebook_dim,
            decay=a.ema_decay,
            dead_code_steps=a.dead_code_steps,
            kmeans_iters=a.kmeans_iters,
            prior_path=a.kmeans_features_path,
            warmup_steps=a.quantizer_warmup_steps,
        )
        # one mask vector per position in the window (w <= window_max), as w learnable masks
        self.mask_token = nn.Parameter(torch.randn(a.window_max, a.dim) * 0.02)
        self.decoder = Transformer(
            a.dim, a.decoder_n_layers, a.n_heads, a.ffn_dim, a.causal, attn_span=a.attn_span
        )
        self.frame_out = nn.Linear(a.dim, a.patch_dim)
        # linear paths group <-> token (None unless base_args.group_linear)
        self.group_in = GroupLinear(a.dim, a.window_max) if a.group_linear else None
        self.group_out = GroupLinear(a.dim, a.window_max) if a.group_linear else None
        # zero bias: the first prediction is the channel mean (0 in standardised units)
        nn.init.zeros_(self.frame_out.bias)
        self.mae = (
            MAEDecoder(a.dim, a.patch_dim, m.dim, m.n_heads, m.n_layers) if m.n_layers else None
        )
        self.depth_ar = (
            DepthAR(self.quantizer.codebook_dim, a.n_codebooks, a.ar_dim, a.ar_layers, a.ar_n_heads)
            if a.ar_layers and a.n_codebooks >= 2
            else None
        )
        self.pitch_head = PitchHead(a.dim) if a.pitch_head else None
        self.freeze_frontend()
        self._warned_stats = False

    # --- Codec description ---------------------------------------------------------------
    @property
    def latent_dim(self) -> int:
        return self.config.base_args.dim

    @property
    def num_codebooks(self) -> int:
        return self.config.base_args.n_codebooks

    @property
    def codebook_size(self) -> int:
        return self.config.base_args.codebook_size

    def frame_rate(self, window: int | None = None) -> float:
        """Tokens per second: frame_rate / w."""
        return self.config.base_args.frame_rate / self._window(window)

    def num_frames(self, num_samples: int, window: int | None = None) -> int:
        """Tokens for `num_samples` samples: ceil(ceil(N / hop) / w), in integer arithmetic."""
        return -(-num_samples // (self.hop_length * self._window(window)))

    # --- building blocks ---------------------------------------------------------------------
    def _window(self, window: int | None) -> int:
        w = self.config.base_args.default_window if window is None else window
        if isinstance(w, bool) or not isinstance(w, int) or w < 1:
            raise ValueError(f"window must be a positive int, got {window!r}")
        return w

    def patchify(self, wav: torch.Tensor, window: int) -> torch.Tensor:
        """Raw patch frames `[B, d, T]` of `wav` `[B, 1, N]` zero-padded to a multiple of
        hop * w, so T = w * ceil(N / (hop * w)). No gradient (the front end is frozen)."""
        rem = wav.shape[-1] % (self.hop_length * window)
        if rem:
            wav = nn.functional.pad(wav, (0, self.hop_length * window - rem))
        with torch.no_grad():
            return self.frontend.patchify(wav)

    def unpatchify(
        self, z: torch.Tensor, num_samples: int | None = None, window: int | None = None
    ) -> torch.Tensor:
        """Standardised frames `[B, d, T]` decoded from tokens of window `window` -> waveform
        `[B, 1, T * hop]` (or `num_samples`), through the frozen decoder (gradients reach `z`)."""
        return self.frontend.unpatchify(self.standardizer.inverse(z), num_samples, window)

    def encode_frames(
        self, z: torch.Tensor, window: int, mae_mask: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Query encoder on standardised frames `z` `[B, d, T]`.

        Returns the interleaved encoder output `[B, T + T/w, D]` and the tokens h `[B, D, T/w]`.
        `mae_mask` `[B, T]` (bool) replaces those input frames by the MAE mask vector.
        """
        x = self.frame_proj(z.transpose(1, 2))  # (B, T, D)
        if mae_mask is not None:
            if self.mae is None:
                raise ValueError("mae_mask given but the MAE branch is disabled")
            x = self.mae.mask_inputs(x, mae_mask)
        query = self.query_token
        if self.config.base_args.window_summary:  # + the mean of the group's own frames
            query = query + group_means(x, window)
        if self.group_in is not None:
            query = query + self.group_in.summarize(x, window)
        inter = interleave_queries(x, query, window)
        out = self.encoder(inter.seq)
        return out, retrieve_queries(out, window).transpose(1, 2)

    def decode_frames(self, latents: torch.Tensor, window: int) -> torch.Tensor:
        """Mask-token decoder: tokens `[B, D, n]` -> standardised frames `[B, d, n * w]`."""
        if latents.ndim != 3 or latents.shape[1] != self.latent_dim:
            raise ValueError(
                f"latents must be [B, {self.latent_dim}, T], got {tuple(latents.shape)}"
            )
        if window > self.mask_token.shape[0]:
            raise ValueError(f"window {window} > base_args.window_max {self.mask_token.shape[0]}")
        tokens = latents.transpose(1, 2)  # (B, n, D)
        mask = self.mask_token[:window]
        if self.config.base_args.window_summary:  # each mask vector + its group's token
            mask = mask[None, None] + tokens[:, :, None]
        if self.group_out is not None:
            mask = mask + self.group_out.expand(tokens, window)
        seq = interleave_masks(tokens, mask, window)
        out = self.decoder(seq, group_size=window + 1)  # window-granular causality
        return self.frame_out(retrieve_frames(out, window)).transpose(1, 2)

    # --- Codec inference ---------------------------------------------------------------------
    def encode(self, wav: torch.Tensor, window: int | None = None) -> Encoded:
        """`wav` `[B, 1, N]` -> Encoded(latents h `[B, D, n]`, quantized `[B, D, n]`,
        codes `[B, n_q, n]`), n = ceil(ceil(N / hop) / w)."""
        w = self._window(window)
        _, h = self.encode_frames(self.standardizer(self.patchify(wav, w)), w)
        codes = self.quantizer.encode(h)
        return Encoded(
            latents=h,
            quantized=self.quantizer.decode(codes),
            codes=codes,
            window=w,
            num_samples=wav.shape[-1],
        )

    def decode(
        self, latents: torch.Tensor, window: int | None = None, num_samples: int | None = None
    ) -> torch.Tensor:
        """Latents (continuous or quantized) `[B, D, n]` -> waveform `[B, 1, n * w * hop]`, or
        exactly `num_samples` long when given."""
        w = self._window(window)
        return self.unpatchify(self.decode_frames(latents, w), num_samples, w)

    @torch.no_grad()
    def quantize(self, latents: torch.Tensor, window: int | None = None) -> torch.Tensor:
        """Snap continuous tokens `[B, D, n]` onto the RVQ codebooks: `[B, D, n]`."""
        return self.quantizer.decode(self.quantizer.encode(latents))

    def codes_to_latents(self, codes: torch.Tensor, window: int | None = None) -> torch.Tensor:
        """Codes `[B, n_q, n]` -> quantized latents `[B, D, n]` (window does not matter)."""
        return self.quantizer.decode(codes)

    @torch.no_grad()
    def reconstruct_frames(
        self, wav: torch.Tensor, window: int | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The front end's frames of `wav` `[B, 1, N]` and their reconstruction through the
        quantized tokens, both raw `[B, d, T]` (T = w * ceil(N / (hop * w)))."""
        w = self._window(window)
        frames = self.patchify(wav, w)
        z = self.standardizer(frames)
        _, h = self.encode_frames(z, w)
        z_hat = self.decode_frames(self.quantizer.decode(self.quantizer.encode(h)), w)
        return frames, self.standardizer.inverse(z_hat[..., : z.shape[-1]])

    # --- training ----------------------------------------------------------------------------
    @torch.no_grad()
    def frame_error(self, frames: torch.Tensor, window: int, quantize: bool = True) -> torch.Tensor:
        """Relative frame error per clip `[B]`: ||z_hat - z||^2 / ||z||^2 in standardised units,
        for raw frames `[B, d, T]` through tokens (quantized unless `quantize` is False)."""
        z = self.standardizer(frames)
        _, h = self.encode_frames(z, window)
        if quantize:
            h = self.quantizer.decode(self.quantizer.encode(h))
        z_hat = self.decode_frames(h, window)[..., : z.shape[-1]]
        return (z_hat - z).pow(2).sum((1, 2)) / z.pow(2).sum((1, 2)).clamp_min(1e-8)

    def forward(
        self, wav: torch.Tensor, window: int, stage: int, frames: torch.Tensor | None = None
    ) -> TrainOutput:
        """One training forward pass on `wav` `[B, 1, N]`.

        stage 1: the frozen autoencoder alone (patchify -> unpatchify), for reference; nothing
            in it trains (train the autoencoder as an EnCodec model).
        stage 2: the full path with the reconstruction through the frozen decoder; losses
            "loss/commit", "loss/latent" (MSE of the decoded frames against the patchify frames,
            both standardised), "loss/mae" (when the MAE branch is on) and "loss/ar" (when the
            depth-AR head is on), "loss/pitch" (when the pitch head is on), unweighted; codes and
            codebook stats.

        `frames`: the raw patchify frames `[B, d, T]` of `wav` (e.g. from a latent cache, with
        N = T * hop), used instead of running the encoder.
        """
        if wav.ndim != 3 or wav.shape[1] != 1:
            raise ValueError(f"forward expects [B, 1, N], got {tuple(wav.shape)}")
        n = wav.shape[-1]
        if stage == 1:
            with torch.no_grad():
                recon = self.frontend.unpatchify(self.frontend.patchify(wav), n, window)
            return TrainOutput(recon=recon, losses={}, codes=None, stats={})
        if stage not in (2, 3):
            raise ValueError(f"stage must be 1, 2 or 3, got {stage!r}")
        w, d = self._window(window), self.config.base_args.patch_dim
        if frames is None:
            frames = self.patchify(wav, w)
        elif frames.ndim != 3 or frames.shape[:2] != (wav.shape[0], d):
            raise ValueError(f"frames must be [{wav.shape[0]}, {d}, T], got {tuple(frames.shape)}")
        frames = frames.detach().float()
        if self.training and not bool(self.standardizer.ready):
            if not self._warned_stats:
                log.warning("frame statistics not set: fitting them to this batch")
                self._warned_stats = True
            self.standardizer.fit(frames)
        z = self.standardizer(frames)
        T = z.shape[-1]
        if stage == 3:
            return self._decoder_stage(z, w, n)
        _, h = self.encode_frames(z, w)
        q = self.quantizer(h)
        z_hat = self.decode_frames(q.quantized, w)[..., :T]  # (B, d, T)
        recon = self.unpatchify(z_hat, n, w)
        losses: dict[str, torch.Tensor] = {
            "loss/commit": q.commit_loss,
            "loss/latent": nn.functional.mse_loss(z_hat, z),
        }
        if self.mae is not None:  # also in eval mode, so validation reports the same keys
            B = z.shape[0]
            mask = random_frame_mask(B, T, self.config.mae_args.mask_ratio, z.device)
            out_masked, _ = self.encode_frames(z, w, mae_mask=mask)
            pred = self.mae(out_masked, w)[:, :T]  # (B, T, d)
            losses["loss/mae"] = MAEDecoder.loss(pred, z.transpose(1, 2), mask)
        if self.depth_ar is not None:
            losses["loss/ar"] = self.depth_ar(q.layer_outputs)
        if self.pitch_head is not None:
            targets = semitone_targets(wav, SAMPLE_RATE)
            losses["loss/pitch"] = self.pitch_head.loss(q.quantized, targets)
        stats = dict(q.stats)
        stats["stats/latent_rel"] = float(
            (z_hat.detach() - z).pow(2).sum() / z.pow(2).sum().clamp_min(1e-8)
        )
        return TrainOutput(recon=recon, losses=losses, codes=q.codes, stats=stats)

    def _decoder_stage(self, z: torch.Tensor, window: int, num_samples: int) -> TrainOutput:
        """Stage 3: standardised frames `z` `[B, d, T]` -> frozen encoder and RVQ (no EMA
        update, no gradient) -> the trainable mask-token decoder and acoustic decoder."""
        with torch.no_grad():
            _, h = self.encode_frames(z, window)
            codes = self.quantizer.encode(h)
            tokens = self.quantizer.decode(codes)
        z_hat = self.decode_frames(tokens, window)[..., : z.shape[-1]]
        recon = self.unpatchify(z_hat, num_samples, window)
        rel = (z_hat.detach() - z).pow(2).sum() / z.pow(2).sum().clamp_min(1e-8)
        return TrainOutput(
            recon=recon,
            losses={"loss/latent": nn.functional.mse_loss(z_hat, z)},  # auxiliary (its lambda)
            codes=codes,
            stats={"stats/latent_rel": float(rel)},
        )

    # --- serialisation -----------------------------------------------------------------------
    def config_dict(self) -> dict[str, Any]:
        return self.config.to_dict()

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> ALMTokenizer:
        return cls(ALMConfig.from_dict(config))
