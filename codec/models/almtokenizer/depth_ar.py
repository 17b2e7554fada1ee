"""Depth-AR loss: make each RVQ layer predictable from the layers before it.

For every token a small causal transformer runs over the RVQ depth: from the codewords of
layers 1..k it predicts the codeword of layer k + 1. The loss is the MSE between the
L2-normalised prediction and the L2-normalised, detached target, so the gradient shapes the
earlier layers (through the straight-through inputs) and the predictor, never the target.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from codec.models.almtokenizer.transformer import Transformer


class DepthAR(nn.Module):
    """Predict RVQ layer k+1 from layers <= k.

    Args:
        codebook_dim: C, the dimension of the per-layer codewords.
        n_q: RVQ depth (the loss needs n_q >= 2).
        dim, n_layers, n_heads: the depth transformer.
    """

    def __init__(self, codebook_dim: int, n_q: int, dim: int, n_layers: int, n_heads: int) -> None:
        super().__init__()
        self.n_q = n_q
        self.proj_in = nn.Linear(codebook_dim, dim)
        self.depth_embed = nn.Parameter(torch.randn(max(n_q - 1, 1), dim) * 0.02)
        self.transformer = Transformer(dim, n_layers, n_heads, 4 * dim, causal=True)
        self.proj_out = nn.Linear(dim, codebook_dim)

    def forward(self, layer_outputs: torch.Tensor) -> torch.Tensor:
        """Loss (scalar) from per-layer codewords `[B, n_q, C, T]`; zero when n_q < 2."""
        B, n_q, C, T = layer_outputs.shape
        if n_q < 2:
            return layer_outputs.sum() * 0.0
        seq = layer_outputs.permute(0, 3, 1, 2).reshape(B * T, n_q, C)  # (B*T, n_q, C)
        x = self.proj_in(seq[:, :-1]) + self.depth_embed[: n_q - 1]
        pred = self.proj_out(self.transformer(x))  # (B*T, n_q - 1, C)
        target = F.normalize(seq[:, 1:].detach().float(), dim=-1)
        return F.mse_loss(F.normalize(pred.float(), dim=-1), target)
