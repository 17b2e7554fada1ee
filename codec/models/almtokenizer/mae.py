"""The MAE branch (training only): mask encoder input frames, predict them back.

A share `mask_ratio` of the frames that enter the query encoder is replaced by a learnable mask
vector; the encoder runs on the interleaved, masked sequence; a small (bidirectional) transformer
decoder reads the whole encoder output and predicts the original patch frames `e` at the masked
positions. The loss pushes the encoder, and so the query tokens, towards context (global
semantics) rather than frame-local detail.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from codec.models.almtokenizer.interleave import retrieve_frames
from codec.models.almtokenizer.transformer import Transformer


def random_frame_mask(
    batch: int, num_frames: int, ratio: float, device: torch.device
) -> torch.Tensor:
    """Boolean `[B, T]` with exactly round(ratio * T) (at least 1 when ratio > 0) True per row,
    at random positions drawn from the global torch RNG."""
    n_mask = round(ratio * num_frames)
    if ratio > 0:
        n_mask = max(n_mask, 1)
    order = torch.rand(batch, num_frames, device=device).argsort(dim=1)
    return order < n_mask


class MAEDecoder(nn.Module):
    """Predicts patch frames from the encoder's interleaved output.

    Args:
        dim: D, the encoder width.
        patch_dim: d, the patch frame dimension (prediction target).
        mae_dim, n_heads, n_layers: the MAE transformer.
    """

    def __init__(self, dim: int, patch_dim: int, mae_dim: int, n_heads: int, n_layers: int) -> None:
        super().__init__()
        self.mask_vector = nn.Parameter(torch.randn(dim) * 0.02)
        self.proj_in = nn.Linear(dim, mae_dim)
        self.transformer = Transformer(mae_dim, n_layers, n_heads, 4 * mae_dim, causal=False)
        self.proj_out = nn.Linear(mae_dim, patch_dim)

    def mask_inputs(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Replace frames of `x` `[B, T, D]` where `mask` `[B, T]` is True by the mask vector."""
        return torch.where(mask[..., None], self.mask_vector.to(x.dtype), x)

    def forward(self, enc_out: torch.Tensor, window: int) -> torch.Tensor:
        """Interleaved encoder output `[B, n * (w + 1), D]` -> predicted frames `[B, n * w, d]`."""
        y = self.transformer(self.proj_in(enc_out))
        return self.proj_out(retrieve_frames(y, window))

    @staticmethod
    def loss(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """MSE at masked positions between `pred` `[B, T, d]` and the per-frame normalised
        (detached) target `[B, T, d]`; `mask` `[B, T]`. Normalising each frame (as MAE's
        norm_pix_loss) keeps the loss scale independent of the front end's feature scale."""
        t = F.layer_norm(target.detach().float(), target.shape[-1:])
        err = (pred.float() - t).pow(2).mean(-1)
        m = mask.float()
        return (err * m).sum() / m.sum().clamp_min(1.0)
