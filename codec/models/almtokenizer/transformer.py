"""Pre-norm transformer with rotary position embeddings (RoPE) and optional causal masking.

Used by the query encoder, the mask-token decoder, the MAE decoder and the depth-AR head.
Attention runs through `F.scaled_dot_product_attention`. Causality can be window-granular
(`group_size` > 1): position i may attend to position j iff j // group_size <= i // group_size,
which the mask-token decoder needs because its mask vectors precede the token they decode.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def rope_tables(
    length: int, head_dim: int, device: torch.device, base: float = 10000.0
) -> tuple[torch.Tensor, torch.Tensor]:
    """cos and sin tables `[L, head_dim / 2]` for positions 0..L-1."""
    inv_freq = 1.0 / (base ** (torch.arange(0, head_dim, 2, device=device).float() / head_dim))
    angles = torch.arange(length, device=device).float()[:, None] * inv_freq[None, :]
    return angles.cos(), angles.sin()


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate pairs (x[..., :h/2], x[..., h/2:]) of `x` `[B, H, L, h]` by the position angles."""
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat([x1 * cos - x2 * sin, x1 * sin + x2 * cos], dim=-1).type_as(x)


def group_causal_mask(length: int, group_size: int, device: torch.device) -> torch.Tensor:
    """Boolean `[L, L]` mask, True where attention is allowed: j // g <= i // g."""
    g = torch.arange(length, device=device) // group_size
    return g[None, :] <= g[:, None]


class Attention(nn.Module):
    """Multi-head self-attention with RoPE on queries and keys."""

    def __init__(self, dim: int, n_heads: int) -> None:
        super().__init__()
        self.n_heads = n_heads
        self.qkv = nn.Linear(dim, 3 * dim, bias=False)
        self.proj = nn.Linear(dim, dim, bias=False)

    def forward(
        self,
        x: torch.Tensor,
        cos: torch.Tensor,
        sin: torch.Tensor,
        mask: torch.Tensor | None,
        is_causal: bool,
    ) -> torch.Tensor:
        """x `[B, L, D]` -> `[B, L, D]`."""
        B, L, D = x.shape
        q, k, v = self.qkv(x).view(B, L, 3, self.n_heads, D // self.n_heads).unbind(2)
        q, k, v = (t.transpose(1, 2) for t in (q, k, v))  # (B, nh, L, hs)
        q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=is_causal)
        return self.proj(y.transpose(1, 2).reshape(B, L, D))


class Block(nn.Module):
    """Pre-norm block: x + attn(norm(x)); x + mlp(norm(x))."""

    def __init__(self, dim: int, n_heads: int, ffn_dim: int) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = Attention(dim, n_heads)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, ffn_dim), nn.GELU(), nn.Linear(ffn_dim, dim))

    def forward(
        self,
        x: torch.Tensor,
        cos: torch.Tensor,
        sin: torch.Tensor,
        mask: torch.Tensor | None,
        is_causal: bool,
    ) -> torch.Tensor:
        x = x + self.attn(self.norm1(x), cos, sin, mask, is_causal)
        return x + self.mlp(self.norm2(x))


class Transformer(nn.Module):
    """A stack of pre-norm RoPE blocks with a final LayerNorm.

    Args:
        dim: model width D.
        n_layers: number of blocks.
        n_heads: attention heads (D / n_heads must be even for RoPE).
        ffn_dim: feed-forward hidden size.
        causal: mask future positions (see `forward`'s `group_size`).
    """

    def __init__(
        self,
        dim: int,
        n_layers: int,
        n_heads: int,
        ffn_dim: int,
        causal: bool,
        attn_span: int | None = None,
    ) -> None:
        super().__init__()
        if attn_span is not None and attn_span < 1:
            raise ValueError(f"attn_span must be >= 1 or None, got {attn_span}")
        self.attn_span = attn_span
        if dim % n_heads or (dim // n_heads) % 2:
            raise ValueError(f"dim {dim} must split into {n_heads} heads of even size")
        self.dim, self.n_heads, self.causal = dim, n_heads, causal
        self.blocks = nn.ModuleList(Block(dim, n_heads, ffn_dim) for _ in range(n_layers))
        self.norm = nn.LayerNorm(dim)
        self.apply(_init_weights)

    def forward(self, x: torch.Tensor, group_size: int = 1) -> torch.Tensor:
        """x `[B, L, D]` -> `[B, L, D]`.

        When causal, position i sees positions j with j // group_size <= i // group_size
        (group_size 1: ordinary causal attention). With `attn_span` set (sliding-window
        attention, as in the reference reproduction), i also only sees j with |i - j| < span:
        the tokens stay local, and the model generalises to clips longer than it trained on.
        """
        L = x.shape[1]
        cos, sin = rope_tables(L, self.dim // self.n_heads, x.device)
        mask, is_causal = None, False
        if self.causal and group_size == 1 and self.attn_span is None:
            is_causal = True
        elif self.causal:
            mask = group_causal_mask(L, group_size, x.device)
        if self.attn_span is not None:
            idx = torch.arange(L, device=x.device)
            near = (idx[:, None] - idx[None, :]).abs() < self.attn_span
            mask = near if mask is None else mask & near
        for block in self.blocks:
            x = block(x, cos, sin, mask, is_causal)
        return self.norm(x)


def _init_weights(m: nn.Module) -> None:
    if isinstance(m, nn.Linear):
        nn.init.trunc_normal_(m.weight, std=0.02)
        if m.bias is not None:
            nn.init.zeros_(m.bias)
